"""Convergence benchmarks: how fast reconciler creates pods, and how cheap a no-op pass is.

Run from the repository root::

    .venv/bin/python -m bench.converge                     # both benchmarks, full size
    .venv/bin/python -m bench.converge --only create --pods 100
    .venv/bin/python -m bench.converge --only noop --containers 100   # a quick run
    .venv/bin/python -m bench.converge --json              # adds one machine-readable line

1. create: N pods (one ReplicationController, N replicas of a one-container pod, so 2N
   containers: infra + app) on an empty host, against a *floor*: the very same 2N containers
   (same names, images, command, labels and host options: init, ipc shareable / joined,
   network_mode container:<infra>, restart policy) created and started with the Docker SDK's
   APIClient straight away in a pool of 8 threads, with nothing computed while timed. The
   reconciler runs the same pods with concurrency 8, once in-process (load, validate,
   observe, plan, apply) and once as the whole ``reconciler apply`` command (start-up
   included). Target: reconciler within 1.3x of the floor.

2. noop: C app containers kept by reconciler (one RC of C/K replicas of a pod with K app
   containers, plus one infra container per pod), then a no-op pass timed in-process
   (observe+plan; DockerHost counts its calls and writes) and as the whole ``reconciler
   diff`` command. Peer: docker-compose 1.29.2 (its own venv) with K services of
   ``scale: C/K`` (replicas <-> scale, a pod's containers <-> services: the same C app
   containers, same image and command; compose has no infra containers), brought up once,
   then a no-op ``docker-compose up -d`` timed; both fleets run at once and the no-op
   passes alternate, so both see the same machine load. Docker API requests of both CLIs are
   counted through a small counting proxy in front of the engine's unix socket (separate
   runs, so the proxy never skews the timings). Targets: reconciler >= 20x faster than
   compose's no-op, and exactly one list call per host (0 writes).

Everything created carries this run's unique instance label / compose project name and is
removed at the end (containers killed: stop timeout 0); nothing else is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from bench import verdicts
from bench.services import start_run
from reconciler.apply.converge import apply_plan, connect, load_source, make_plan, observe
from reconciler.core import labels as L
from reconciler.core.model import DesiredPod
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.engine.host import DockerHost
from reconciler.engine.translate import container_labels
from reconciler.source.hosts import DEFAULT_SOCKET, Host

API_VERSION = "1.41"
SLEEP_COMMAND = ("/bin/sleep", "2147483647")
CREATE_TARGET = 1.3  # reconciler / floor, at most
NOOP_TARGET = 20.0  # compose no-op / reconciler no-op, at least
COMPOSE_VERSION = "1.29.2"
COMPOSE_PINS = (
    ("cython<3", "wheel"),
    ("--no-build-isolation", "PyYAML==5.4.1"),
    (f"docker-compose=={COMPOSE_VERSION}", "docker==6.1.3", "requests<2.32"),
)
REPO = Path(__file__).resolve().parent.parent
DEFAULT_COMPOSE_VENV = REPO / "bench" / "out" / "peers" / f"compose-{COMPOSE_VERSION}"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


# -- pure parts ------------------------------------------------------------------------------
def rc_manifest(
    name: str,
    replicas: int,
    image: str,
    apps_per_pod: int = 1,
    command: Sequence[str] = SLEEP_COMMAND,
) -> str:
    """One ReplicationController: ``replicas`` pods of ``apps_per_pod`` app containers."""
    args = json.dumps(list(command))
    containers = "".join(
        f"        - name: c{i}\n"
        f"          image: {json.dumps(image)}\n"
        f"          imagePullPolicy: IfNotPresent\n"
        f"          args: {args}\n"
        for i in range(apps_per_pod)
    )
    return (
        "apiVersion: v1\n"
        "kind: ReplicationController\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        f"  replicas: {replicas}\n"
        f"  selector: {{app: {name}}}\n"
        "  template:\n"
        "    metadata:\n"
        f"      labels: {{app: {name}}}\n"
        "    spec:\n"
        "      containers:\n" + containers
    )


def compose_file(
    services: int, scale: int, image: str, command: Sequence[str] = SLEEP_COMMAND
) -> str:
    """The compose peer of ``rc_manifest``: one service per pod container, ``scale`` each.

    Format 2.4 (``scale:`` is honoured by ``up``). No ``init``: it stalls compose 1.29 here.
    """
    body = "".join(
        f"  c{i}:\n"
        f"    image: {json.dumps(image)}\n"
        f"    command: {json.dumps(list(command))}\n"
        f"    scale: {scale}\n"
        "    restart: always\n"
        for i in range(services)
    )
    return 'version: "2.4"\nservices:\n' + body


def split_containers(containers: int, apps_per_pod: int) -> tuple[int, int]:
    """(pods, app containers actually run) for about ``containers`` app containers."""
    apps = max(1, apps_per_pod)
    pods = max(1, round(containers / apps))
    return pods, pods * apps


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("inf")


def verdict(ok: bool | None) -> str:
    return verdicts.status(ok)


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


_ID = re.compile(r"^[0-9a-f]{12,64}$")
_OBJECTS = {"containers", "images", "networks", "volumes", "exec", "plugins", "services"}
_VERBS = {"json", "create", "prune", "load", "search", "get"}


def endpoint(method: str, target: str) -> str:
    """``GET /v1.41/containers/abc/json?x=1`` -> ``GET /containers/*/json``."""
    path = target.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if parts and re.fullmatch(r"v\d+\.\d+", parts[0]):
        parts = parts[1:]
    if len(parts) > 2 and parts[0] == "images":  # image names hold slashes
        parts = [parts[0], "*", parts[-1]]
    out: list[str] = []
    for index, part in enumerate(parts):
        previous = parts[index - 1] if index else ""
        if previous in _OBJECTS and (part not in _VERBS or _ID.match(part)):
            out.append("*")
        else:
            out.append(part)
    return f"{method} /" + "/".join(out)


class RequestCounter:
    """Counts the HTTP/1.1 requests in one client-to-server byte stream (fed in pieces).

    Follows Content-Length and chunked bodies; after an Upgrade it stops parsing (the
    stream is no longer HTTP).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.upgraded = False
        self._buffer = b""
        self._state = "head"
        self._remaining = 0

    def feed(self, data: bytes) -> None:
        if self.upgraded:
            return
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume one element of the stream; False when more bytes are needed."""
        if self._state == "head":
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = self._buffer[:end].decode("latin-1")
            self._buffer = self._buffer[end + 4 :]
            lines = head.lstrip("\r\n").split("\r\n")
            method, _, rest = lines[0].partition(" ")
            self.requests.append((method, rest.rsplit(" ", 1)[0]))
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip().lower()
            if "upgrade" in headers.get("connection", ""):
                self.upgraded = True
                self._buffer = b""
                return False
            if "chunked" in headers.get("transfer-encoding", ""):
                self._state = "chunk-size"
            elif int(headers.get("content-length") or 0) > 0:
                self._state, self._remaining = "body", int(headers["content-length"])
            return True
        if self._state in ("body", "chunk"):
            if not self._buffer:
                return False
            take = min(len(self._buffer), self._remaining)
            self._buffer = self._buffer[take:]
            self._remaining -= take
            if self._remaining:
                return False
            self._state = "head" if self._state == "body" else "chunk-size"
            return True
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        line = self._buffer[:end]
        self._buffer = self._buffer[end + 2 :]
        if self._state == "chunk-size":
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size:
                self._state, self._remaining = "chunk", size + 2
            else:
                self._state = "trailer"
        elif not line:  # trailer: an empty line ends the message
            self._state = "head"
        return True


def summarise(requests: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Requests by endpoint, most frequent first."""
    return dict(Counter(endpoint(m, t) for m, t in requests).most_common())


# -- the counting proxy ----------------------------------------------------------------------
class CountingProxy:
    """Forwards a unix socket to the engine's, counting the HTTP requests that go through."""

    def __init__(self, upstream: str, directory: str) -> None:
        self.upstream = upstream
        self.path = os.path.join(directory, "docker.sock")
        self._counters: list[RequestCounter] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(128)
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.upstream)
            except OSError:
                client.close()
                continue
            counter = RequestCounter()
            with self._lock:
                self._counters.append(counter)
                self._sockets += [client, upstream]
            for source, sink, count in ((client, upstream, counter), (upstream, client, None)):
                threading.Thread(target=self._pump, args=(source, sink, count), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, counter: RequestCounter | None) -> None:
        try:
            while data := source.recv(262144):
                if counter is not None:
                    counter.feed(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return [r for c in self._counters for r in c.requests]

    def reset(self) -> None:
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()
            self._counters, self._sockets = [], []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.close()
        self.reset()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


# -- Docker helpers --------------------------------------------------------------------------
@dataclass
class Bench:
    """One run: its unique id, the engine, the images it made, what it must clean up."""

    docker_host: str
    run_id: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    verbose: bool = False
    instances: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    images_made: list[str] = field(default_factory=list)
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="reconciler-bench-"))

    def __post_init__(self) -> None:
        self.api = docker.APIClient(
            base_url=self.docker_host, version=API_VERSION, timeout=600, max_pool_size=16
        )
        self.host = Host(name="local", url=self.docker_host, address="127.0.0.1")
        self.app_image = f"reconciler-bench/app:{self.run_id}"
        self.infra_image = f"reconciler-bench/pause:{self.run_id}"

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def instance(self, suffix: str) -> str:
        name = f"{self.run_id}-{suffix}"
        self.instances.append(name)
        return name

    def project(self, suffix: str) -> str:
        name = f"{self.run_id}{suffix}".replace("-", "")
        self.projects.append(name)
        return name

    def make_images(self) -> None:
        """A busybox app image and infra image of this run's own (removed at the end)."""
        maker = DockerHost(self.host, instance=self.run_id)
        for image in (self.app_image, self.infra_image):
            maker.import_busybox_image(image)
            self.images_made.append(image)
        maker.close()

    # clean-up: only what carries this run's labels
    def remove_labelled(self, label: str, value: str, workers: int = 8) -> int:
        found = self.api.containers(all=True, filters={"label": [f"{label}={value}"]})
        found = [c for c in found if (c.get("Labels") or {}).get(label) == value]
        # app containers first, then the infra containers they joined
        phases = [
            [c["Id"] for c in found if (c.get("Labels") or {}).get(L.ROLE) != L.ROLE_INFRA],
            [c["Id"] for c in found if (c.get("Labels") or {}).get(L.ROLE) == L.ROLE_INFRA],
        ]

        def remove(container_id: str) -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(container_id, force=True)  # kill: stop timeout 0

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for ids in phases:
                list(pool.map(remove, ids))
        return len(found)

    def labelled_networks(self, label: str, value: str) -> list[dict[str, Any]]:
        found = self.api.networks(filters={"label": [f"{label}={value}"]}) or []
        return [n for n in found if (n.get("Labels") or {}).get(label) == value]

    def remove_networks(self, label: str, value: str) -> None:
        """The networks carrying ``label=value`` (reconciler's instance network, compose's
        project network), once their containers are gone."""
        for network in self.labelled_networks(label, value):
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_network(network["Id"])

    def remove_instance(self, instance: str) -> int:
        removed = self.remove_labelled(L.INSTANCE, instance)
        self.remove_networks(L.INSTANCE, instance)
        return removed

    def remove_project(self, project: str) -> int:
        removed = self.remove_labelled(COMPOSE_PROJECT_LABEL, project)
        self.remove_networks(COMPOSE_PROJECT_LABEL, project)
        return removed

    def leftover_networks(self) -> list[str]:
        """Names of this run's networks still there (the engine refused to remove them)."""
        names = []
        for label, values in ((L.INSTANCE, self.instances), (COMPOSE_PROJECT_LABEL, self.projects)):
            for value in values:
                names += [n.get("Name", n["Id"]) for n in self.labelled_networks(label, value)]
        return sorted(names)

    def leftovers(self) -> int:
        count = 0
        for instance in self.instances:
            count += len(
                self.api.containers(all=True, filters={"label": [f"{L.INSTANCE}={instance}"]})
            )
        for project in self.projects:
            count += len(
                self.api.containers(
                    all=True, filters={"label": [f"{COMPOSE_PROJECT_LABEL}={project}"]}
                )
            )
        return count

    def cleanup(self) -> int:
        removed = 0
        for instance in self.instances:
            with contextlib.suppress(Exception):
                removed += self.remove_instance(instance)
        for project in self.projects:
            with contextlib.suppress(Exception):
                removed += self.remove_project(project)
        for image in self.images_made:
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_image(image)
        self.images_made = []
        shutil.rmtree(self.workdir, ignore_errors=True)
        return removed

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.workdir, name)
        Path(path).write_text(text)
        return path

    def env(self, docker_host: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = docker_host or self.docker_host
        env.pop("RECONCILER_HOSTS", None)
        env["NO_COLOR"] = "1"
        return env


def reconciler_command() -> list[str]:
    script = Path(sys.executable).parent / "reconciler"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler.cli"]


def run_timed(
    command: Sequence[str], env: dict[str, str], cwd: str | None = None, timeout: float = 3600
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        list(command), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    return time.perf_counter() - started, done


# -- benchmark 1: create ---------------------------------------------------------------------
def desired_pods(bench: Bench, manifest: str, instance: str) -> list[DesiredPod]:
    validation, _ = load_source([manifest])
    settings = Settings(instance=instance, infra_image=bench.infra_image)
    return compute_desired(validation.manifests, [bench.host], {}, settings).pods


def floor_create(bench: Bench, manifest: str, instance: str, concurrency: int) -> float:
    """The same containers as reconciler's, made straight with the SDK; seconds."""
    jobs = []
    for pod in desired_pods(bench, manifest, instance):  # all computed before timing
        infra, app = pod.containers[0], pod.containers[1]
        jobs.append(
            (
                {
                    "image": infra.image,
                    "name": infra.docker_name,
                    "hostname": infra.hostname,
                    "labels": container_labels(pod, infra, instance, ""),
                    "host_config": bench.api.create_host_config(
                        init=True, ipc_mode="shareable", restart_policy={"Name": "always"}
                    ),
                },
                {
                    "image": app.image,
                    "name": app.docker_name,
                    "command": list(app.cmd or ()),
                    "labels": container_labels(pod, app, instance, ""),
                },
            )
        )

    def one(job: tuple[dict[str, Any], dict[str, Any]]) -> None:
        infra_kwargs, app_kwargs = job
        infra_id = bench.api.create_container(**infra_kwargs)["Id"]
        bench.api.start(infra_id)
        host_config = bench.api.create_host_config(
            network_mode=f"container:{infra_id}",
            ipc_mode=f"container:{infra_id}",
            init=True,
            restart_policy={"Name": "always"},
        )
        app_id = bench.api.create_container(**app_kwargs, host_config=host_config)["Id"]
        bench.api.start(app_id)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, jobs))
    return time.perf_counter() - started


@dataclass
class InProcess:
    seconds: float
    calls: int
    writes: int
    ok: bool
    error: str = ""
    stages: dict[str, float] = field(default_factory=dict)


def reconciler_apply_inprocess(
    bench: Bench, manifest: str, instance: str, concurrency: int
) -> InProcess:
    """One whole pass in this process: load, validate, observe, plan, apply."""
    stages: dict[str, float] = {}
    started = time.perf_counter()
    validation, _ = load_source([manifest])
    stages["load+validate"] = time.perf_counter() - started
    mark = time.perf_counter()
    runtimes = connect([bench.host], instance, grace_seconds=0)
    live = observe(runtimes)
    _, the_plan = make_plan(
        validation.manifests, [bench.host], live, Settings(instance, bench.infra_image)
    )
    stages["observe+plan"] = time.perf_counter() - mark
    mark = time.perf_counter()
    report = apply_plan(the_plan, runtimes, concurrency=concurrency)
    stages["apply"] = time.perf_counter() - mark
    seconds = time.perf_counter() - started
    runtime = runtimes[bench.host.name]
    runtime.close()
    error = "; ".join(r.error for r in report.failed[:3])
    return InProcess(
        seconds, runtime.calls, runtime.writes, report.ok and not the_plan.problems, error, stages
    )


def bench_create(bench: Bench, pods: int, rounds: int, concurrency: int) -> dict[str, Any]:
    manifest = bench.write("create.yaml", rc_manifest("web", pods, bench.app_image))
    floor: list[float] = []
    inproc: list[float] = []
    cli: list[float] = []
    details: dict[str, Any] = {}
    order = ["floor", "inproc", "cli"]
    for round_ in range(rounds):
        for kind in order[round_ % 3 :] + order[: round_ % 3]:  # rotate: no fixed position
            instance = bench.instance(f"c{round_}{kind[:2]}")
            bench.log(f"create round {round_ + 1}: {kind} ({instance})")
            if kind == "floor":
                floor.append(floor_create(bench, manifest, instance, concurrency))
            elif kind == "inproc":
                result = reconciler_apply_inprocess(bench, manifest, instance, concurrency)
                if not result.ok:
                    raise RuntimeError(f"in-process apply failed: {result.error}")
                inproc.append(result.seconds)
                details["inproc_calls"], details["inproc_writes"] = result.calls, result.writes
                details["inproc_stages"] = {k: round(v, 3) for k, v in result.stages.items()}
            else:
                command = reconciler_command() + [
                    "apply",
                    "--source",
                    manifest,
                    "--instance",
                    instance,
                    "--infra-image",
                    bench.infra_image,
                    "--grace-period",
                    "0",
                    "--concurrency",
                    str(concurrency),
                ]
                seconds, done = run_timed(command, bench.env())
                if done.returncode != 0:
                    raise RuntimeError(
                        f"reconciler apply exited {done.returncode}: {done.stderr[-2000:]}"
                    )
                cli.append(seconds)
            made = len(
                bench.api.containers(filters={"label": [f"{L.INSTANCE}={instance}"]})
            )  # running ones
            if made != 2 * pods:
                raise RuntimeError(f"{kind}: {made} running containers, expected {2 * pods}")
            bench.log(f"  {kind}: {[floor, inproc, cli][order.index(kind)][-1]:.2f} s; cleaning")
            bench.remove_instance(instance)
    f, i, c = median(floor), median(inproc), median(cli)
    return {
        "pods": pods,
        "containers": 2 * pods,
        "concurrency": concurrency,
        "rounds": rounds,
        "floor_s": round(f, 3),
        "reconciler_inprocess_s": round(i, 3),
        "reconciler_cli_s": round(c, 3),
        "ratio_inprocess": round(ratio(i, f), 3),
        "ratio_cli": round(ratio(c, f), 3),
        "target_max_ratio": CREATE_TARGET,
        "pass_inprocess": ratio(i, f) <= CREATE_TARGET,
        "pass_cli": ratio(c, f) <= CREATE_TARGET,
        "samples": {"floor": floor, "inprocess": inproc, "cli": cli},
        **details,
    }


# -- benchmark 2: no-op ----------------------------------------------------------------------
def compose_executable(
    venv: Path, install: bool, log: Callable[[str], None]
) -> tuple[Path | None, str]:
    """The docker-compose of ``venv``, installing it with the known pins when asked."""
    executable = venv / "bin" / "docker-compose"
    if executable.exists():
        return executable, ""
    if not install:
        return None, f"no docker-compose at {executable} (and --no-install-peer)"
    log(f"installing docker-compose {COMPOSE_VERSION} into {venv}")
    python = shutil.which("python3") or sys.executable
    try:
        subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q"]
        for pins in COMPOSE_PINS:
            subprocess.run([*pip, *pins], check=True, capture_output=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        return None, f"docker-compose could not be installed: {exc} {detail[-500:]}"
    return (executable, "") if executable.exists() else (None, "install left no docker-compose")


def unix_path(url: str) -> str | None:
    return url[len("unix://") :] if url.startswith("unix://") else None


def counted(bench: Bench, run: Callable[[str], Any]) -> tuple[Any, list[tuple[str, str]] | None]:
    """Run ``run(docker_host_url)`` through a counting proxy; requests seen (None: no proxy)."""
    upstream = unix_path(bench.docker_host)
    if upstream is None:
        return run(bench.docker_host), None
    proxy = CountingProxy(upstream, bench.workdir)
    try:
        result = run(proxy.url)
        time.sleep(0.05)  # let the pumps drain
        return result, proxy.requests()
    finally:
        proxy.close()


class ReconcilerFleet:
    """C app containers kept by reconciler; timed no-op passes against them."""

    def __init__(self, bench: Bench, containers: int, apps_per_pod: int) -> None:
        self.bench = bench
        self.pods, self.apps = split_containers(containers, apps_per_pod)
        self.apps_per_pod = apps_per_pod
        self.total = self.pods * (apps_per_pod + 1)
        self.manifest = bench.write(
            "noop.yaml", rc_manifest("fleet", self.pods, bench.app_image, apps_per_pod)
        )
        self.instance = bench.instance("noop")
        self.settings = Settings(self.instance, bench.infra_image)
        self.diff = reconciler_command() + [
            "diff",
            "--source",
            self.manifest,
            "--instance",
            self.instance,
            "--infra-image",
            bench.infra_image,
        ]
        self.out: dict[str, Any] = {
            "pods": self.pods,
            "apps_per_pod": apps_per_pod,
            "app_containers": self.apps,
            "containers": self.total,
        }
        self.list_s: list[float] = []
        self.plan_s: list[float] = []
        self.inprocess_s: list[float] = []
        self.cli_s: list[float] = []
        self.startup_s: list[float] = []
        self.calls: set[int] = set()
        self.writes: set[int] = set()
        self.codes: set[int] = set()
        self.in_sync = True

    def up(self, concurrency: int) -> None:
        self.bench.log(f"reconciler: bringing up {self.total} containers ({self.pods} pods)")
        result = reconciler_apply_inprocess(self.bench, self.manifest, self.instance, concurrency)
        if not result.ok:
            raise RuntimeError(f"bring-up failed: {result.error}")
        self.out["bring_up_s"] = round(result.seconds, 2)
        running = len(
            self.bench.api.containers(filters={"label": [f"{L.INSTANCE}={self.instance}"]})
        )
        self.out["running"] = running
        if running != self.total:
            raise RuntimeError(f"{running} containers running, expected {self.total}")
        self.bench.log(f"  up in {result.seconds:.1f} s")

    def time_once(self) -> None:
        """One in-process observe+plan, one whole `reconciler diff`, one start-up alone."""
        bench = self.bench
        validation, _ = load_source([self.manifest])
        runtimes = connect([bench.host], self.instance)
        started = time.perf_counter()
        live = observe(runtimes)
        observed = time.perf_counter()
        _, the_plan = make_plan(validation.manifests, [bench.host], live, self.settings)
        done = time.perf_counter()
        self.list_s.append(observed - started)
        self.plan_s.append(done - observed)
        self.inprocess_s.append(done - started)
        runtime = runtimes[bench.host.name]
        self.calls.add(runtime.calls)
        self.writes.add(runtime.writes)
        self.in_sync = self.in_sync and the_plan.in_sync
        runtime.close()
        seconds, process = run_timed(self.diff, bench.env(), cwd=bench.workdir)
        self.cli_s.append(seconds)
        self.codes.add(process.returncode)
        seconds, _ = run_timed(reconciler_command() + ["--version"], bench.env())
        self.startup_s.append(seconds)

    def count(self) -> None:
        bench = self.bench
        process, requests = counted(
            bench, lambda url: run_timed(self.diff, bench.env(url), cwd=bench.workdir)[1]
        )
        self.out["cli_exit_code_proxied"] = process.returncode
        self.out["cli_requests"] = None if requests is None else len(requests)
        self.out["cli_endpoints"] = None if requests is None else summarise(requests)

    def results(self) -> dict[str, Any]:
        return {
            **self.out,
            "list_call_s": round(median(self.list_s), 4),
            "plan_s": round(median(self.plan_s), 4),
            "inprocess_s": round(median(self.inprocess_s), 4),
            "inprocess_samples": [round(x, 4) for x in self.inprocess_s],
            "inprocess_calls": sorted(self.calls),
            "inprocess_writes": sorted(self.writes),
            "inprocess_in_sync": self.in_sync,
            "cli_s": round(median(self.cli_s), 3),
            "cli_samples": [round(x, 3) for x in self.cli_s],
            "cli_startup_s": round(median(self.startup_s), 3),
            "cli_exit_codes": sorted(self.codes),
        }

    def down(self) -> None:
        self.bench.log(f"reconciler: removing {self.total} containers")
        self.bench.remove_instance(self.instance)


class ComposeFleet:
    """The same app containers under docker-compose 1.29.2; timed no-op `up -d`."""

    def __init__(self, bench: Bench, executable: Path, containers: int, apps_per_pod: int):
        self.bench = bench
        pods, self.apps = split_containers(containers, apps_per_pod)
        self.project = bench.project("noop")
        self.directory = os.path.join(bench.workdir, "compose")
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, "docker-compose.yml")
        Path(path).write_text(compose_file(apps_per_pod, pods, bench.app_image))
        self.up_command = [str(executable), "-p", self.project, "-f", path, "up", "-d"]
        self.out: dict[str, Any] = {
            "project": self.project,
            "services": apps_per_pod,
            "scale": pods,
        }
        self.noop_s: list[float] = []
        self.changed = False

    def env(self, url: str | None = None) -> dict[str, str]:
        env = self.bench.env(url)
        env["COMPOSE_HTTP_TIMEOUT"] = "900"
        return env

    def up(self) -> None:
        self.bench.log(f"compose: bringing up {self.apps} containers (project {self.project})")
        seconds, done = run_timed(self.up_command, self.env(), cwd=self.directory)
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose up exited {done.returncode}: {done.stderr[-2000:]}")
        self.out["bring_up_s"] = round(seconds, 2)
        running = len(
            self.bench.api.containers(
                filters={"label": [f"{COMPOSE_PROJECT_LABEL}={self.project}"]}
            )
        )
        self.out["running"] = running
        if running != self.apps:
            raise RuntimeError(f"compose: {running} containers running, expected {self.apps}")
        self.bench.log(f"  up in {seconds:.1f} s")

    def time_once(self) -> None:
        seconds, done = run_timed(self.up_command, self.env(), cwd=self.directory)
        if done.returncode != 0:
            raise RuntimeError(f"no-op docker-compose up exited {done.returncode}: {done.stderr}")
        self.noop_s.append(seconds)
        self.changed = self.changed or bool(re.search(r"Recreating|Creating|Starting", done.stderr))

    def count(self) -> None:
        _, requests = counted(
            self.bench,
            lambda url: run_timed(self.up_command, self.env(url), cwd=self.directory)[1],
        )
        self.out["requests"] = None if requests is None else len(requests)
        self.out["endpoints"] = None if requests is None else summarise(requests)

    def results(self) -> dict[str, Any]:
        return {
            **self.out,
            "noop_s": round(median(self.noop_s), 3),
            "noop_samples": [round(x, 3) for x in self.noop_s],
            "noop_changed_something": self.changed,
        }

    def down(self) -> None:
        self.bench.log(f"compose: removing {self.apps} containers")
        self.bench.remove_project(self.project)


def bench_noop(
    bench: Bench,
    containers: int,
    apps_per_pod: int,
    repeat: int,
    concurrency: int,
    compose_venv: Path,
    install_peer: bool,
) -> dict[str, Any]:
    """Both fleets up at once, then their no-op passes timed in alternation.

    Alternating (reconciler, compose, reconciler, ...) exposes both to the same machine
    load, which matters on a shared 2-core host; the proxied counting runs come last.
    """
    fleet = ReconcilerFleet(bench, containers, apps_per_pod)
    fleet.up(concurrency)
    executable, why = compose_executable(compose_venv, install_peer, bench.log)
    peer: ComposeFleet | None = None
    compose: dict[str, Any] = {}
    if executable is None:
        compose = {"unavailable": why}
    else:
        peer = ComposeFleet(bench, executable, containers, apps_per_pod)
        try:
            peer.up()
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            compose = {"unavailable": f"docker-compose failed: {exc}"}
            peer.down()
            peer = None
    bench.log(f"timing {repeat} no-op pass(es) of each, alternating")
    for _ in range(repeat):
        fleet.time_once()
        if peer is not None:
            peer.time_once()
    fleet.count()
    if peer is not None:
        peer.count()
        compose = peer.results()
        peer.down()
    rec = fleet.results()
    fleet.down()
    result: dict[str, Any] = {"reconciler": rec, "compose": compose}
    result["pass_one_list_call"] = (
        rec["inprocess_calls"] == [1]
        and rec["inprocess_writes"] == [0]
        and rec["cli_requests"] in (1, None)
    )
    result["in_sync"] = rec["inprocess_in_sync"] and rec["cli_exit_codes"] == [0]
    if "noop_s" in compose:
        result["ratio_cli"] = round(ratio(compose["noop_s"], rec["cli_s"]), 2)
        result["ratio_inprocess"] = round(ratio(compose["noop_s"], rec["inprocess_s"]), 1)
        result["target_min_ratio"] = NOOP_TARGET
        result["pass_ratio_cli"] = result["ratio_cli"] >= NOOP_TARGET
        result["pass_ratio_inprocess"] = result["ratio_inprocess"] >= NOOP_TARGET
    return result


# -- report ----------------------------------------------------------------------------------
def top_endpoints(endpoints: dict[str, int] | None, limit: int = 4) -> str:
    if not endpoints:
        return "not counted"
    shown = ", ".join(f"{k} x{v}" for k, v in list(endpoints.items())[:limit])
    return shown + (", ..." if len(endpoints) > limit else "")


def print_create(r: dict[str, Any]) -> None:
    print(
        f"== create {r['pods']} pods = {r['containers']} containers (infra + app) on an empty "
        f"host, concurrency {r['concurrency']}, median of {r['rounds']} =="
    )
    print(f"  floor (docker SDK APIClient, same containers, pool of 8): {r['floor_s']:8.2f} s")
    print(
        f"  reconciler apply, in-process (load..apply)              : "
        f"{r['reconciler_inprocess_s']:8.2f} s   ratio {r['ratio_inprocess']:.2f}x   "
        f"{verdict(r['pass_inprocess'])} (target <= {r['target_max_ratio']}x)"
    )
    if "inproc_stages" in r:
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in r["inproc_stages"].items())
        print(
            f"      stages: {stages}; Docker calls {r['inproc_calls']}, writes {r['inproc_writes']}"
        )
    print(
        f"  `reconciler apply` CLI (whole process, start-up incl.)  : "
        f"{r['reconciler_cli_s']:8.2f} s   ratio {r['ratio_cli']:.2f}x   "
        f"{verdict(r['pass_cli'])} (target <= {r['target_max_ratio']}x)"
    )


def print_noop(r: dict[str, Any]) -> None:
    rec, comp = r["reconciler"], r["compose"]
    print(
        f"== no-op resync: {rec['app_containers']} app containers = {rec['pods']} pods x "
        f"{rec['apps_per_pod']} app + 1 infra ({rec['containers']} containers running) =="
    )
    print(f"  reconciler bring-up (apply, in-process, concurrency 8) : {rec['bring_up_s']:8.2f} s")
    print(
        f"  reconciler observe+plan, in-process                    : {rec['inprocess_s']:8.3f} s"
        f"   Docker calls {rec['inprocess_calls']}, writes {rec['inprocess_writes']}, "
        f"in sync: {rec['inprocess_in_sync']}"
    )
    print(
        f"      of which the list call {rec['list_call_s']:.3f} s, desired state + plan "
        f"{rec['plan_s']:.3f} s"
    )
    print(
        f"  `reconciler diff` CLI (whole process)                  : {rec['cli_s']:8.3f} s"
        f"   exit {rec['cli_exit_codes']}, API requests {rec['cli_requests']} "
        f"({top_endpoints(rec['cli_endpoints'])})"
    )
    print(f"      of which start-up alone (`reconciler --version`): {rec['cli_startup_s']:.3f} s")
    if "unavailable" in comp:
        print(f"  docker-compose {COMPOSE_VERSION}: peer unavailable: {comp['unavailable']}")
        print(
            f"  ratio compose / reconciler, CLI vs CLI                 :          "
            f"{verdicts.NOT_MEASURED} (target >= {r['target_min_ratio']:.0f}x: no peer)"
        )
    else:
        print(
            f"  docker-compose {COMPOSE_VERSION} bring-up (`up -d`, {comp['services']} services"
            f" x scale {comp['scale']}): {comp['bring_up_s']:8.2f} s"
        )
        print(
            f"  docker-compose no-op `up -d`                           : {comp['noop_s']:8.3f} s"
            f"   API requests {comp['requests']} ({top_endpoints(comp['endpoints'])})"
            + ("  [it changed something!]" if comp["noop_changed_something"] else "")
        )
        print(
            f"  ratio compose / reconciler, CLI vs CLI                 : {r['ratio_cli']:8.1f}x"
            f"   {verdict(r['pass_ratio_cli'])} (target >= {r['target_min_ratio']:.0f}x)"
        )
        print(
            f"  ratio compose CLI / reconciler in-process pass         : "
            f"{r['ratio_inprocess']:8.1f}x   {verdict(r['pass_ratio_inprocess'])}"
        )
    print(
        f"  exactly one list call per host, no writes              : "
        f"{verdict(r['pass_one_list_call'])}"
    )


def target_statuses(results: dict[str, Any]) -> list[str]:
    """The status of every target of the parts that ran; the compose ratio is NOT MEASURED
    when docker-compose could not run (not installed, or it failed on the fleet)."""
    checks: list[bool | None] = []
    if "create" in results:
        checks += [results["create"]["pass_inprocess"], results["create"]["pass_cli"]]
    if "noop" in results:
        noop = results["noop"]
        checks += [noop["pass_one_list_call"], noop["in_sync"], noop.get("pass_ratio_cli")]
    return [verdicts.status(check) for check in checks]


def overall(results: dict[str, Any]) -> str:
    """PASS only when every target of the run was measured and passed."""
    return verdicts.overall(target_statuses(results))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.converge",
        description="Time reconciler's create path against a Docker SDK floor, and its "
        "no-op resync against docker-compose 1.29.2.",
    )
    parser.add_argument("--only", choices=("create", "noop"), help="Run one benchmark only.")
    parser.add_argument("--pods", type=int, default=100, help="create: pods (2 containers each).")
    parser.add_argument("--rounds", type=int, default=1, help="create: rounds (median).")
    parser.add_argument(
        "--containers", type=int, default=1000, help="noop: app containers kept running."
    )
    parser.add_argument(
        "--apps-per-pod", type=int, default=10, help="noop: app containers per pod (+1 infra)."
    )
    parser.add_argument("--repeat", type=int, default=5, help="noop: timed passes (median).")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--docker-host",
        default=os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET,
        help="Engine URL (default $DOCKER_HOST or the local socket).",
    )
    parser.add_argument("--compose-venv", type=Path, default=DEFAULT_COMPOSE_VENV)
    parser.add_argument(
        "--no-install-peer",
        dest="install_peer",
        action="store_false",
        help="Do not create the docker-compose venv when it is missing.",
    )
    parser.add_argument("--json", action="store_true", help="Also print one JSON line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Progress on stderr.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args.docker_host, verbose=args.verbose)

    results = start_run("converge", bench.run_id)
    failure = ""
    try:
        bench.log(f"run {bench.run_id}: making images")
        bench.make_images()
        if args.only in (None, "create"):
            results["create"] = bench_create(
                bench, args.pods, max(1, args.rounds), args.concurrency
            )
            print_create(results["create"])
        if args.only in (None, "noop"):
            results["noop"] = bench_noop(
                bench,
                args.containers,
                args.apps_per_pod,
                max(1, args.repeat),
                args.concurrency,
                args.compose_venv,
                args.install_peer,
            )
            print_noop(results["noop"])
    except KeyboardInterrupt:
        failure = "interrupted"
    except (RuntimeError, docker.errors.DockerException, subprocess.SubprocessError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        bench.log("cleaning up")
        results["removed_at_cleanup"] = bench.cleanup()
        results["leftover_containers"] = bench.leftovers()
        results["leftover_networks"] = bench.leftover_networks()
    if failure:
        print(f"benchmark failed: {failure}", file=sys.stderr)
        results["error"] = failure
    statuses = target_statuses(results)
    result = verdicts.FAIL if failure else verdicts.overall(statuses)
    results["pass"] = result == verdicts.PASS
    results["overall"] = result
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    measured = sum(1 for s in statuses if s != verdicts.NOT_MEASURED)
    print(
        f"== overall: {result} ({measured} of {len(statuses)} targets measured; "
        f"run {bench.run_id}; load average "
        f"{results['loadavg_at_start'][0]} at start, {results['loadavg_at_end'][0]} at end, "
        f"on {results['cpus']} CPUs; "
        f"leftover containers {results['leftover_containers']}, "
        f"networks {len(results['leftover_networks'])}) =="
    )
    if results["leftover_networks"]:
        print(
            "NOTE: the engine refused to remove this run's network(s) "
            f"{', '.join(results['leftover_networks'])}: see `docker network rm NAME`"
        )
    if max(results["loadavg_at_start"][0], results["loadavg_at_end"][0]) > (os.cpu_count() or 1):
        print("NOTE: the machine was busier than its CPU count: trust the ratios, not the seconds")
    if args.json:
        print(json.dumps(results, sort_keys=True))
    # like bench.validate: a missed target still exits 0; 1 only when no figure came out
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
