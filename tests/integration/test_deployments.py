"""Deployments on real engines: rollouts gated on readiness, the progress deadline, the
automatic rollback and how a failure is reported (``apply``, ``reconciler run``'s
``/status``, metric and log, ``rollout status``), and the surge and unavailability limits
sampled all through a rollout over two hosts.

Stand-in images: the sample's busybox ``httpd``. A template never becomes ready when its
container crashes at once (``exit 3``: Docker restarts it, it never stays up) or when its
image cannot be had (``imagePullPolicy: Never`` for a tag no host has: no pod is ever made).
Traffic only goes to 127.0.0.1 or the test hosts' 10.231.0.x addresses.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors
import pytest

from reconciler.core import labels as L

from .conftest import RECONCILER_BIN, Rig, fetch, purge, wait_for
from .test_run import Service
from .testhosts import TestHosts, test_hosts

__all__ = ["test_hosts"]  # the fixture, imported to be found

pytestmark = pytest.mark.docker

HTTPD = (
    'mkdir -p /www && echo "{greeting} $(hostname)" > /www/index.html'
    " && exec httpd -f -p 8080 -h /www"
)


def deployment(
    *,
    greeting: str = "v1",
    replicas: int = 3,
    image: str = "sample/frontend:1.0",
    command: str = HTTPD,
    pull: str = "IfNotPresent",
    deadline: int = 8,
    min_ready: int = 1,
    surge: int | str = "25%",
    unavailable: int | str = "25%",
    probe: bool = False,
) -> str:
    readiness = (
        "\n          readinessProbe:"
        "\n            httpGet: {path: /, port: http}"
        "\n            periodSeconds: 1"
        if probe
        else ""
    )
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  minReadySeconds: {min_ready}
  progressDeadlineSeconds: {deadline}
  strategy:
    rollingUpdate: {{maxSurge: {surge!r}, maxUnavailable: {unavailable!r}}}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
          imagePullPolicy: {pull}
          command: ["sh", "-c"]
          args: [{json.dumps(command.format(greeting=greeting))}]
          ports: [{{containerPort: 8080, name: http}}]{readiness}
"""


def service(node_port: int) -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http, nodePort: {node_port}}}]
"""


def free_node_port() -> int:
    """A port of the NodePort range that nothing listens on here."""
    for port in range(31000 + int(time.time() * 1000) % 1500, 32700):
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in the NodePort range")


class Hammer:
    """GETs to a URL, back to back in a thread, until stopped: every failure is kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hammer", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(fetch(self.url, timeout=3))
            except OSError as exc:
                self.failures.append(f"{time.strftime('%X')}: {exc}")
            time.sleep(0.02)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def running_pods(rig: Rig) -> dict[str, str]:
    """Pod -> its template hash, for Deployment web's pods whose containers all run."""
    pods: dict[str, list[dict[str, Any]]] = {}
    for c in rig.containers(f"{L.OWNER_NAME}=web", f"{L.OWNER_KIND}=Deployment"):
        if c["Labels"].get(L.ROLE) != L.ROLE_ROLLOUT:  # not the rollout's memory
            pods.setdefault(c["Labels"][L.POD], []).append(c)
    return {
        name: cs[0]["Labels"][L.TEMPLATE_HASH]
        for name, cs in pods.items()
        if len(cs) == 2 and all(c["State"] == "running" for c in cs)
    }


def rollout(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RECONCILER_BIN), "rollout", *args, "--instance", rig.instance],
        env=rig.process_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


@pytest.fixture
def rig(make_rig: Callable[[], Rig]) -> Rig:
    """A rig of its own, without the sample's manifests (this module writes its own)."""
    made = make_rig()
    made.src.mkdir(parents=True)
    return made


@pytest.fixture
def run_service(rig: Rig) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def make(*extra: str) -> Service:
        made = Service(rig, str(rig.src), *extra)
        started.append(made)
        return made.start()

    yield make
    for made in started:
        with contextlib.suppress(Exception):
            made.stop(signal.SIGKILL, timeout=10)


