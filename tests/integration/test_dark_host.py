"""A host that black-holes packets, on real namespace hosts (``scripts/testhosts``): the
service's passes apply a change on another host without waiting for it.

The kernel of h2's namespace drops every packet to its engine's port (an iptables DROP
rule), after the service has talked to it: the service's kept-alive connection to h2 then
gets no answer at all, and a list call on it would wait out the whole read timeout (60 s).
Every bound is relative to the observation timeout the test configures (and to the same
pass with every host answering), never an absolute speed. The rule is removed, and the
rig's containers on both hosts too, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker.errors
import pytest

from reconciler.core import labels as L
from reconciler.daemon.config import PassOutcome, RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.settings import Settings
from reconciler.engine.client import CONNECT_TIMEOUT
from reconciler.source.hosts import DEFAULT_SOCKET, Host

from .conftest import Rig, purge
from .testhosts import API_VERSION, TestHosts, test_hosts

__all__ = ["test_hosts"]  # the fixture, imported to be found

OBSERVE_TIMEOUT = 2.0
POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeSelector: {{zone: {zone}}}
  containers:
    - name: web
      image: sample/frontend:1.0
      env: [{{name: EDITION, value: "{edition}"}}]
"""
DROP = ["-p", "tcp", "--dport", "2375", "-j", "DROP"]


def write(source: Path, edition: int) -> None:
    (source / "pods.yaml").write_text(
        POD.format(name="near", zone="h1", edition=edition)
        + "---\n"
        + POD.format(name="far", zone="h2", edition=1)
    )


def timed_pass(service: ReconcileService, reason: str, bound: float) -> tuple[PassOutcome, float]:
    """One pass and its duration, failing if it is not over within ``bound`` seconds."""
    found: list[PassOutcome] = []
    started = time.monotonic()
    runner = threading.Thread(target=lambda: found.append(service.run_pass(reason)), daemon=True)
    runner.start()
    runner.join(bound)
    assert found, f"the pass ({reason}) still runs after {bound:.1f} s"
    return found[0], time.monotonic() - started


@pytest.fixture
def dark_rig(
    make_rig: Callable[[], Rig], test_hosts: TestHosts
) -> Iterator[tuple[Rig, TestHosts, list[str]]]:
    rig = make_rig()
    rig.src.mkdir(parents=True, exist_ok=True)
    rules: list[str] = []  # hosts with our DROP rule in place
    try:
        yield rig, test_hosts, rules
    finally:
        for name in rules:
            subprocess.run(
                ["nsenter", f"--net=/var/run/netns/rt-{name}", "iptables", "-D", "INPUT", *DROP],
                check=False,
            )
        for name in ("h1", "h2"):
            api = test_hosts.api(name)
            with contextlib.suppress(docker.errors.DockerException, OSError):
                purge(api, rig.instance)
            api.close()


