"""Several real hosts (dockerd in network namespaces, made by scripts/testhosts): placement,
Services across hosts, host loss with a grace period, and clean removal.

The sample repository runs on 3 hosts: keystone-db and its ``db`` Service, an RC of 3
keystone pods (two containers each) behind the ``keystone-public`` LoadBalancer, and the
frontend RC behind a NodePort (on the rig's free ports ``lb_port``, ``node_port``). Traffic
only ever goes to 127.0.0.0/8 or the 10.231.0.x addresses of the hosts the harness made.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import pytest

from reconciler.core import labels as L

from .conftest import Rig, answers, free_port, purge, wait_for
from .testhosts import TestHosts, test_hosts

__all__ = ["test_hosts"]  # the fixture, imported to be found

KEYSTONES = {"keystone-0", "keystone-1", "keystone-2"}


class Cluster:
    """A rig whose commands all go to the test hosts, and views of every host."""

    def __init__(self, rig: Rig, hosts: TestHosts) -> None:
        self.rig = rig
        self.hosts = hosts
        assert hosts.hosts_file is not None
        self.hosts_file = hosts.hosts_file
        self.apis = {name: hosts.api(name) for name in hosts.names}

    def apply(self, *extra: Any) -> Any:
        return self.rig.apply("--hosts", self.hosts_file, *extra)

    def diff(self, *extra: Any) -> Any:
        return self.rig.diff("--hosts", self.hosts_file, *extra)

    def containers(self, name: str, *labels: str) -> list[dict[str, Any]]:
        filters = {"label": [*L.ownership_filters(self.rig.instance), *labels]}
        return list(self.apis[name].containers(all=True, filters=filters))

    def placement(self, up: tuple[str, ...] | None = None) -> dict[str, list[str]]:
        """Workload pod -> hosts running it (a duplicate shows two hosts)."""
        found: dict[str, list[str]] = {}
        for name in up or tuple(self.apis):
            for c in self.containers(name, f"{L.ROLE}={L.ROLE_INFRA}"):
                found.setdefault(c["Labels"][L.POD], []).append(name)
        return {pod: sorted(hosts) for pod, hosts in sorted(found.items())}

    def forwarders(self, name: str) -> dict[str, dict[str, Any]]:
        return {
            c["Labels"][L.OWNER_NAME]: c
            for c in self.containers(name, f"{L.ROLE}={L.ROLE_FORWARDER}")
        }

    def exec(self, host: str, container: str, command: list[str]) -> tuple[int, str]:
        api = self.apis[host]
        run = api.exec_create(container, command)
        output = api.exec_start(run["Id"]).decode(errors="replace")
        return int(api.exec_inspect(run["Id"])["ExitCode"]), output

    def app_container(self, pod: str, container: str) -> tuple[str, str]:
        """(host, Docker name) of a pod's app container."""
        for host in self.apis:
            for c in self.containers(host, f"{L.POD}={pod}", f"{L.CONTAINER}={container}"):
                return host, c["Names"][0].lstrip("/")
        raise AssertionError(f"{pod}/{container} runs nowhere")


@pytest.fixture
def cluster(make_rig: Callable[[], Rig], test_hosts: TestHosts) -> Iterator[Cluster]:
    rig = make_rig()
    rig.copy_sample()
    made = Cluster(rig, test_hosts)
    try:
        yield made
    finally:
        for name, api in made.apis.items():
            with contextlib.suppress(docker.errors.DockerException, OSError):
                purge(api, rig.instance)
            api.close()
            del name


def test_stack_spreads_over_hosts_and_services_reach_it_from_everywhere(cluster: Cluster) -> None:
    result = cluster.apply()
    assert result.exit_code == 0, result.output
    placement = cluster.placement()
    keystone_hosts = [placement[p][0] for p in sorted(KEYSTONES)]
    assert len(set(keystone_hosts)) == 3, placement  # one replica per host
    assert all(len(h) == 1 for h in placement.values()), placement  # no duplicates
    for host in cluster.apis:
        assert set(cluster.forwarders(host)) == {"db", "frontend", "keystone-public"}
    # from inside every replica, wherever it runs: env vars, short name, name.namespace
    for pod in sorted(KEYSTONES):
        host, name = cluster.app_container(pod, "keystone")
        for target in (
            "$DB_PORT_3306_TCP_ADDR:$DB_PORT_3306_TCP_PORT",
            "db:3306",
            "db.default:3306",
        ):
            code, output = cluster.exec(
                host, name, ["sh", "-c", f"timeout 5 wget -qO- http://{target}/"]
            )
            assert (code, output.strip()) == (0, "db keystone-db"), (pod, host, target, output)
    # the public port answers on every host's address and reaches several backends
    for entry in cluster.hosts.hosts:
        seen = answers(f"http://{entry['address']}:{cluster.rig.lb_port}/")
        assert len(seen) >= 2, (entry["name"], seen)
        assert seen <= {f"keystone {p}" for p in KEYSTONES}
        assert answers(f"http://{entry['address']}:{cluster.rig.node_port}/", tries=20) == {
            "frontend frontend-0",
            "frontend frontend-1",
        }
    diff = cluster.diff()
    assert diff.exit_code == 0, diff.output
    hosts = cluster.rig.cli(
        "get",
        "hosts",
        "--hosts",
        cluster.hosts_file,
        "--instance",
        cluster.rig.instance,
        "-o",
        "json",
    )
    assert hosts.exit_code == 0, hosts.output
    nodes = json.loads(hosts.output)["items"]  # hosts as Kubernetes Nodes
    assert [n["status"]["conditions"][0]["status"] for n in nodes] == ["True"] * 3
    counts = [n["metadata"]["annotations"] for n in nodes]
    assert sum(int(c["reconciler.io/pods"]) for c in counts) == len(placement)
    assert all(c["reconciler.io/forwarders"] == "3" for c in counts), counts
    assert all(n["status"]["nodeInfo"]["containerRuntimeVersion"] for n in nodes), nodes