def test_a_rollout_that_never_becomes_ready_fails_is_rolled_back_and_reported(
    rig: Rig, run_service: Callable[..., Service]
) -> None:
    """reconciler run: the Service keeps answering through it all, the deadline fails the
    rollout, the old revision is back at full strength, and /status, the metric, the log
    and ``rollout status`` say it failed."""
    node_port = free_node_port()
    rig.write("web/service.yaml", service(node_port))
    rig.write("web/deployment.yaml", deployment(replicas=3, surge=1, unavailable=0))
    served = run_service("--resync", "2")
    wait_for(  # rollout status needs the rollout's memory: written by the first pass
        lambda: "default/web" in served.status().get("rollouts", {}),
        timeout=60,
        what=f"the first pass\n{served.output()}",
    )
    done = rollout(rig, "status", "web", "--timeout", "90")
    assert done.returncode == 0, done.stdout + done.stderr + served.output()
    assert "successfully rolled out" in done.stdout
    good = set(running_pods(rig).values())
    assert len(good) == 1 and len(running_pods(rig)) == 3
    url = f"http://127.0.0.1:{node_port}/"
    wait_for(lambda: fetch(url).startswith("v1"), timeout=30, what="the Service to answer")

    with Hammer(url) as hammer:
        rig.write(
            "web/deployment.yaml",
            deployment(replicas=3, surge=1, unavailable=0, image="sample/frontend:0.404",
                       pull="Never", deadline=5),
        )  # fmt: skip

        def failed() -> dict[str, Any] | None:
            entry = served.status().get("rollouts", {}).get("default/web", {})
            return entry if entry.get("failed") else None

        entry = wait_for(failed, timeout=60, what=f"a failed rollout\n{served.output()}")
        wait_for(lambda: served.status()["rollouts"]["default/web"]["state"] == "complete",
                 timeout=30, what="the rollback")  # fmt: skip
        time.sleep(2)  # and a little more traffic once it is over
    assert len(hammer.answers) > 50 and hammer.failures == [], hammer.failures[:5]
    assert {a.split()[0] for a in hammer.answers} == {"v1"}

    # the old revision at full strength, the failed one gone
    assert set(running_pods(rig).values()) == good and len(running_pods(rig)) == 3
    failure = entry["failed"]
    assert failure["revision"] == 2 and entry["revision"] == 1
    assert failure["source"].endswith("web/deployment.yaml:1:1")
    assert "no progress for 5s" in failure["reason"] and "ErrImageNeverPull" in failure["reason"]
    status = served.status()
    assert status["last_error"]["kind"] == "rollout"
    _, text = served.get("/metrics")
    assert metric(text, "reconciler_rollout_failures_total", deployment="default/web") == 1.0
    log = served.output()
    assert "rollout of Deployment/web FAILED: revision 2" in log
    assert "web/deployment.yaml:1:1" in log and "ErrImageNeverPull" in log
    said = rollout(rig, "status", "web", "--timeout", "10")
    assert said.returncode == 1, said.stdout + said.stderr
    assert "rollout of revision 2 failed" in said.stderr and "running revision 1" in said.stderr
    # the failed template is not tried again: later passes leave it, and keep it marked
    time.sleep(3)
    assert set(running_pods(rig).values()) == good
    assert served.status()["rollouts"]["default/web"]["failed"]["revision"] == 2
    _, text = served.get("/metrics")
    assert metric(text, "reconciler_rollout_failures_total", deployment="default/web") == 1.0


