"""What ``reconciler run`` tells its operator, on in-memory hosts: notifications, the world
on ``/status``, pending changes while suspended, rollout failures, restarts.

The service is the real ``ReconcileService``; its hosts are ``MemoryHost``s; notifications
go over real HTTP to a ``Receiver`` on 127.0.0.1. No Docker, no mocks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host

from .memory_runtime import MemoryHost
from .receiver import Receiver

RC = """apiVersion: v1
kind: ReplicationController
metadata:
  name: web
  annotations: {{owner: "<script>alert(1)</script>"}}
spec:
  replicas: {replicas}
  selector: {{app: web}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: app
          image: "{image}"
          env: [{{name: DB_PASSWORD, value: hunter2}}]
"""
SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def write(directory: Path, replicas: int | str = 2, image: str = "web:1") -> None:
    (directory / "web.yaml").write_text(RC.format(replicas=replicas, image=image))
    (directory / "svc.yaml").write_text(SERVICE)


Made = tuple[ReconcileService, MemoryHost, Path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Made]]:
    made: list[ReconcileService] = []

    def start(**settings: object) -> Made:
        source = tmp_path / f"manifests-{len(made)}"
        source.mkdir()
        write(source)
        host = MemoryHost("h1", instance="op", images=("web:1",))
        config = RunConfig(
            source=str(source),
            listen="127.0.0.1:0",
            hosts=[Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11")],
            instance="op",
            settings=Settings(instance="op"),
            resync=3600,
            **settings,  # type: ignore[arg-type]
        )
        service = ReconcileService(config, runtimes={"h1": host})
        made.append(service)
        return service, host, source

    yield start
    for service in made:
        service.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_applied_invalid_and_healed_are_notified(
    make: Callable[..., Made], receiver: Receiver
) -> None:
    loop, host, source = make(notify=[receiver.url])
    loop.run_pass("first")
    applied = receiver.wait_for("sync_applied")
    assert applied["instance"] == "op" and "3 create" in applied["summary"]
    assert any("pod web-0 on h1" in line for line in applied["details"])

    write(source, replicas="three")  # invalid: held, the last valid one stays
    loop.run_pass("broken")
    held = receiver.wait_for("revision_held")
    assert "invalid" in held["summary"] and held["severity"] == "error"
    assert any("web.yaml:7" in line and "replicas" in line for line in held["details"])

    host.exit("op_default_web-1_app")
    loop.run_pass("event die")
    healed = receiver.wait_for("drift_healed")
    assert "healed drift" in healed["summary"] and "1 start" in healed["summary"]
    assert any("web-1" in line for line in healed["details"])
    assert "hunter2" not in str(receiver.bodies)
    events = loop.board.snapshot()["events"]["recent"]
    assert [e["kind"] for e in events] == ["drift_healed", "revision_held", "sync_applied"]


@pytest.mark.parametrize("trouble", ["hang", "500"])
def test_a_failing_receiver_does_not_slow_the_passes(
    make: Callable[..., Made], receiver: Receiver, trouble: str
) -> None:
    """The same 12 passes (each heals a container, so each has an event to send) with a
    good receiver and with one that hangs or answers 500: the passes keep their pace."""

    def passes(url: str) -> float:
        loop, host, _ = make(notify=[url])
        loop.report.announcer.repeat_after = 0  # every pass's event goes out
        loop.run_pass("first")
        began = time.monotonic()
        for n in range(12):
            host.exit(f"op_default_web-{n % 2}_app")
            outcome = loop.run_pass("event")
            assert outcome.ok and outcome.applied == 1
        return time.monotonic() - began

    good = Receiver()
    try:
        baseline = passes(good.url)
        wait_for(lambda: len(good.bodies) == 13)
    finally:
        good.close()
    if trouble == "hang":
        receiver.hang.set()
    else:
        receiver.answer = 500
    troubled = passes(receiver.url)
    assert receiver.attempts >= 1  # it was called, and hung or failed meanwhile
    if trouble == "hang":
        assert receiver.bodies == [] and not receiver.release.is_set()
    assert troubled < 3 * baseline + 0.5, (troubled, baseline)


def test_status_shows_the_world_with_sources_and_commits(make: Callable[..., Made]) -> None:
    loop, _, source = make()
    loop.run_pass("first")
    status = loop.board.snapshot()
    world = status["world"]
    assert [h["name"] for h in world["hosts"]] == ["h1"]
    assert world["hosts"][0]["engine"] == "memory-1.0" and world["hosts"][0]["reachable"]
    pods = {p["name"]: p for p in world["pods"]}
    assert set(pods) == {"web-0", "web-1"}
    assert pods["web-0"]["source"].startswith(f"{source}/web.yaml:")
    assert pods["web-0"]["status"] == "Running" and pods["web-0"]["images"] == ["web:1"]
    (workload,) = world["workloads"]
    assert workload["rollout"] == "complete" and workload["ready"] == 2
    assert workload["annotations"] == {"owner": "<script>alert(1)</script>"}
    (service,) = world["services"]
    assert service["cluster_ip"] and service["endpoints"]["h1"]
    assert status["syncs"][0]["result"] == "ok" and status["syncs"][0]["applied"] == 3
    assert status["pending"] == {"actions": [], "total": 0}
    assert "hunter2" not in str(status)


def test_a_suspended_service_plans_and_shows_what_is_pending(make: Callable[..., Made]) -> None:
    loop, host, source = make()
    loop.run_pass("first")
    loop._on_suspend(True)
    write(source, replicas=3)
    calls = len(host.calls)
    outcome = loop.run_pass("resync", dry_run=True)
    assert outcome.ok and len(host.calls) == calls  # nothing was done to the host
    pending = loop.board.snapshot()["pending"]
    assert pending["total"] == 1
    (action,) = pending["actions"]
    assert action["action"] == "create" and action["pod"] == "web-2"
    assert action["source"].startswith(f"{source}/web.yaml:")
    assert [s["result"] for s in loop.board.snapshot()["syncs"]] == ["ok"]  # no sync: a plan


def test_a_failed_rollout_is_announced_and_shown_on_the_workload(
    make: Callable[..., Made], receiver: Receiver
) -> None:
    loop, host, source = make(notify=[receiver.url])
    loop.run_pass("first")
    write(source, image="web:2")  # not on the host: the first replacement fails
    outcome = loop.run_pass("new template")
    assert not outcome.ok
    failed = receiver.wait_for("rollout_failed")
    assert "rollout of ReplicationController/web" in failed["summary"]
    assert "web:2" in failed["summary"] and "web.yaml" in failed["details"][0]
    (workload,) = loop.board.snapshot()["world"]["workloads"]
    assert workload["rollout"] == "failed" and "web:2" in workload["rollout_error"]
    receiver.wait_for("sync_failed")

    host.images.add("web:2")  # the image arrives: the rollout completes, and says so
    while not loop.run_pass("retry").ok:
        pass
    (workload,) = loop.board.snapshot()["world"]["workloads"]
    assert workload["rollout"] == "complete" and workload["updated"] == 2


def test_restarts_are_counted_from_docker_events(make: Callable[..., Made]) -> None:
    loop, host, _ = make()
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: loop.board.snapshot()["sync"]["synced_once"])
        host.exit("op_default_web-0_app")
        wait_for(
            lambda: (
                {p["name"]: p["restarts"] for p in loop.board.snapshot()["world"]["pods"]}
                == {"web-0": 1, "web-1": 0}
            )
        )
    finally:
        loop.stop()
        runner.join(timeout=10)


def test_a_host_lost_and_back_is_announced(make: Callable[..., Made]) -> None:
    loop, host, _ = make()
    loop.run_pass("first")
    host.reachable = False
    loop.run_pass("lost")
    host.reachable = True
    loop.run_pass("back")
    kinds = [e["kind"] for e in loop.board.snapshot()["events"]["recent"]]
    assert kinds[:2] == ["host_back", "host_lost"]
    hosts = loop.board.snapshot()["world"]["hosts"]
    assert hosts[0]["reachable"] and hosts[0]["engine"] == "memory-1.0"
