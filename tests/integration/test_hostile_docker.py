"""Issue 14 against a real engine: what the policy lets through runs exactly as written,
hostPorts bind the host's address, and names taken by objects that are not ours are errors
that leave those objects alone.

Each test has its own rig (instance, manifests, subnet); the foreign objects a test makes
are tracked and removed at its end. Run under ``flock /tmp/reconciler-it.lock``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import docker.errors

from reconciler.core import labels as L

from .conftest import Rig, free_port

FOREIGN = ["sleep", "3600"]


def pod(name: str, spec: str) -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{spec}"""


def only(rig: Rig, text: str) -> None:
    """Replace the sample manifests with ``text`` alone."""
    for path in rig.src.rglob("*.yaml"):
        path.unlink()
    rig.write("app.yaml", text)


# -- hostPorts -------------------------------------------------------------------------------
def test_a_host_port_binds_the_hosts_address_unless_host_ip_says_otherwise(rig: Rig) -> None:
    narrow, wide = free_port(), free_port()
    only(
        rig,
        pod(
            "ports",
            f"""\
  containers:
    - name: web
      image: sample/frontend:1.0
      command: ["sleep", "3600"]
      ports:
        - {{containerPort: 80, hostPort: {narrow}}}
        - {{containerPort: 81, hostPort: {wide}, hostIP: 0.0.0.0}}
""",
        ),
    )
    refused = rig.apply()  # hostPorts need the operator's consent
    assert refused.exit_code == 2 and "rule host-ports" in refused.output
    rig.applied("--policy", "privileged")
    bindings = rig.inspect("ports", "POD")["HostConfig"]["PortBindings"]
    # the local engine's address is 127.0.0.1: the port is not published to every network
    assert bindings["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(narrow)}]
    assert bindings["81/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(wide)}]


# -- securityContext, honoured ----------------------------------------------------------------
HARDENED = """\
  securityContext:
    runAsNonRoot: true
    supplementalGroups: [27]
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: app
      image: sample/frontend:1.0
      command: ["sleep", "3600"]
      securityContext:
        runAsUser: 1000
        runAsGroup: 1000
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
"""


def test_a_restricted_pod_runs_confined_as_written(rig: Rig) -> None:
    only(rig, pod("hardened", HARDENED))
    rig.applied("--policy", "restricted")
    info: dict[str, Any] = rig.inspect("hardened", "app")
    host = info["HostConfig"]
    assert info["Config"]["User"] == "1000:1000"
    assert (host["CapDrop"], host["CapAdd"]) == (["ALL"], ["NET_BIND_SERVICE"])
    assert host["ReadonlyRootfs"] is True
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["GroupAdd"] == ["27"]
    assert host["Privileged"] is False
    assert rig.exec("hardened", "app", ["id", "-u"]).strip() == "1000"
    assert rig.diff("--policy", "restricted").exit_code == 0  # in sync: the hash is stable


def test_run_as_non_root_refuses_an_image_that_would_run_as_root(rig: Rig) -> None:
    spec = HARDENED.replace("        runAsUser: 1000\n        runAsGroup: 1000\n", "")
    only(rig, pod("rooted", spec))
    result = rig.apply("--policy", "restricted")
    assert result.exit_code == 1, result.output
    assert "CreateContainerConfigError" in result.output
    assert "runs as root" in result.output
    assert rig.workload() == []  # nothing of the pod was made


def test_host_namespaces_are_honoured_when_the_policy_allows_them(rig: Rig) -> None:
    only(
        rig,
        pod(
            "agent",
            """\
  hostNetwork: true
  hostPID: true
  hostIPC: true
  containers:
    - name: agent
      image: sample/frontend:1.0
      command: ["sleep", "3600"]
      securityContext:
        capabilities: {add: [SYS_PTRACE]}
""",
        ),
    )
    refused = rig.apply()
    assert refused.exit_code == 2
    assert refused.output.count("rule host-namespaces") == 3
    assert "rule capabilities" in refused.output
    rig.applied("--policy", "privileged")
    app = rig.inspect("agent", "agent")["HostConfig"]
    assert (app["PidMode"], app["IpcMode"], app["CapAdd"]) == ("host", "host", ["SYS_PTRACE"])
    infra = rig.inspect("agent", "POD")["HostConfig"]
    assert (infra["NetworkMode"], infra["IpcMode"], infra["UTSMode"]) == ("host", "host", "host")


# -- names taken by objects that are not ours -------------------------------------------------
def test_a_foreign_container_holding_a_pods_name_is_named_and_left_alone(rig: Rig) -> None:
    foreign = rig.client.containers.create(
        "sample/db:1.0", FOREIGN, name=rig.name("keystone-db", "POD")
    )
    rig.track(foreign.id)
    result = rig.apply()
    assert result.exit_code == 1
    assert (
        f"container {rig.name('keystone-db', 'POD')} on host local exists and does not carry "
        "this instance's labels: left alone" in result.output
    )
    assert rig.api.inspect_container(foreign.id)["State"]["Status"] == "created"  # untouched
    assert "keystone-db" not in rig.pods()  # nothing of ours joined it
    assert "frontend-0" in rig.pods()  # the other pods went ahead


def test_a_foreign_volume_holding_an_empty_dirs_name_is_never_mounted(rig: Rig) -> None:
    only(
        rig,
        pod(
            "cache",
            """\
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
    - name: app
      image: sample/frontend:1.0
      command: ["sleep", "3600"]
      volumeMounts: [{name: scratch, mountPath: /scratch}]
""",
        ),
    )
    name = rig.name("cache", "scratch")
    rig.api.create_volume(name=name, labels={"owner": "someone-else"})
    try:
        result = rig.apply()
        assert result.exit_code == 1
        assert f"volume {name} on host local exists and does not carry" in result.output
        assert rig.workload() == []
        assert rig.api.inspect_volume(name)["Labels"] == {"owner": "someone-else"}
    finally:
        with contextlib.suppress(docker.errors.APIError):
            rig.api.remove_volume(name, force=True)


def test_a_foreign_network_holding_the_instance_networks_name_is_never_joined(rig: Rig) -> None:
    name = f"reconciler-{rig.instance}"
    network = rig.api.create_network(name, driver="bridge", labels={"owner": "someone-else"})
    try:
        result = rig.apply()
        assert result.exit_code == 1
        assert f"network {name} on host local does not carry this instance's labels" in (
            result.output
        )
        assert rig.workload() == []
        found = rig.api.inspect_network(network["Id"])
        assert found["Labels"] == {"owner": "someone-else"} and not found["Containers"]
        assert L.MANAGED_BY not in found["Labels"]
    finally:
        rig.api.remove_network(network["Id"])
