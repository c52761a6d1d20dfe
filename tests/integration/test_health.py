"""Probes, readiness, restarts, init containers and in-place forwarder reloads on a real
engine (issue 11). The stand-in app is busybox ``httpd`` serving files a test deletes and
restores to flip its health; the probes run as Docker health checks with the reconciler's
own busybox (docs/health.md)."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from reconciler.core import labels as L

from .conftest import Rig, wait_for
from .test_run import Service

PERIOD, FAILURES = 1, 2
BOUND = PERIOD * FAILURES + 2  # seconds: reconciler run follows a readiness change within it


def node_port() -> int:
    """A node port (30000-32767) nothing listens on here."""
    for _ in range(200):
        port = random.randint(31000, 32700)
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free node port")


def web(replicas: int, port: int, extra: str = "") -> str:
    """An RC of httpd pods answering their name, ready while /www/ready exists."""
    return f"""\
apiVersion: v1
kind: ReplicationController
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{app: web}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: sample/frontend:1.0
          command: [sh, -c]
          args:
            - mkdir -p /www && hostname > /www/index.html && touch /www/ready &&
              exec httpd -f -p 8080 -h /www
          ports: [{{containerPort: 8080, name: http}}]
          readinessProbe:
            httpGet: {{path: /ready, port: http}}
            periodSeconds: {PERIOD}
            failureThreshold: {FAILURES}
{extra}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http, nodePort: {port}}}]
"""


def ask(port: int) -> str:
    """One request to the NodePort, on a fresh connection; "" when it fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return ""
    return data.decode(errors="replace").rsplit("\r\n\r\n", 1)[-1].strip()


class Sampler:
    """Asks the Service over and over in a thread: who answered, when, and failures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[float, str]] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = ask(self.port)
            if answer:
                self.seen.append((time.monotonic(), answer))
            else:
                self.failures += 1
            time.sleep(0.01)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def last(self, pod: str) -> float:
        return max((t for t, who in self.seen if who == pod), default=0.0)

    def since(self, moment: float) -> set[str]:
        return {who for t, who in self.seen if t >= moment}


@pytest.fixture
def service(make_rig: Callable[[], Rig]) -> Iterator[tuple[Rig, Callable[[], Service]]]:
    rig = make_rig()
    started: list[Service] = []

    def start() -> Service:
        made = Service(rig, str(rig.src), "--resync", "600")
        started.append(made)
        return made.start()

    yield rig, start
    for made in started:
        with contextlib.suppress(Exception):
            made.stop(signal.SIGKILL, timeout=10)


def test_an_unready_pod_leaves_the_service_within_the_bound_and_comes_back(
    service: tuple[Rig, Callable[[], Service]],
) -> None:
    rig, start = service
    port = node_port()
    rig.write("web.yaml", web(3, port))
    run = start()
    with Sampler(port) as sampler:
        wait_for(
            lambda: sampler.since(time.monotonic() - 2) == {"web-0", "web-1", "web-2"},
            timeout=60,
            what=f"all three pods to answer\n{run.output()}",
        )
        forwarder = rig.forwarders()["web"]["Id"]
        failures = sampler.failures  # before all were ready, the Service refused
        rig.exec("web-1", "web", ["rm", "/www/ready"])
        removed = time.monotonic()
        wait_for(lambda: time.monotonic() - removed > BOUND + 3, timeout=BOUND + 5)
        gone_after = sampler.last("web-1") - removed
        assert gone_after <= BOUND, f"web-1 still answered {gone_after:.2f}s after it failed"
        assert sampler.since(removed + BOUND) == {"web-0", "web-2"}
        rows = {r["metadata"]["name"]: r for r in pods_json(rig)}
        ready = {c["type"]: c["status"] for c in rows["web-1"]["status"]["conditions"]}
        assert ready["Ready"] == "False" and rows["web-1"]["status"]["phase"] == "Running"
        table = rig.get("pods").output
        assert any(line.split()[:3] == ["web-1", "0/1", "Running"] for line in table.splitlines())
        # restored: back within the bound too
        rig.exec("web-1", "web", ["touch", "/www/ready"])
        restored = time.monotonic()
        wait_for(lambda: sampler.last("web-1") > restored, timeout=BOUND + 5, what="web-1 back")
        assert sampler.last("web-1") - restored <= BOUND + 1
        assert sampler.failures == failures, "the Service stopped answering"
    # the forwarder was reloaded in place, never recreated
    assert rig.forwarders()["web"]["Id"] == forwarder
    assert "reload Service/" in run.output()


def pods_json(rig: Rig) -> list[dict[str, Any]]:
    result = rig.get("pods", "-o", "json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed["kind"] == "List"
    return list(listed["items"])


ECHO = """\
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
          image: sample/frontend:1.0
          command: [nc, -ll, -p, "9000", -e, sh, -c, "hostname; exec cat"]
          ports: [{{containerPort: 9000}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports: [{{port: 9000, nodePort: {port}}}]
"""


def test_a_long_lived_connection_survives_an_endpoint_change(make_rig: Callable[[], Rig]) -> None:
    rig = make_rig()
    port = node_port()
    rig.write("echo.yaml", ECHO.format(replicas=2, port=port))
    rig.applied()
    forwarder = rig.forwarders()["echo"]["Id"]
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    with conn, conn.makefile("rwb") as stream:
        backend = stream.readline().decode().strip()
        assert backend in ("echo-0", "echo-1")
        stream.write(b"before\n")
        stream.flush()
        assert stream.readline() == b"before\n"
        # another backend: the forwarder's endpoints change
        rig.write("echo.yaml", ECHO.format(replicas=3, port=port))
        result = rig.applied()
        assert "reload" in result.output and "Service/echo" in result.output
        assert rig.forwarders()["echo"]["Id"] == forwarder  # reloaded, not recreated
        stream.write(b"after\n")
        stream.flush()
        assert stream.readline() == b"after\n"  # the same connection, still carried
    routes = rig.get("services", "--source", rig.src, "-o", "wide").output
    assert routes.count(":9000") >= 3, routes
    assert rig.diff().exit_code == 0


def test_a_failing_liveness_probe_restarts_with_a_growing_back_off(
    service: tuple[Rig, Callable[[], Service]],
) -> None:
    rig, start = service
    rig.write(
        "sick.yaml",
        """\
apiVersion: v1
kind: Pod
metadata: {name: sick, labels: {app: sick}}
spec:
  containers:
    - name: app
      image: sample/frontend:1.0
      command: [sleep, "3600"]
      livenessProbe:
        exec: {command: [cat, /tmp/never]}
        periodSeconds: 1
        failureThreshold: 1
""",
    )
    run = start()

    def instance() -> dict[str, str]:
        """The app container's labels and state; {} while it is being replaced."""
        found = rig.containers(f"{L.POD}=sick", f"{L.CONTAINER}=app")
        return dict(found[0]["Labels"]) | {"state": found[0]["State"]} if len(found) == 1 else {}

    wait_for(lambda: instance().get(L.RESTARTS) == "2", timeout=30, what=run.output())
    held = instance()
    assert (held[L.BACKOFF], held["state"]) == ("10", "created")  # CrashLoopBackOff
    rows = {r["metadata"]["name"]: r for r in pods_json(rig)}
    [status] = rows["sick"]["status"]["containerStatuses"]
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["restartCount"] == 2
    line = next(line for line in rig.get("pods").output.splitlines() if line.startswith("sick"))
    assert line.split()[2:4] == ["CrashLoopBackOff", "2"]
    wait_for(lambda: instance().get(L.RESTARTS) == "3", timeout=30, what=run.output())
    assert instance()[L.BACKOFF] == "20"  # doubled


def init_pod(second: str, policy: str = "Always") -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: boot, labels: {{app: boot}}}}
spec:
  restartPolicy: {policy}
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
    - name: first
      image: sample/frontend:1.0
      command: [sh, -c, "sleep 1; echo first >> /work/log"]
      volumeMounts: [{{name: work, mountPath: /work}}]
    - name: second
      image: sample/frontend:1.0
      command: [sh, -c, "{second}"]
      volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
    - name: app
      image: sample/frontend:1.0
      command: [sh, -c, "echo app >> /work/log; exec sleep 3600"]
      volumeMounts: [{{name: work, mountPath: /work}}]
