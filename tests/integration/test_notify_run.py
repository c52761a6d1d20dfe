"""``reconciler run --notify``: a real service process, a real git repository, the real engine,
and a receiver on 127.0.0.1 (``tests/unit/receiver.py``) that records what it is told, or
answers 500, or hangs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from reconciler.core import labels as L

from ..unit.receiver import Receiver
from .conftest import Rig, wait_for
from .test_run import RC, Repo, Service, services

__all__ = ["services"]  # the fixture, imported to be found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def running(rig: Rig) -> set[str]:
    return {c["Labels"][L.POD] for c in rig.containers(f"{L.CONTAINER}=web", running_only=True)}


def kill_and_time_the_heal(rig: Rig, pod: str) -> float:
    """Kill a pod's app container; seconds until it runs again."""
    (container,) = rig.containers(f"{L.POD}={pod}", f"{L.CONTAINER}=web")
    began = time.monotonic()
    rig.api.kill(container["Id"])
    wait_for(lambda: pod not in running(rig), timeout=10, what=f"{pod} to die")
    wait_for(lambda: pod in running(rig), timeout=60, what=f"{pod} to be healed")
    return time.monotonic() - began


def test_applied_invalid_and_healed_reach_the_receiver_and_a_bad_one_slows_nothing(
    rig: Rig, services: Callable[..., Service], receiver: Receiver
) -> None:
    repo = Repo(rig.root)
    first = repo.commit({"web/controller.yaml": RC.format(replicas=3, greeting="v1")}, "first")
    service = services(
        str(repo.bare), "--branch", "main", "--interval", "0.5", "--notify", receiver.url
    )
    applied = receiver.wait_for("sync_applied", timeout=60)
    assert applied["revision"] == first and applied["instance"] == rig.instance
    assert "3 create (web-0, web-1, web-2)" in applied["summary"]

    broken = repo.commit({"web/controller.yaml": RC.format(replicas="two", greeting="v1")})
    held = receiver.wait_for("revision_held", timeout=30)
    assert held["revision"] == broken and "invalid" in held["summary"]
    assert any("web/controller.yaml:5:" in line for line in held["details"]), held["details"]

    wait_for(lambda: running(rig) == {"web-0", "web-1", "web-2"}, timeout=30, what="3 pods")
    quiet = kill_and_time_the_heal(rig, "web-0")
    healed = receiver.wait_for("drift_healed", timeout=30)
    assert healed["revision"] == first and "web-0" in " ".join(healed["details"])

    receiver.hang.set()  # every delivery now waits: the service must not
    attempts = receiver.attempts
    hanging = kill_and_time_the_heal(rig, "web-1")
    wait_for(lambda: receiver.attempts > attempts, timeout=10, what="a delivery to hang")
    receiver.answer = 500
    receiver.release.set()
    receiver.hang.clear()
    attempts = receiver.attempts
    failing = kill_and_time_the_heal(rig, "web-2")
    wait_for(lambda: receiver.attempts > attempts, timeout=10, what="a delivery to fail")
    print(
        f"\nheal after a kill: {quiet:.2f}s with a good receiver, {hanging:.2f}s with a "
        f"hanging one, {failing:.2f}s with one answering 500"
    )
    assert max(hanging, failing) < 3 * quiet + 2.0, (quiet, hanging, failing)
    metrics = service.get("/metrics")[1]
    assert 'reconciler_notifications_total{result="sent"}' in metrics
    assert service.status()["events"]["total"] >= 4
