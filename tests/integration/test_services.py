"""Services on one real engine: env vars, DNS names, forwarders carrying real traffic.

The sample repository's Services: ``db`` (ClusterIP, targetPort by name), ``frontend``
(NodePort 30080) and ``keystone-public`` (LoadBalancer on 5000), moved by the rig to free ports
(``rig.node_port``, ``rig.lb_port``). The local host's address is 127.0.0.1, so published
ports answer there and nowhere else.
"""

from __future__ import annotations

import contextlib

import docker.errors

from reconciler.core import labels as L

from .conftest import Rig, answers, fetch, free_port, wait_for

SERVICES = {"db", "frontend", "keystone-public"}


def test_forwarders_env_and_dns_reach_the_backends(applied: Rig) -> None:
    rig = applied
    assert rig.services() == SERVICES
    forwarders = rig.forwarders()
    db_ip = forwarders["db"]["Labels"][L.CLUSTER_IP]
    env = dict(
        line.split("=", 1)
        for line in rig.exec("keystone-0", "keystone", ["env"]).splitlines()
        if "=" in line
    )
    assert env["DB_SERVICE_HOST"] == db_ip
    assert env["DB_PORT_3306_TCP_ADDR"] == db_ip
    assert env["DB_PORT_3306_TCP_PORT"] == "3306"
    assert env["DB_PORT"] == f"tcp://{db_ip}:3306"
    assert env["KEYSTONE_PUBLIC_SERVICE_PORT"] == str(rig.lb_port)
    # from inside a replica: by env vars, by short name and by name.namespace
    for target in (f"{db_ip}:3306", "db:3306", "db.default:3306"):
        answer = rig.exec(
            "keystone-1", "keystone", ["timeout", "5", "wget", "-qO-", f"http://{target}/"]
        )
        assert answer.strip() == "db keystone-db", target
    # the LoadBalancer and NodePort answer on the host's address, spread over backends
    keystones = answers(f"http://127.0.0.1:{rig.lb_port}/", wait=10)
    assert len(keystones) >= 2 and all(k.startswith("keystone keystone-") for k in keystones)
    assert answers(f"http://127.0.0.1:{rig.node_port}/", wait=10) <= {
        "frontend frontend-0",
        "frontend frontend-1",
    }
    assert len(answers(f"http://127.0.0.1:{rig.node_port}/", wait=10)) == 2
    rows = rig.get("services", "--source", rig.src, "-o", "json")
    assert rows.exit_code == 0, rows.output


def test_forwarders_follow_scaling_in_one_apply_and_go_with_the_service(applied: Rig) -> None:
    rig = applied
    rig.edit("keystone/controller.yaml", "replicas: 3", "replicas: 1")
    rig.applied()
    assert answers(f"http://127.0.0.1:{rig.lb_port}/", wait=10) == {"keystone keystone-0"}
    rig.edit("keystone/controller.yaml", "replicas: 1", "replicas: 2")
    rig.applied()
    assert answers(f"http://127.0.0.1:{rig.lb_port}/", wait=10) == {
        "keystone keystone-0",
        "keystone keystone-1",
    }
    assert rig.diff().exit_code == 0
    # a new service port: the old one closes, the new one answers, in the same apply
    port = free_port()
    rig.edit("keystone/service.yaml", f"- port: {rig.lb_port}", f"- port: {port}")
    rig.applied()
    assert len(answers(f"http://127.0.0.1:{port}/", wait=10)) == 2
    with contextlib.suppress(OSError):
        fetch(f"http://127.0.0.1:{rig.lb_port}/", timeout=1)
        raise AssertionError("the old port still answers after the Service moved off it")
    # the Service is deleted: its forwarder and published port go, the pods stay
    (rig.src / "keystone" / "service.yaml").unlink()
    result = rig.applied()
    assert "Service/keystone-public" in result.output
    assert rig.services() == {"db", "frontend"}
    assert "keystone-0" in rig.pods()
    with contextlib.suppress(OSError):
        fetch(f"http://127.0.0.1:{port}/", timeout=1)
        raise AssertionError("the deleted Service still answers")


def test_a_killed_backend_leaves_the_forwarder_and_comes_back(applied: Rig) -> None:
    rig = applied
    box = rig.client.containers.get(rig.name("keystone-2", "keystone"))
    box.kill()
    wait_for(lambda: box.reload() or box.status == "exited", what="keystone-2 to die")
    diff = rig.diff()
    assert diff.exit_code == 1
    assert "svc_keystone-public" in diff.output  # its endpoint is gone: the route changes
    rig.applied()
    assert len(answers(f"http://127.0.0.1:{rig.lb_port}/", tries=40, wait=10)) == 3
    rig.assert_converged()


def test_down_removes_forwarders_and_the_network(applied: Rig) -> None:
    rig = applied
    result = rig.down("-l", "app=frontend", "--yes")
    assert result.exit_code == 0, result.output
    assert "frontend" not in rig.services()
    assert not any(p.startswith("frontend-") for p in rig.pods())
    result = rig.down("--yes")
    assert result.exit_code == 0, result.output
    assert rig.containers() == []
    network = f"reconciler-{rig.instance}"
    try:
        rig.api.inspect_network(network)
    except docker.errors.NotFound:
        pass
    else:
        raise AssertionError(f"network {network} left behind")
