"""The multi-host harness itself (``scripts/testhosts``, ``testhosts.TestHosts``).

Each host has its own engine (distinct IDs) at its own address; a port published on one host
is reachable from the root namespace and from a container on another host; one host can be
taken down while the others keep answering, and comes back with its containers restarted.
Only the 10.231.0.x addresses the harness created are ever targeted.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from uuid import uuid4

import docker
import docker.errors
import pytest

from tests.integration.testhosts import TestHosts, host_count, test_hosts

__all__ = ["test_hosts"]  # imported so that pytest finds the fixture

pytestmark = pytest.mark.docker

#: The image of the probe containers: a static busybox with only /bin.
IMAGE = "sample/frontend:1.0"
#: Ports published on the hosts (never 80: see ENVIRONMENT.md).
WEB_PORT = 28080
RESTART_PORT = 28081
HTTPD_PORT = 8080

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``probe`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def http_get(address: str, port: int, timeout: float = 2.0) -> str | None:
    """The body at http://address:port/ from the root namespace (never via a proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{address}:{port}/", timeout=timeout) as response:
            return str(response.read().decode())
    except (OSError, urllib.error.URLError):
        return None


def connects(address: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers(api: docker.APIClient) -> bool:
    try:
        return bool(api.ping())
    except Exception:  # refused, reset, timed out: all mean "down" here
        return False


def run_httpd(
    api: docker.APIClient, text: str, port: int, restart: dict[str, Any] | None = None
) -> str:
    """Start busybox httpd serving ``text`` on container port 8080, published on ``port``."""
    script = (
        f"mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {HTTPD_PORT} -h /www"
    )
    container = api.create_container(
        IMAGE,
        command=["sh", "-c", script],
        name=f"testhosts-web-{uuid4().hex[:8]}",
        ports=[HTTPD_PORT],
        host_config=api.create_host_config(
            port_bindings={HTTPD_PORT: port}, init=True, restart_policy=restart
        ),
    )
    api.start(container["Id"])
    return str(container["Id"])


def remove(api: docker.APIClient, container_id: str) -> None:
    with contextlib.suppress(Exception):
        api.remove_container(container_id, force=True)


@pytest.fixture
def apis(test_hosts: TestHosts) -> Iterator[dict[str, docker.APIClient]]:
    clients = {name: test_hosts.api(name) for name in test_hosts.names}
    yield clients
    for client in clients.values():
        client.close()


def test_hosts_come_up_with_own_engines_and_addresses(
    test_hosts: TestHosts, docker_client: docker.DockerClient
) -> None:
    count = host_count()
    assert test_hosts.names == [f"h{i}" for i in range(1, count + 1)]
    assert test_hosts.hosts_file is not None and test_hosts.hosts_file.is_file()
    zones = ["a", "b", "c"]
    for i, entry in enumerate(test_hosts.hosts, start=1):
        assert entry["address"] == f"10.231.0.1{i}"
        assert entry["url"] == f"tcp://10.231.0.1{i}:2375"
        assert entry["labels"] == {"zone": zones[(i - 1) % 3]}

    ids: dict[str, str] = {}
    for entry in test_hosts.hosts:
        # Reachable from the root namespace at its own address, by the docker CLI too.
        assert connects(entry["address"], 2375), f"{entry['name']}: nothing on :2375"
        shown = subprocess.run(
            ["docker", "-H", entry["url"], "info", "--format", "{{.ID}} {{.Name}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        assert shown[1] == entry["name"], shown  # its own UTS namespace
        ids[entry["name"]] = shown[0]
    assert len(set(ids.values())) == count, f"engine IDs not distinct: {ids}"
    assert docker_client.info()["ID"] not in ids.values(), "a host is the local engine"

    for entry in test_hosts.hosts:
        api = test_hosts.api(entry["name"])
        try:
            assert api.info()["Driver"] == "overlay2"
            assert api.inspect_image(IMAGE)["Id"], f"{IMAGE} not copied to {entry['name']}"
        finally:
            api.close()


def test_published_port_reaches_root_namespace_and_other_hosts(
    test_hosts: TestHosts, apis: dict[str, docker.APIClient]
) -> None:
    h1, h2 = apis["h1"], apis["h2"]
    h1_address = test_hosts.address("h1")
    web = run_httpd(h1, "hello-from-h1", WEB_PORT)
    client_id = ""
    try:
        body = eventually(
            lambda: http_get(h1_address, WEB_PORT), 20, f"{h1_address}:{WEB_PORT} to serve"
        )
        assert body.strip() == "hello-from-h1"
        # Not published on the other hosts' addresses.
        assert not connects(test_hosts.address("h2"), WEB_PORT)

        # From a container on h2, through h2's bridge, the root bridge and h1's published port.
        fetch = f"timeout 5 wget -qO- http://{h1_address}:{WEB_PORT}/"
        client = h2.create_container(
            IMAGE,
            command=["sh", "-c", fetch],
            name=f"testhosts-client-{uuid4().hex[:8]}",
            host_config=h2.create_host_config(init=True),
        )
        client_id = str(client["Id"])
        h2.start(client_id)
        status = h2.wait(client_id, timeout=30)["StatusCode"]
        output = h2.logs(client_id).decode(errors="replace")
        assert status == 0, f"wget from a container on h2 exited {status}: {output}"
        assert output.strip() == "hello-from-h1"
    finally:
        remove(h1, web)
        if client_id:
            remove(h2, client_id)


def test_stopped_host_is_unreachable_and_comes_back(
    test_hosts: TestHosts, apis: dict[str, docker.APIClient]
) -> None:
    h2 = apis["h2"]
    address = test_hosts.address("h2")
    web = run_httpd(h2, "hello-from-h2", RESTART_PORT, restart={"Name": "always"})
    try:
        eventually(lambda: http_get(address, RESTART_PORT), 20, f"{address}:{RESTART_PORT}")
        started = h2.inspect_container(web)["State"]["StartedAt"]

        test_hosts.stop("rt-h2")
        assert not answers(h2), "h2's engine still answers after stop"
        assert not connects(address, 2375)
        assert http_get(address, RESTART_PORT) is None, "h2's container still serves"
        for name in test_hosts.names:
            if name != "h2":
                assert answers(apis[name]), f"{name} went down with h2"

        test_hosts.start("rt-h2")
        assert answers(h2)
        state = eventually(
            lambda: (s := h2.inspect_container(web)["State"])["Running"] and s,
            20,
            "the container on h2 to restart",
        )
        assert state["StartedAt"] != started, "the container was not restarted"
        body = eventually(
            lambda: http_get(address, RESTART_PORT), 20, f"{address}:{RESTART_PORT} again"
        )
        assert body.strip() == "hello-from-h2"
    finally:
        if not answers(h2):  # leave the session's hosts as they were
            test_hosts.start("h2")
        remove(h2, web)
