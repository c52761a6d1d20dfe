"""``reconciler run`` and health: health_status events wake a pass, a reload's own events
do not, and a restart held by its back-off wakes the loop when it ends. The service is the
real ``ReconcileService`` on ``MemoryHost``s (see ``test_service_memory``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core import labels as L
from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.daemon.triggers import FOLLOWED, wakes
from reconciler.desire.settings import Settings
from reconciler.plan.reload import live_endpoints
from reconciler.source.hosts import Host

from .memory_runtime import MemoryHost
from .test_health_memory import probed_rc
from .test_service_memory import wait_for

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"""


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[tuple[ReconcileService, MemoryHost, Path]]:
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "web.yaml").write_text(probed_rc(liveness=True) + SERVICE)
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


def routes(host: MemoryHost) -> list[str]:
    state = host.observe()
    forwarder = next(c for c in state.containers if c.name == "svc_default_svc_web_POD")
    return [e for _, _, eps in live_endpoints(forwarder, state.markers) for e in eps]


def test_health_events_wake_a_pass_that_follows_readiness(
    service: tuple[ReconcileService, MemoryHost, Path],
) -> None:
    loop, host, _ = service
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: loop.board.snapshot()["sync"]["synced_once"])
        assert routes(host) == []  # nothing checked yet: nothing ready
        host.set_health("svc_default_web-0_POD", "healthy")  # a health_status event
        wait_for(lambda: len(routes(host)) == 1)
        host.set_health("svc_default_web-1_POD", "healthy")
        wait_for(lambda: len(routes(host)) == 2)
        passes = loop.passes
        host.set_health("svc_default_web-0_POD", "unhealthy")
        wait_for(lambda: len(routes(host)) == 1)
        time.sleep(1.5)  # the reload's SIGHUP and record removal wake nothing more
        assert loop.passes == passes + 1
        host.set_health("svc_default_web-1_app", "unhealthy")  # liveness: a restart
        wait_for(lambda: any("restart web-1/app #1" in c for c in host.calls))
    finally:
        loop.stop()
        runner.join(timeout=10)
    assert not runner.is_alive()


def test_a_restart_held_by_its_back_off_sets_when_the_loop_wakes(
    service: tuple[ReconcileService, MemoryHost, Path],
) -> None:
    loop, host, _ = service
    loop.run_pass("first")
    host.set_health("svc_default_web-0_app", "unhealthy")
    loop.run_pass("restart 1: at once")
    assert loop._wake_at is None
    host.set_health("svc_default_web-0_app", "unhealthy")
    before = time.time()
    loop.run_pass("restart 2: held for 10 s")
    assert loop._wake_at is not None and before + 9 < loop._wake_at < time.time() + 11
    assert host.by_name("svc_default_web-0_app")["State"] == "created"


def test_which_events_wake_a_pass() -> None:
    assert "health_status" in FOLLOWED
    assert wakes("health_status: unhealthy", {L.ROLE: L.ROLE_INFRA})
    assert wakes("die", {L.ROLE: L.ROLE_APP})
    assert wakes("kill", {L.ROLE: L.ROLE_APP, "signal": "9"})
    assert not wakes("kill", {L.ROLE: L.ROLE_FORWARDER, "signal": "1"})  # a reload's SIGHUP
    assert not wakes("destroy", {L.ROLE: L.ROLE_ENDPOINTS})  # a record replaced
    assert not wakes("destroy", {L.ROLE: L.ROLE_STATE})
    assert not wakes("destroy", {L.ROLE: L.ROLE_TOOLS})