def test_host_loss_grace_failover_and_return(cluster: Cluster) -> None:
    assert cluster.apply().exit_code == 0
    placement = cluster.placement()
    lost = placement["keystone-1"][0]
    lost_pods = {p for p, hosts in placement.items() if lost in hosts}
    others = tuple(h for h in cluster.apis if h != lost)
    cluster.hosts.stop(lost)
    try:
        # within the grace period: reported, the others still reconciled, nothing moved
        result = cluster.apply("--host-grace", "4")
        assert result.exit_code == 1, result.output
        assert f"host {lost}: UNREACHABLE" in result.output
        assert "grace period ends" in result.output
        assert set(cluster.placement(others)) == set(placement) - lost_pods
        time.sleep(4.5)
        # past it: the lost host's replicas run on the remaining hosts; bare pods wait
        result = cluster.apply("--host-grace", "4")
        assert result.exit_code == 1, result.output  # still unreachable
        moved = cluster.placement(others)
        assert set(moved) >= KEYSTONES, moved
        assert "keystone-db" not in moved or "keystone-db" not in lost_pods
        for host in others:
            address = cluster.hosts.address(host)
            seen = answers(f"http://{address}:{cluster.rig.lb_port}/", tries=40)
            assert seen == {f"keystone {p}" for p in KEYSTONES}, (host, seen)
    finally:
        cluster.hosts.start(lost)
    # back: its old containers restart; the surplus copies go, exactly 3 replicas remain
    wait_for(lambda: _answers(cluster.apis[lost]), timeout=60, what=f"{lost} to answer")
    result = cluster.apply("--host-grace", "4")
    assert result.exit_code == 0, result.output
    final = cluster.placement()
    assert all(len(h) == 1 for h in final.values()), final
    assert set(final) >= KEYSTONES
    assert len([p for p in final if p.startswith("keystone-") and p != "keystone-db"]) == 3
    diff = cluster.diff()
    assert diff.exit_code == 0, diff.output


def _answers(api: docker.APIClient) -> bool:
    try:
        return bool(api.ping())
    except (docker.errors.DockerException, OSError):
        return False


def test_rules_follow_scale_port_change_and_deletion_leaving_nothing(cluster: Cluster) -> None:
    rig = cluster.rig
    assert cluster.apply().exit_code == 0
    rig.edit("keystone/controller.yaml", "replicas: 3", "replicas: 5")
    assert cluster.apply().exit_code == 0
    address = cluster.hosts.address(cluster.hosts.names[0])
    assert len(answers(f"http://{address}:{rig.lb_port}/", tries=60)) >= 4
    moved = free_port()
    rig.edit("keystone/service.yaml", f"- port: {rig.lb_port}", f"- port: {moved}")
    assert cluster.apply().exit_code == 0
    assert answers(f"http://{address}:{moved}/", tries=10)
    assert not answers(f"http://{address}:{rig.lb_port}/", tries=3)
    (rig.src / "keystone" / "service.yaml").unlink()
    assert cluster.apply().exit_code == 0
    assert not answers(f"http://{address}:{moved}/", tries=3)
    for host in cluster.apis:
        assert "keystone-public" not in cluster.forwarders(host)
    # a container and an iptables rule that are not ours survive apply and down
    first = cluster.hosts.names[0]
    api = cluster.apis[first]
    foreign = api.create_container("reconciler/pause:1", ["sleep", "600"], name="foreign-box")
    api.start(foreign["Id"])
    netns = f"rt-{first}"
    rule = [
        "-I",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "4999",
        "-m",
        "comment",
        "--comment",
        "foreign-rule",
        "-j",
        "ACCEPT",
    ]
    subprocess.run(["ip", "netns", "exec", netns, "iptables", *rule], check=True)
    try:
        assert cluster.apply().exit_code == 0
        down = rig.cli(
            "down",
            "--hosts",
            cluster.hosts_file,
            "--instance",
            rig.instance,
            "--yes",
            "--grace-period",
            "0",
        )
        assert down.exit_code == 0, down.output
        for host in cluster.apis:
            assert cluster.containers(host) == [], host
            networks = cluster.apis[host].networks(names=[f"reconciler-{rig.instance}"])
            assert networks == [], (host, networks)
        assert api.inspect_container(foreign["Id"])["State"]["Running"]
        rules = subprocess.run(
            ["ip", "netns", "exec", netns, "iptables-save"], capture_output=True, text=True
        ).stdout
        assert "foreign-rule" in rules
    finally:
        api.remove_container(foreign["Id"], force=True)
        subprocess.run(["ip", "netns", "exec", netns, "iptables", "-D", *rule[1:]], check=False)