def test_apply_rolls_back_a_crashing_template_and_exits_1_with_its_exit_code(rig: Rig) -> None:
    rig.write("web.yaml", deployment(replicas=2, surge=1, unavailable=0))
    first = rig.apply()
    assert first.exit_code == 0, first.output
    assert "revision 1 rolled out" in first.output
    good = running_pods(rig)
    rig.write(
        "web.yaml",
        deployment(replicas=2, surge=1, unavailable=0, command="exit 3", min_ready=2, deadline=6),
    )
    started = time.monotonic()
    result = rig.apply()
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert 6 <= took < 60, took
    assert "rollout of Deployment/web FAILED: revision 2" in result.output
    assert "no progress for 6s (progressDeadlineSeconds)" in result.output
    assert "exit code 3" in result.output  # what the host said of the crashing container
    assert "rolled back to revision 1" in result.output
    assert running_pods(rig) == good  # full strength, the very same pods
    listed = json.loads(rig.get("deployments", "-o", "json").output)
    [item] = listed["items"]
    assert listed["kind"] == "List" and item["kind"] == "Deployment"
    assert item["status"]["availableReplicas"] == 2 and item["status"]["updatedReplicas"] == 2
    progressing = next(c for c in item["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    history = rollout(rig, "history", "web")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert "complete, current" in lines[2] and "failed" in lines[3], history.stdout
    # not tried again by the next apply, which still says it failed
    again = rig.apply()
    assert again.exit_code == 1 and "applied 0 of 0 action(s)" in again.output, again.output
    assert running_pods(rig) == good


# -- two hosts ----------------------------------------------------------------------------------
def _ready(containers: list[dict[str, Any]]) -> bool:
    """A pod ready as its readiness probe says: both containers run, and the infra
    container's Docker health (the pod's readiness, docs/health.md) is healthy."""
    if len(containers) != 2 or not all(c["State"] == "running" for c in containers):
        return False
    infra = [c for c in containers if c["Labels"].get(L.ROLE) == L.ROLE_INFRA]
    return all(c["Status"].endswith("(healthy)") for c in infra if c["Labels"].get(L.HEALTH))


def _sample(apis: dict[str, docker.APIClient], instance: str) -> tuple[int, int]:
    """(pods, ready pods) of Deployment web on every host, listed at the same moment."""

    def listed(api: docker.APIClient) -> list[dict[str, Any]]:
        filters = {"label": [*L.ownership_filters(instance), f"{L.OWNER_KIND}=Deployment"]}
        return list(api.containers(all=True, filters=filters))

    with ThreadPoolExecutor(max_workers=len(apis)) as pool:
        found = [c for part in pool.map(listed, apis.values()) for c in part]
    pods: dict[str, list[dict[str, Any]]] = {}
    for c in found:
        if c["Labels"].get(L.ROLE) != L.ROLE_ROLLOUT:  # not the rollout's memory
            pods.setdefault(c["Labels"][L.POD], []).append(c)
    return len(pods), sum(1 for cs in pods.values() if _ready(cs))


def test_surge_and_unavailability_hold_at_every_sample_of_a_rollout_over_two_hosts(
    rig: Rig, test_hosts: TestHosts
) -> None:
    hosts_file = rig.root / "two-hosts.yaml"
    two = [h for h in test_hosts.hosts if h["name"] in ("h1", "h2")]
    hosts_file.write_text(json.dumps({"hosts": two}))
    apis = {h["name"]: test_hosts.api(h["name"]) for h in two}
    try:
        replicas, surge, unavailable = 6, 2, 1
        options = {
            "replicas": replicas,
            "surge": surge,
            "unavailable": unavailable,
            "probe": True,  # ready is what the readiness probe says
        }
        rig.write("web.yaml", deployment(**options))  # type: ignore[arg-type]
        first = rig.apply("--hosts", hosts_file)
        assert first.exit_code == 0, first.output
        rig.write("web.yaml", deployment(greeting="v2", **options))  # type: ignore[arg-type]
        samples: list[tuple[int, int]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(_sample(apis, rig.instance))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, name="sampler", daemon=True)
        sampler.start()
        try:
            result = rig.apply("--hosts", hosts_file)
        finally:
            stop.set()
            sampler.join(timeout=30)
        assert result.exit_code == 0, result.output
        assert len(samples) >= 30, samples
        too_many = [s for s in samples if s[0] > replicas + surge]
        too_few = [s for s in samples if s[1] < replicas - unavailable]
        assert not too_many and not too_few, samples
        assert max(pods for pods, _ in samples) == replicas + surge  # the surge was used
        assert min(ready for _, ready in samples) == replicas - unavailable  # and the room
        placed: dict[str, set[str]] = {}
        for name, api in apis.items():
            filters = {"label": [*L.ownership_filters(rig.instance), f"{L.ROLE}={L.ROLE_INFRA}"]}
            for c in api.containers(filters=filters):
                if c["Labels"].get(L.OWNER_KIND) == "Deployment":
                    placed.setdefault(name, set()).add(c["Labels"][L.POD])
        assert set(placed) == {"h1", "h2"}, placed  # spread over both hosts
        hashes = {p.split("-")[1] for pods in placed.values() for p in pods}
        assert len(hashes) == 1 and sum(map(len, placed.values())) == replicas
    finally:
        for api in apis.values():
            with contextlib.suppress(docker.errors.DockerException, OSError):
                purge(api, rig.instance)
            api.close()


def test_undo_and_restart_are_recorded_on_the_host_and_rolled_out_by_apply(rig: Rig) -> None:
    rig.write("web.yaml", deployment(replicas=2, min_ready=0))
    assert rig.apply().exit_code == 0
    first = set(running_pods(rig).values())
    rig.write("web.yaml", deployment(greeting="v2", replicas=2, min_ready=0))
    assert rig.apply().exit_code == 0
    second = set(running_pods(rig).values())
    assert first != second
    undone = rollout(rig, "undo", "web")
    assert undone.returncode == 0, undone.stderr
    assert "rolled back to revision 1" in undone.stdout
    result = rig.apply()  # the manifest still says v2: the undo holds
    assert result.exit_code == 0, result.output
    assert set(running_pods(rig).values()) == first
    restarted = rollout(rig, "restart", "web")
    assert restarted.returncode == 0, restarted.stderr
    result = rig.apply()  # a restart drops the undo and rolls the manifest out afresh
    assert result.exit_code == 0, result.output
    third = set(running_pods(rig).values())
    assert third.isdisjoint(first | second) and len(third) == 1
    history = rollout(rig, "history", "web")
    assert history.returncode == 0, history.stderr
    assert [line.split()[0] for line in history.stdout.splitlines()[2:]] == ["1", "2", "3"]
    assert "current" in history.stdout.splitlines()[-1]
    status = rollout(rig, "status", "web", "--timeout", "30")
    assert status.returncode == 0 and "successfully rolled out" in status.stdout
    nothing = rollout(rig, "status", "nope", "--timeout", "5")
    assert nothing.returncode == 1 and "no rollout recorded" in nothing.stderr
