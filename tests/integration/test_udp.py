"""UDP Services through the forwarder: on one real engine and across the 3 test hosts.

The backends run ``udptool serve`` (tests/integration/udptool.c, compiled static here and
imported with busybox as an image, no registry): each answers a datagram with its pod
name. A client pod asks through the Service's cluster IP (from its env vars) and through
its DNS name; the test itself asks through the NodePort on the hosts' addresses. Every
``udptool ask`` uses a fresh source port, which the forwarder treats as a new client and
sends to a randomly chosen backend, so repeated asks show the spread.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from reconciler.core import labels as L
from reconciler.engine.images import busybox_rootfs, find_static_busybox
from reconciler.forwarder.program import find_compiler

from .conftest import Rig, fetch, free_node_port, free_port, purge, wait_for
from .testhosts import TestHosts, test_hosts

__all__ = ["test_hosts"]  # the fixture, imported to be found

UDPTOOL_SOURCE = Path(__file__).with_name("udptool.c")
ECHO_PORT = 5300


def manifests(image: str, node_port: int, replicas: int) -> str:
    return f"""\
apiVersion: v1
kind: ReplicationController
metadata: {{name: echo}}
spec:
  replicas: {replicas}
  selector: {{app: echo}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      containers:
        - name: echo
          image: {image}
          command: ["sh", "-c", "exec udptool serve {ECHO_PORT} $(hostname)"]
          ports: [{{containerPort: {ECHO_PORT}, protocol: UDP, name: echo}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports: [{{port: 53, targetPort: echo, protocol: UDP, nodePort: {node_port}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: asker}}
spec:
  containers:
    - name: asker
      image: {image}
      command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"""


@pytest.fixture(scope="session")
def udptool(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """(image name, rootfs tar) of busybox plus a static udptool."""
    compiler = find_compiler()
    if compiler is None:
        pytest.fail("no C compiler: install gcc and libc6-dev (scripts/docker-up does)")
    binary = tmp_path_factory.mktemp("udptool") / "udptool"
    subprocess.run(
        [*compiler, "-static", "-O2", "-Wall", "-Werror", "-o", str(binary), str(UDPTOOL_SOURCE)],
        check=True,
        capture_output=True,
    )
    data = binary.read_bytes()
    image = f"reconciler-test/udptool:{hashlib.sha256(data).hexdigest()[:12]}"
    return image, busybox_rootfs(find_static_busybox(), {"/bin/udptool": data})


def ensure_image(api: docker.APIClient, udptool: tuple[str, bytes]) -> str:
    image, rootfs = udptool
    repository, tag = image.split(":")
    try:
        api.inspect_image(image)
    except docker.errors.NotFound:
        api.import_image_from_data(
            rootfs, repository=repository, tag=tag, changes=["ENV PATH=/bin"]
        )
    return image


def ask_from_host(address: str, port: int, message: str, timeout: float = 2.0) -> str | None:
    """One datagram from the test process; the answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(message.encode(), (address, port))
        try:
            data, source = sock.recvfrom(4096)
        except TimeoutError:
            return None
        assert source == (address, port), source  # the answer comes from the service port
        return data.decode()


def names_from_host(address: str, port: int, tries: int = 30) -> set[str]:
    """The backends that answered ``tries`` asks, each from a fresh source port."""
    seen = set()
    for index in range(tries):
        answer = ask_from_host(address, port, f"q{index}")
        if answer is not None:
            name, _, echoed = answer.partition(" ")
            assert echoed == f"q{index}", answer
            seen.add(name)
    return seen


def asks(run: Callable[[str], tuple[int, str]], target: str, tries: int) -> list[tuple[str, str]]:
    """(answering address, backend) of ``tries`` asks made inside the client pod."""
    script = f"for i in $(seq {tries}); do udptool ask {target} 53 ping$i || echo FAILED; done"
    code, output = run(script)
    assert code == 0, output
    lines = output.strip().splitlines()
    assert len(lines) == tries and "FAILED" not in output, output
    result = []
    for line in lines:
        source, name, echoed = line.split(" ")
        assert echoed.startswith("ping"), line
        result.append((source, name))
    return result


def answers_once(run: Callable[[str], tuple[int, str]], target: str) -> bool:
    code, _ = run(f"udptool ask {target} 53 hello")
    return code == 0


def resolve(run: Callable[[str], tuple[int, str]], name: str) -> str:
    code, output = run(f"nslookup {name} | awk '/^Address/ {{a=$NF}} END {{print a}}'")
    assert code == 0, output
    return output.strip()


# -- one host -----------------------------------------------------------------------------------
def test_udp_service_by_env_dns_and_node_port(
    rig: Rig, docker_client: docker.DockerClient, udptool: tuple[str, bytes]
) -> None:
    image = ensure_image(docker_client.api, udptool)
    node_port = free_node_port()
    rig.write("echo/all.yaml", manifests(image, node_port, replicas=2))
    applied = rig.apply()
    assert applied.exit_code == 0, applied.output
    assert "not forwarded" not in applied.output

    def run(script: str) -> tuple[int, str]:
        exec_id = rig.api.exec_create(rig.name("asker", "asker"), ["sh", "-c", script])
        output = rig.api.exec_start(exec_id["Id"]).decode(errors="replace")
        return int(rig.api.exec_inspect(exec_id["Id"])["ExitCode"]), output

    cluster_ip = rig.forwarders()["echo"]["Labels"][L.CLUSTER_IP]
    code, env = run("echo $ECHO_SERVICE_HOST $ECHO_PORT_53_UDP_PROTO $ECHO_PORT")
    assert (code, env.split()) == (0, [cluster_ip, "udp", f"udp://{cluster_ip}:53"])
    wait_for(lambda: answers_once(run, "$ECHO_SERVICE_HOST"), what="a first UDP answer")
    # env var, short name, name.namespace: all the cluster IP, answered from the service port
    for name in ("echo", "echo.default"):
        assert resolve(run, name) == cluster_ip, name
    seen = asks(run, "$ECHO_SERVICE_HOST", 20)
    assert {source for source, _ in seen} == {f"{cluster_ip}:53"}
    assert {name for _, name in seen} == {"echo-0", "echo-1"}  # spread over both backends
    # the NodePort answers on the host's address
    assert wait_for(lambda: names_from_host("127.0.0.1", node_port), what="NodePort") == {
        "echo-0",
        "echo-1",
    }
    # scale to 1: the forwarder follows in the same apply
    rig.edit("echo/all.yaml", "replicas: 2", "replicas: 1")
    assert rig.apply().exit_code == 0
    assert {name for _, name in asks(run, cluster_ip, 10)} == {"echo-0"}
    assert rig.diff().exit_code == 0
    # the Service goes: no answer on the NodePort any more
    rig.write("echo/all.yaml", manifests(image, node_port, 1).split("---\n", 2)[2])
    assert rig.apply().exit_code == 0
    assert "echo" not in rig.forwarders()
    assert ask_from_host("127.0.0.1", node_port, "gone", timeout=1) is None


def test_tcp_and_udp_on_one_port_number_are_two_listeners_of_one_forwarder(
    rig: Rig, docker_client: docker.DockerClient, udptool: tuple[str, bytes]
) -> None:
    image = ensure_image(docker_client.api, udptool)
    port = free_port()
    dns_port, web_port = free_node_port(), free_node_port()
    rig.write(
        "both.yaml",
        f"""\
apiVersion: v1
kind: Pod
metadata: {{name: both, labels: {{app: both}}}}
spec:
  containers:
    - name: both
      image: {image}
      command: ["sh", "-c"]
      args:
        - echo web > /www/index.html && httpd -p {ECHO_PORT} -h /www &&
          exec udptool serve {ECHO_PORT} udp
      ports:
        - {{containerPort: {ECHO_PORT}, protocol: UDP, name: dns}}
        - {{containerPort: {ECHO_PORT}, protocol: TCP, name: web}}
---
apiVersion: v1
kind: Service
metadata: {{name: both}}
spec:
  type: NodePort
  selector: {{app: both}}
  ports:
    - {{port: {port}, targetPort: dns, protocol: UDP, name: dns, nodePort: {dns_port}}}
    - {{port: {port}, targetPort: web, protocol: TCP, name: web, nodePort: {web_port}}}
""",
    )
    applied = rig.apply()
    assert applied.exit_code == 0, applied.output
    udp = wait_for(lambda: names_from_host("127.0.0.1", dns_port, tries=3), what="UDP answer")
    assert udp == {"udp"}
    assert fetch(f"http://127.0.0.1:{web_port}/") == "web"


# -- three hosts --------------------------------------------------------------------------------
@pytest.fixture
def udp_cluster(
    make_rig: Callable[[], Rig], test_hosts: TestHosts, udptool: tuple[str, bytes]
) -> Iterator[tuple[Rig, TestHosts, dict[str, docker.APIClient], str]]:
    rig = make_rig()
    apis = {name: test_hosts.api(name) for name in test_hosts.names}
    image = ""
    for api in apis.values():
        image = ensure_image(api, udptool)
    try:
        yield rig, test_hosts, apis, image
    finally:
        for api in apis.values():
            with contextlib.suppress(docker.errors.DockerException, OSError):
                purge(api, rig.instance)
            api.close()


def test_udp_reaches_backends_on_other_hosts(
    udp_cluster: tuple[Rig, TestHosts, dict[str, docker.APIClient], str],
) -> None:
    rig, hosts, apis, image = udp_cluster
    assert hosts.hosts_file is not None
    node_port = free_node_port()
    rig.write("echo/all.yaml", manifests(image, node_port, replicas=3))
    applied = rig.apply("--hosts", hosts.hosts_file)
    assert applied.exit_code == 0, applied.output
    where: dict[str, str] = {}  # pod -> host
    for host, api in apis.items():
        filters = {"label": [*L.ownership_filters(rig.instance), f"{L.ROLE}={L.ROLE_INFRA}"]}
        for c in api.containers(filters=filters):
            where[c["Labels"][L.POD]] = host
    assert len({where[f"echo-{i}"] for i in range(3)}) == 3, where  # one replica per host
    asker_api = apis[where["asker"]]

    def run(script: str) -> tuple[int, str]:
        exec_id = asker_api.exec_create(rig.name("asker", "asker"), ["sh", "-c", script])
        output = asker_api.exec_start(exec_id["Id"]).decode(errors="replace")
        return int(asker_api.exec_inspect(exec_id["Id"])["ExitCode"]), output

    wait_for(lambda: answers_once(run, "$ECHO_SERVICE_HOST"), what="a first UDP answer")
    backends = {name for _, name in asks(run, resolve(run, "echo.default"), 24)}
    remote = {pod for pod in backends if where[pod] != where["asker"]}
    assert len(backends) >= 2 and remote, (backends, where)
    # the NodePort answers on every host's address, from backends wherever they run
    for entry in hosts.hosts:
        seen = wait_for(
            lambda address=entry["address"]: names_from_host(address, node_port, tries=20),
            what=f"NodePort on {entry['name']}",
        )
        assert len(seen) >= 2 and seen <= {"echo-0", "echo-1", "echo-2"}, (entry, seen)
