"""``reconciler run``'s loop on in-memory hosts: passes, held revisions, healing by events.

The service is the real ``ReconcileService`` (fetch, validate, observe, plan, converge, the
status board, the Docker-event follower); its hosts are ``MemoryHost``s, which implement
the ``ServiceRuntime`` protocol (see ``memory_runtime``). No Docker, no mocks.
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
from reconciler.source.keys import load_keyring

from .memory_runtime import MemoryHost

RC = """apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "web:1"}]
"""


def write(directory: Path, replicas: int | str) -> None:
    (directory / "web.yaml").write_text(RC.replace("REPLICAS", str(replicas)))


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[tuple[ReconcileService, MemoryHost, Path]]:
    source = tmp_path / "manifests"
    source.mkdir()
    write(source, 2)
    host = MemoryHost("h1", instance="svc", images=("web:1",))
    config = RunConfig(
        source=str(source),
        listen="127.0.0.1:0",
        hosts=[Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11")],
        instance="svc",
        settings=Settings(instance="svc"),
        resync=3600,
    )
    yield ReconcileService(config, runtimes={"h1": host}), host, source


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def apps(host: MemoryHost) -> dict[str, str]:
    return {n: s for n, s in host.running().items() if n.endswith("_app")}


def test_a_pass_applies_and_the_status_counts_the_actions(
    service: tuple[ReconcileService, MemoryHost, Path],
) -> None:
    loop, host, _ = service
    outcome = loop.run_pass("test")
    assert outcome.ok and outcome.applied == 2 and outcome.failed == 0
    assert apps(host) == {"svc_default_web-0_app": "running", "svc_default_web-1_app": "running"}
    status = loop.board.snapshot()
    assert status["counters"]["actions_ok"] == 2 and status["counters"]["actions_failed"] == 0
    assert status["hosts"]["h1"]["reachable"] is True
    assert loop.run_pass("again").applied == 0  # in sync: nothing to do


def test_an_invalid_revision_is_held_and_the_last_good_one_still_heals(
    service: tuple[ReconcileService, MemoryHost, Path],
) -> None:
    loop, host, source = service
    loop.run_pass("first")
    write(source, "three")  # not a number: invalid
    host.exit("svc_default_web-1_app")
    outcome = loop.run_pass("broken commit")
    assert outcome.ok  # the pass enforced the last valid manifests
    assert apps(host)["svc_default_web-1_app"] == "running"
    error = loop.board.snapshot()["last_error"]
    assert error["kind"] == "validation" and "web.yaml:5" in error["validation_errors"][0]
    write(source, 3)
    assert loop.run_pass("fixed").applied == 1
    assert loop.board.snapshot()["last_error"] is None


def test_a_killed_container_comes_back_through_its_event(
    service: tuple[ReconcileService, MemoryHost, Path],
) -> None:
    loop, host, _ = service
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: len(apps(host)) == 2 and loop.board.snapshot()["sync"]["synced_once"])
        passes = loop.passes
        host.exit("svc_default_web-0_app")  # emits a "die" event, as Docker does
        wait_for(lambda: apps(host)["svc_default_web-0_app"] == "running")
        assert loop.passes > passes
    finally:
        loop.stop()
        runner.join(timeout=10)
    assert not runner.is_alive() and host.closed


def test_an_undecryptable_secret_holds_the_revision_like_an_invalid_one(
    service: tuple[ReconcileService, MemoryHost, Path],
) -> None:
    loop, host, source = service
    assert loop.run_pass("first").ok
    before = host.running()
    vectors = Path(__file__).resolve().parents[1] / "fixtures" / "sops"
    (source / "secret.yaml").write_text((vectors / "age.yaml").read_text())
    write(source, 3)
    assert loop.run_pass("no key").ok  # the last good revision, still enforced
    assert host.running() == before  # nothing of the new one applied
    error = loop.board.snapshot()["last_error"]
    assert error["kind"] == "validation"
    assert any(
        "secret.yaml:12:3" in line and "age1l44x" in line for line in error["validation_errors"]
    )
    loop.config.keyring = load_keyring({"SOPS_AGE_KEY_FILE": str(vectors / "age.txt")})
    assert loop.run_pass("with the key").ok
    assert len([n for n in host.running() if n.endswith("_app")]) == 3


def test_a_pod_no_host_has_room_for_fails_the_pass_and_says_where(tmp_path: Path) -> None:
    # the planner's errors used to stay in the plan: the pass counted as ok, /status was clean
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "big.yaml").write_text(
        RC.replace("REPLICAS", "1").replace(
            '"web:1"}', '"web:1", resources: {requests: {cpu: "8"}}}'
        )
    )
    host = MemoryHost("h1", instance="svc", images=("web:1",))
    config = RunConfig(
        source=str(source),
        listen="127.0.0.1:0",
        hosts=[Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11", cpu_nano=2_000_000_000)],
        instance="svc",
        settings=Settings(instance="svc"),
        resync=3600,
    )
    loop = ReconcileService(config, runtimes={"h1": host})
    outcome = loop.run_pass("test")
    assert not outcome.ok and outcome.failed == 0
    error = loop.board.snapshot()["last_error"]
    assert error["kind"] == "plan"
    assert error["validation_errors"] == [
        f"{source / 'big.yaml'}:9:5: error: ReplicationController/web: pod web-0 cannot be "
        "placed: no reachable host has capacity left for its requests"
    ]
    assert apps(host) == {}