"""


def test_init_containers_run_in_order_before_the_app_and_a_failing_one_blocks_it(
    make_rig: Callable[[], Rig],
) -> None:
    rig = make_rig()
    rig.write("boot.yaml", init_pod("echo second >> /work/log"))
    rig.applied()
    assert rig.exec("boot", "app", ["cat", "/work/log"]).split() == ["first", "second", "app"]
    states = rig.states()
    assert states[rig.name("boot", "first")] == states[rig.name("boot", "second")] == "exited"
    ids = rig.ids()
    assert rig.apply().exit_code == 0 and rig.ids() == ids  # not run again
    assert rig.diff().exit_code == 0
    [pod] = pods_json(rig)
    assert [s["state"]["terminated"]["reason"] for s in pod["status"]["initContainerStatuses"]] == [
        "Completed",
        "Completed",
    ]
    assert pod["status"]["phase"] == "Running"
    # a failing one: the app containers never start, restartPolicy Never keeps it failed
    rig.write("boot.yaml", init_pod("exit 3", policy="Never"))
    result = rig.apply()
    assert result.exit_code == 1 and "init container second exited 3" in result.output
    assert rig.name("boot", "app") not in rig.states()
    line = next(line for line in rig.get("pods").output.splitlines() if line.startswith("boot"))
    assert line.split()[1:3] == ["0/1", "Init:Error"]
    [pod] = pods_json(rig)
    assert pod["status"]["phase"] == "Failed"
    second = pod["status"]["initContainerStatuses"][1]
    assert second["state"]["terminated"] == {"exitCode": 3, "reason": "Error"}
    assert rig.apply().exit_code == 0  # nothing to do: it stays failed, no retry
    assert rig.name("boot", "app") not in rig.states()
    named = rig.get("pods", "-o", "name")
    assert named.output.split() == ["pod/boot"]
    as_yaml = yaml.safe_load(rig.get("pods", "-o", "yaml").output)
    assert as_yaml["items"][0]["status"]["reason"] == "Init:Error"
