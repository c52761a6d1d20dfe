"""Observe's list calls without docker-py (``engine.listing``), against the real engine.

Over the unix socket and over plain tcp (a byte relay on 127.0.0.1 in front of the same
socket, so that connections can be counted and cut), the state observed is exactly what
docker-py's list call gives, through one kept-alive connection per host that survives the
engine closing it; no docker-py client is opened; failures are worded as docker-py's are.
TLS and ssh take the same path in ``test_remote_hosts.py``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from reconciler.core import labels as L
from reconciler.core.errors import ApplyError, HostUnavailable
from reconciler.engine import translate as T
from reconciler.engine.client import call, list_containers
from reconciler.engine.host import DockerHost
from reconciler.engine.sdk import open_client
from reconciler.source.hosts import DEFAULT_SOCKET, Host

from .conftest import Rig, free_port

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: listed, labels: {app: listed}}
spec:
  containers:
    - name: web
      image: sample/frontend:1.0
      command: ["sh", "-c", "exec sleep 3600"]
"""
SOCKET = (os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET).removeprefix("unix://")


class Relay:
    """TCP on 127.0.0.1 to the engine's unix socket, byte for byte; counts connections."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.accepted = 0
        self.open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(SOCKET)
            self.accepted += 1
            self.open += [client, engine]
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every open connection, as an engine closes an idle kept-alive one."""
        for end in self.open:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        self.open.clear()

    def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    made = Relay()
    yield made
    made.close()


@pytest.fixture
def listed(make_rig: Callable[[], Rig]) -> Rig:
    rig = make_rig()
    rig.write("pod.yaml", POD)
    result = rig.apply()
    assert result.exit_code == 0, result.output
    return rig


def _as_docker_py_sees_it(rig: Rig, host: Host) -> Any:
    filters = {"label": L.ownership_filters(rig.instance)}
    return T.host_state(host.name, rig.instance, rig.api.containers(all=True, filters=filters))


def test_observe_over_the_unix_socket_is_docker_py_s_list_without_docker_py(listed: Rig) -> None:
    host = Host("local", f"unix://{SOCKET}", "127.0.0.1")
    runtime = DockerHost(host, instance=listed.instance)
    state = runtime.observe(volumes=False)
    assert state.reachable, state.error
    assert state == _as_docker_py_sees_it(listed, host)
    assert {c.labels.get(L.POD) for c in state.containers} == {"listed"}
    assert runtime.calls == 1
    assert runtime._api is None  # the docker-py client was never opened
    with_volumes = runtime.observe(volumes=True)
    assert with_volumes.reachable and runtime.calls == 3
    runtime.close()


def test_observe_over_tcp_keeps_one_connection_and_survives_its_loss(
    listed: Rig, relay: Relay
) -> None:
    host = Host("relayed", f"tcp://127.0.0.1:{relay.port}", "127.0.0.1")
    runtime = DockerHost(host, instance=listed.instance)
    states = [runtime.observe(volumes=True) for _ in range(3)]
    assert all(s.reachable for s in states), states[0].error
    assert states[0] == _as_docker_py_sees_it(listed, host)
    assert relay.accepted == 1  # six requests, one connection
    relay.cut()  # the engine closed the idle connection
    again = runtime.observe(volumes=False)
    assert again.reachable, again.error
    assert again.containers == states[0].containers
    assert relay.accepted == 2
    assert runtime.calls == 7 and runtime._api is None
    runtime.close()


def test_the_engine_s_refusal_and_unreachable_engines_are_worded_as_docker_py_words_them(
    docker_client: docker.DockerClient, relay: Relay
) -> None:
    del docker_client  # only to fail early when no engine answers
    hosts = [
        Host("local", f"unix://{SOCKET}", "127.0.0.1"),
        Host("relayed", f"tcp://127.0.0.1:{relay.port}", "127.0.0.1"),
    ]
    for host in hosts:  # a filter the engine refuses: its own message, as ApplyError
        runtime = DockerHost(host, instance="it-listing")
        with pytest.raises(ApplyError) as ours:
            list_containers(runtime.lister, {"bogus": "x"}, list)
        api = open_client(host, 10, lambda _method: None)
        with pytest.raises(ApplyError) as theirs:
            call(host, "list containers", api.containers, all=True, filters={"bogus": "x"})
        assert str(ours.value) == str(theirs.value) == "list containers: Invalid filter 'bogus'"
        api.close()
        runtime.close()
    gone = [
        Host("nosocket", "unix:///nonexistent/docker.sock", "127.0.0.1"),
        Host("refused", f"tcp://127.0.0.1:{free_port()}", "127.0.0.1"),
    ]
    for host in gone:
        state = DockerHost(host, instance="it-listing").observe()
        api = open_client(host, 10, lambda _method: None)
        with pytest.raises(HostUnavailable) as unavailable:
            call(host, "list containers", api.containers, all=True)
        assert not state.reachable
        assert state.error == str(unavailable.value)
        assert "no such socket" in state.error or "connection refused" in state.error
        api.close()