def test_a_black_holed_host_delays_no_change_on_another(
    dark_rig: tuple[Rig, TestHosts, list[str]],
) -> None:
    rig, hosts, rules = dark_rig
    write(rig.src, edition=1)
    config = RunConfig(
        source=str(rig.src),
        listen="127.0.0.1:0",
        hosts=[
            Host(n, hosts.url(n), hosts.address(n), {"zone": n}, api_version=API_VERSION)
            for n in ("h1", "h2")
        ],
        instance=rig.instance,
        settings=Settings(instance=rig.instance, cluster_cidr=rig.env["RECONCILER_CLUSTER_CIDR"]),
        state_dir=rig.root / "state",
        resync=3600,
        observe_timeout=OBSERVE_TIMEOUT,
    )
    service = ReconcileService(config)
    try:
        first = service.run_pass("first")
        assert first.ok and first.applied == 2, service.board.snapshot()["last_error"]
        write(rig.src, edition=2)  # the same change with every host answering: the yardstick
        normal, took_normally = timed_pass(service, "change", 60)
        assert normal.ok and normal.applied == 1
        subprocess.run(
            ["nsenter", "--net=/var/run/netns/rt-h2", "iptables", "-I", "INPUT", "1", *DROP],
            check=True,
        )
        rules.append("h2")
        write(rig.src, edition=3)
        bound = took_normally + 2 * OBSERVE_TIMEOUT
        dark, _ = timed_pass(service, "change while h2 is dark", bound)
        assert dark.applied == 1 and dark.failed == 0 and not dark.ok  # h2 is unreachable
        h1 = hosts.api("h1")
        labels = [*L.ownership_filters(rig.instance), f"{L.POD}=near", f"{L.CONTAINER}=web"]
        (web,) = h1.containers(filters={"label": labels})
        assert "EDITION=3" in h1.inspect_container(web["Id"])["Config"]["Env"]
        h1.close()
        status = service.board.snapshot()["hosts"]
        assert status["h1"]["reachable"] and not status["h2"]["reachable"]
        assert status["h2"]["error"] == f"no answer within {OBSERVE_TIMEOUT:g} s (still asking)"
        assert 'reconciler_hosts{host="h2"} 0.0' in service.metrics.render().decode()
        # h2's observation is still in flight: the next pass does not wait for it at all
        again, took_again = timed_pass(service, "again", took_normally + OBSERVE_TIMEOUT)
        assert again.applied == 0 and took_again < OBSERVE_TIMEOUT
        assert service.board.snapshot()["hosts"]["h2"]["error"].startswith("no answer within")
    finally:
        service.close()


def test_apply_is_held_by_a_black_holed_host_no_longer_than_its_observe_timeout(
    make_rig: Callable[[], Rig], black_hole: int
) -> None:
    """``reconciler apply`` (a new connection each run: the hole drops its SYNs) with the
    local engine and a black hole: the change on the local engine is applied, and the hole
    costs ``--observe-timeout 1``, not the 5 s connect timeout."""
    rig = make_rig()
    rig.src.mkdir(parents=True, exist_ok=True)
    local = os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
    hosts_file = rig.root / "hosts.yaml"
    hosts_file.write_text(
        "hosts:\n"
        f"  - {{name: local, url: '{local}', address: 127.0.0.1, labels: {{zone: local}}}}\n"
        f"  - {{name: hole, url: 'tcp://127.0.0.1:{black_hole}', address: 127.0.0.1, "
        "labels: {zone: hole}}\n"
    )

    only_local = rig.root / "local.yaml"
    only_local.write_text(hosts_file.read_text().split("  - {name: hole")[0])
    (rig.src / "pods.yaml").write_text(POD.format(name="near", zone="local", edition=1))
    first = rig.apply("--hosts", only_local)
    assert first.exit_code == 0, first.output
    (rig.src / "pods.yaml").write_text(POD.format(name="near", zone="local", edition=2))
    started = time.monotonic()
    normal = rig.apply("--hosts", only_local)
    took_normally = time.monotonic() - started
    assert normal.exit_code == 0, normal.output
    (rig.src / "pods.yaml").write_text(POD.format(name="near", zone="local", edition=3))
    started = time.monotonic()
    dark = rig.apply("--hosts", hosts_file, "--observe-timeout", "1")
    took = time.monotonic() - started
    assert dark.exit_code == 1, dark.output  # a host was unreachable
    assert "hole" in dark.output and "near" in dark.output
    labels = [*L.ownership_filters(rig.instance), f"{L.POD}=near", f"{L.CONTAINER}=web"]
    (web,) = rig.api.containers(filters={"label": labels})
    assert "EDITION=3" in rig.api.inspect_container(web["Id"])["Config"]["Env"]
    # the observation timeout ended the wait for the hole, not the connect timeout
    assert took < took_normally + (1 + CONNECT_TIMEOUT) / 2, (took, took_normally)
