"""The pure parts of health: probes from manifests, what each health check runs, how a
live pod's readiness is read, the back-off, and the check script itself (run with the
machine's static busybox against a local HTTP server, as a container's check would)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core import health
from reconciler.core import labels as L
from reconciler.core.model import DesiredContainer, LiveContainer, Probe
from reconciler.desire.compute import compute_desired
from reconciler.desire.probes import normalise_probe, probes_of
from reconciler.desire.settings import Settings
from reconciler.engine import probes as P
from reconciler.engine import translate as T
from reconciler.plan.lifecycle import next_restart
from reconciler.plan.live import pod_ready
from reconciler.plan.model import Verb
from reconciler.render.plans import _VERB_MARKS, _VERB_STYLES
from reconciler.source.hosts import Host

from .test_apply_memory import manifests
from .test_health_memory import probed_rc


def box(
    role: str, status: str = "Up 1 minute", state: str = "running", **labels: str
) -> LiveContainer:
    return LiveContainer(
        id=f"{role}-{status}",
        name=role,
        host="h1",
        labels={L.ROLE: role, **labels},
        state=state,
        status=status,
        created=1000,
        image="img",
    )


# -- probes from manifests ----------------------------------------------------------------------
def test_probe_defaults_are_kubernetes_and_zero_means_the_default() -> None:
    probe = normalise_probe({"httpGet": {"port": 80, "path": "healthz"}, "periodSeconds": 0})
    assert probe == {
        "httpGet": {
            "path": "/healthz",
            "port": 80,
            "host": "",
            "scheme": "HTTP",
            "httpHeaders": [],
        },
        "initialDelaySeconds": 0,
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert normalise_probe({"grpc": {"port": 80}}) is None  # not run: as if not written


def test_named_ports_resolve_to_the_container_port() -> None:
    container = {
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": normalise_probe({"httpGet": {"port": "http"}}),
        "livenessProbe": normalise_probe({"tcpSocket": {"port": 9090}}),
        "startupProbe": normalise_probe({"exec": {"command": ["cat", "/ok"]}}),
    }
    by_kind = {p.kind: p for p in probes_of(container)}
    assert (by_kind["readiness"].handler, by_kind["readiness"].port) == ("http", 8080)
    assert (by_kind["liveness"].handler, by_kind["liveness"].port) == ("tcp", 9090)
    assert by_kind["startup"].command == ("cat", "/ok")


# -- what runs where --------------------------------------------------------------------------
def _pod(text: str):  # type: ignore[no-untyped-def]
    state = compute_desired(
        manifests(text), [Host("h1", "tcp://10.0.0.1:2375", "10.0.0.1")], {}, Settings()
    )
    return next(p for p in state.pods if p.owner.kind != "Service")


def test_checks_go_where_they_can_run_and_labels_say_what_they_carry() -> None:
    pod = _pod(probed_rc(liveness=True))
    [app] = pod.app_containers
    infra_args = T.infra_args(pod, "i", "r")
    app_args = T.app_args(pod, app, "infra-id", "i", "r")
    # the HTTP readiness probe runs from the infra; the exec liveness probe in the app
    assert infra_args.labels[L.HEALTH] == "readiness"
    assert app_args.labels[L.HEALTH] == "liveness"
    assert app_args.labels[L.PROBES] == "liveness,readiness"
    assert infra_args.healthcheck is not None and app_args.healthcheck is not None
    assert (
        "run readiness app 0 1 1 1 2 http http://127.0.0.1:8080/ready"
        in (infra_args.healthcheck.test[-1])
    )
    assert "run liveness app 0 1 1 1 3 exec cat /tmp/alive" in app_args.healthcheck.test[-1]
    assert infra_args.healthcheck.test[:3] == (P.BUSYBOX, "sh", "-c")
    docker = app_args.healthcheck.as_docker()
    assert docker["Test"][0] == "CMD" and docker["Retries"] == 1
    assert docker["Interval"] == 1_000_000_000 and docker["Timeout"] == 3_000_000_000
    tools = T.VolumeMount(P.TOOLS_MOUNT, P.tools_volume("i"), read_only=True)
    assert tools in app_args.volume_mounts and tools in infra_args.volume_mounts


def test_a_pod_without_probes_has_no_check_no_tools_and_no_new_label() -> None:
    pod = _pod(probed_rc(readiness=False))
    infra_args = T.infra_args(pod, "i", "r")
    app_args = T.app_args(pod, pod.app_containers[0], "infra-id", "i", "r")
    for args in (infra_args, app_args):
        assert args.healthcheck is None and args.volume_mounts == ()
        assert not {L.HEALTH, L.PROBES, L.RESTARTS} & set(args.labels)
    assert not P.needs_tools(pod)


def test_init_containers_never_restart_by_docker() -> None:
    pod = _pod(probed_rc(readiness=False, policy="Always", inits=1))
    [init] = pod.init_containers
    assert init.role == L.ROLE_INIT
    assert T.app_args(pod, init, "infra-id", "i", "r").restart_policy == "no"
    assert T.app_args(pod, pod.app_containers[0], "infra-id", "i", "r").restart_policy == "always"


# -- a live pod's readiness ---------------------------------------------------------------------
def test_pod_ready_reads_the_list_call() -> None:
    infra, app = box(L.ROLE_INFRA), box(L.ROLE_APP)
    assert pod_ready([infra, app])  # no probes: running is ready
    assert not pod_ready([infra])  # no app container (initializing)
    assert not pod_ready([box(L.ROLE_INFRA, state="exited"), app])
    assert not pod_ready([infra, box(L.ROLE_APP, state="restarting")])
    checked = {L.HEALTH: "readiness"}
    assert pod_ready([box(L.ROLE_INFRA, "Up 1 minute (healthy)", **checked), app])
    assert not pod_ready([box(L.ROLE_INFRA, "Up 1 minute (unhealthy)", **checked), app])
    assert not pod_ready([box(L.ROLE_INFRA, "Up 2 seconds (health: starting)", **checked), app])
    # an app failing its liveness probe is not ready, whatever the infra says
    sick = box(L.ROLE_APP, "Up 1 minute (unhealthy)", **{L.HEALTH: "liveness"})
    assert not pod_ready([box(L.ROLE_INFRA, "Up 1 minute (healthy)", **checked), sick])
    # not yet checked since it (re)started: unknown, so not ready when it feeds readiness
    fresh = box(L.ROLE_APP, "Up 1 second (health: starting)", **{L.HEALTH: "startup,liveness"})
    assert not pod_ready([infra, fresh])
    live_only = box(L.ROLE_APP, "Up 1 second (health: starting)", **{L.HEALTH: "liveness"})
    assert pod_ready([infra, live_only])
    # completed init containers count for nothing
    assert pod_ready([infra, box(L.ROLE_INIT, "Exited (0) 1 minute ago", "exited"), app])


def test_container_ready_follows_the_pod_for_probed_containers() -> None:
    probed = box(L.ROLE_APP, **{L.PROBES: "readiness"})
    plain = box(L.ROLE_APP)
    assert health.container_ready(plain, pod_is_ready=False)
    assert not health.container_ready(probed, pod_is_ready=False)
    assert health.container_ready(probed, pod_is_ready=True)


# -- back-off ----------------------------------------------------------------------------------
def test_back_off_is_kubernetes_own() -> None:
    first = box(L.ROLE_APP)
    assert next_restart(first, 1500) == next_restart(first, 1500)
    restart = next_restart(first, 1500)
    assert (restart.count, restart.backoff, restart.start_after) == (1, 0, 0.0)
    delays = []
    labels = {L.RESTARTS: "1", L.BACKOFF: "0"}
    for _ in range(8):
        container = box(L.ROLE_APP, **labels)
        restart = next_restart(container, 1100)
        delays.append(restart.backoff)
        labels = {L.RESTARTS: str(restart.count), L.BACKOFF: str(restart.backoff)}
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    assert restart.start_after == 1100 + 300
    # ran ten minutes since it started (its start-after): the back-off is forgotten
    long_lived = box(L.ROLE_APP, **labels, **{L.START_AFTER: "1100"})
    assert next_restart(long_lived, 1100 + 600).backoff == 0


def test_every_verb_prints() -> None:
    assert set(_VERB_MARKS) == set(_VERB_STYLES) == {v.value for v in Verb}


# -- the check script, run ----------------------------------------------------------------------
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


@pytest.fixture()
def web(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "ready").write_text("ok")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], root
    server.shutdown()
    server.server_close()


def _check(script: str, state: Path) -> tuple[int, str]:
    """One check as Docker runs it, with the local busybox and its own state directory,
    a period after the last (every probe is due)."""
    for kind in ("liveness", "readiness", "startup"):
        for kept in state.glob(f"*.{kind}"):
            _, *rest = kept.read_text().split()
            kept.write_text(" ".join(["0", *rest]) + "\n")
    text = script.replace(P.BUSYBOX, BUSYBOX).replace(P.STATE_DIR, str(state))
    done = subprocess.run(
        [BUSYBOX, "sh", "-c", text], capture_output=True, text=True, timeout=30, check=False
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs a busybox")
def test_the_check_script_keeps_thresholds_and_gates_on_startup(
    web: tuple[int, Path], tmp_path: Path
) -> None:
    port, root = web
    state = tmp_path / "state"
    container = DesiredContainer(
        "x_app",
        "app",
        L.ROLE_APP,
        "img",
        "IfNotPresent",
        probes=(
            Probe("startup", "tcp", port=port, period=1, failure_threshold=30),
            Probe(
                "liveness",
                "http",
                port=port,
                path="/ready",
                headers=(("X-Odd", "it's $HOME `x`"),),
                period=1,
                failure_threshold=2,
            ),
        ),
    )
    script = P.app_script(container)
    assert _check(script, state)[0] == 0  # started, alive
    assert (state / "app.started").exists()
    (root / "ready").unlink()
    code, out = _check(script, state)
    assert code == 0 and "liveness probe failed (1/2)" in out  # one failure is not enough
    code, out = _check(script, state)
    assert code == 1 and "liveness probe failed (2/2)" in out and "to be restarted" in out
    (root / "ready").write_text("ok")
    assert _check(script, state)[0] == 0  # one success brings it back
    # a check before the probe's period is over runs nothing: the verdict stays
    (root / "ready").unlink()
    text = script.replace(P.BUSYBOX, BUSYBOX).replace(P.STATE_DIR, str(state))
    for _ in range(3):
        run = subprocess.run([BUSYBOX, "sh", "-c", text], capture_output=True, timeout=30)
        assert run.returncode == 0 and b"failed" not in run.stdout


# -- nothing changes for pods without probes or init containers --------------------------------
#: a Pod and an RC (on two hosts: published ports) as written before probes and init
#: containers were honoured, and the spec hashes main (51b4b06) gave them: an upgrade of the
#: reconciler must not recreate a running pod
UNPROBED = """\
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {app: db}}
spec:
  restartPolicy: OnFailure
  volumes: [{name: data, emptyDir: {}}]
  containers:
    - name: db
      image: example/db:1.0
      command: [sh, -c]
      args: ["exec sleep 3600"]
      env: [{name: MODE, value: primary}]
      ports: [{containerPort: 3306, name: mysql}]
      resources: {requests: {cpu: 500m, memory: 64Mi}, limits: {memory: 128Mi}}
      volumeMounts: [{name: data, mountPath: /var/lib/db}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: example/web:1.0
          ports: [{containerPort: 8080, name: http}]
        - name: cache
          image: example/cache:latest
"""
HASHES_BEFORE = {"db": "ff642d98167ddcc2", "web-0": "935233a99f5d7a0c", "web-1": "0248038e019ef902"}


def test_pods_without_probes_keep_their_spec_hash() -> None:
    hosts = [Host("h1", "unix:///x", "127.0.0.1"), Host("h2", "unix:///y", "127.0.0.2")]
    state = compute_desired(manifests(UNPROBED), hosts, {}, Settings(instance="pin"))
    hashes = {p.name: p.spec_hash for p in state.pods if p.owner.kind != "Service"}
    assert hashes == HASHES_BEFORE
