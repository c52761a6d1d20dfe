"""The long-lived service (``reconciler run``): how fast a commit lands, and what idling costs.

Run from the repository root::

    .venv/bin/python -m bench.service -v                 # both benchmarks, full size
    .venv/bin/python -m bench.service --only latency --repeat 3
    .venv/bin/python -m bench.service --only fleet --containers 100 --idle-window 20
    .venv/bin/python -m bench.service --json             # adds one machine-readable line

1. latency: commit-to-converged time for each trigger, against a floor. A bare Pod whose
   container carries ``VALUE=vN`` in its env; a change sets the next value, and "converged"
   is the moment the running container's env (``docker inspect``) shows it. Four instances
   run side by side, so that every trigger sees the same machine load:

   - floor: a plain ``reconciler apply --source DIR`` of the change (the clock runs from the
     command's start);
   - poll: ``reconciler run --interval 1`` on a bare git repository (made with the git CLI);
     the clock starts when ``git push`` into it has returned;
   - webhook: ``reconciler run --interval 600 --webhook-secret S`` on another bare
     repository; push, then ``POST /hooks/git`` signed as GitHub signs
     (``X-Hub-Signature-256: sha256=HMAC(S, body)``, ``X-GitHub-Event: push``); the clock
     starts after the push, so the request is included;
   - watch: ``reconciler run`` on a plain directory; the clock starts before the file is
     written.

   ``--repeat`` changes of each, in rotating order. Reported: median and best per trigger,
   and median(trigger) / median(apply).

2. fleet: ``--containers`` app containers (default 1,000 = an RC of 100 pods x
   ``--apps-per-pod`` 10, so 1,100 containers with the infra ones) brought up once with
   ``reconciler apply``. Then ``reconciler run --resync 5`` on it and, side by side, on an
   empty directory (the floor); VmRSS of both after ``--passes`` passes. Then both again with
   ``--resync W`` (``--idle-window``, default 60 s): user+system CPU (``/proc/PID/stat``) over
   W seconds that start W/2 after the first pass, so exactly one resync falls inside.
   Compared with the CPU of one no-op ``reconciler apply`` of the same fleet (what a cron job
   applying once a minute would spend).

Every instance is ``bench-XXXXXXXX-...`` with a /20 of its own in 10.210.0.0/16 and a
temporary ``RECONCILER_STATE_DIR``; each service listens on a free port of 127.0.0.1. Every
process started is stopped (SIGTERM, then SIGKILL by pid), and everything the instances
made is removed with ``reconciler down`` (then by instance label). A missed target still
exits 0; 1 means no figure came out.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from bench.converge import rc_manifest, split_containers
from bench.services import (
    IMAGE,
    Bench,
    ensure_image,
    finish_run,
    free_port,
    loadavg,
    median,
    owned,
    ratio,
    reconciler_command,
    rotated,
    start_run,
    target,
    wait_until,
)
from reconciler.core import labels as L

SECRET = "bench-webhook-secret"
MARKER = "marker"  # the latency benchmark's Pod (and its container is "app")
TRIGGERS = ("poll", "webhook", "watch")
# The targets. The issue gives no figures: a trigger that fires at once should land a change
# no later than running the CLI by hand would (the service skips the interpreter start-up);
# a 1-second poll may add up to one interval. A fleet of 1,100 containers should not double
# the service's memory, and a minute of idling should cost less CPU than one CLI pass.
LATENCY_TARGETS = {"poll": 1.5, "webhook": 1.0, "watch": 1.0}  # trigger / apply, at most
RSS_TARGET = 2.0  # fleet / empty, at most
CPU_TARGET = 1.0  # idle minute / one no-op `reconciler apply`, at most


# -- pure parts ------------------------------------------------------------------------------
def marker_pod(value: str, image: str = IMAGE, name: str = MARKER) -> str:
    """A bare Pod with one sleeping container whose env carries ``VALUE``."""
    return (
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  labels: {{app: {name}}}\n"
        "spec:\n"
        "  containers:\n"
        "    - name: app\n"
        f"      image: {json.dumps(image)}\n"
        "      imagePullPolicy: IfNotPresent\n"
        '      command: ["/bin/sleep", "2147483647"]\n'
        f"      env: [{{name: VALUE, value: {json.dumps(value)}}}]\n"
    )


def push_body(branch: str = "main", after: str = "0" * 40) -> bytes:
    """A minimal GitHub push payload for ``branch``."""
    return json.dumps({"ref": f"refs/heads/{branch}", "after": after}).encode()


def github_headers(secret: str, body: bytes) -> dict[str, str]:
    """What GitHub sends with a push: the event and the HMAC-SHA256 of the raw body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def status_kib(text: str, key: str) -> int:
    """A ``kB`` field of /proc/PID/status (``VmRSS``, ``VmHWM``...), in KiB."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            parts = rest.split()
            if parts and parts[0].isdigit():
                return int(parts[0])
    raise ValueError(f"no {key} in /proc status")


def cpu_ticks(stat: str) -> int:
    """utime + stime + cutime + cstime of /proc/PID/stat, in clock ticks.

    The command name (field 2) may hold spaces and parentheses: fields are counted from the
    last ')'.
    """
    rest = stat[stat.rindex(")") + 1 :].split()
    # rest[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17
    return sum(int(x) for x in rest[11:15])


def metric_value(text: str, name: str) -> float | None:
    """The value of an unlabelled sample ``name`` in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            with contextlib.suppress(ValueError, IndexError):
                return float(line.split()[-1])
    return None


def summary(samples: Sequence[float]) -> dict[str, Any]:
    if not samples:
        return {"median_s": None, "best_s": None, "samples": []}
    return {
        "median_s": round(median(samples), 3),
        "best_s": round(min(samples), 3),
        "samples": [round(x, 3) for x in samples],
    }


def service_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of the report's target table (NOT MEASURED where that part did not run)."""
    latency = results.get("latency") or {}
    fleet = results.get("fleet") or {}
    rows = []
    for kind in TRIGGERS:
        measured = latency.get(kind) or {}
        row = target(
            f"{kind}: commit-to-converged / apply",
            measured.get("ratio"),
            "<=",
            LATENCY_TARGETS[kind],
        )
        if measured.get("timeouts"):  # a change that never landed fails, whatever the others did
            row.update(status="FAIL", note=f"{measured['timeouts']} change(s) timed out")
        rows.append(row)
    rows.append(
        target("RSS with the fleet / empty source", fleet.get("rss_ratio"), "<=", RSS_TARGET)
    )
    rows.append(
        target("idle-minute CPU / one no-op apply CPU", fleet.get("cpu_ratio"), "<=", CPU_TARGET)
    )
    return rows


# -- processes -------------------------------------------------------------------------------
@dataclass
class Service:
    """One ``reconciler run`` process of ours, its port and its log."""

    bench: Bench
    name: str
    instance: str
    source: Path
    extra: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.bench.path("logs", f"{self.name}-{self.port}.log")

    def start(self, timeout: float = 120) -> Service:
        command = reconciler_command() + [
            "run",
            "--source",
            str(self.source),
            "--instance",
            self.instance,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--cache-dir",
            str(self.bench.path("cache", self.name, "x").parent),
            "--grace-period",
            "0",
            "--log-format",
            "json",
            *self.extra,
        ]
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                env=self.bench.env(self.instance),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.bench.workdir,
            )
        wait_until(self.healthy, timeout, f"{self.name} to serve /healthz", interval=0.2)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"{self.name}: reconciler run exited: {self.tail()}")
        with urllib.request.urlopen(self.url + "/healthz", timeout=5) as response:
            return int(response.status) == 200

    def tail(self, size: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-size:]
        return ""

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return str(response.read().decode())

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.get("/status")))

    def idle_after(self, passes: int) -> bool:
        """At least ``passes`` passes succeeded and none is running."""
        status = self.status()
        return (
            int(status["counters"].get("syncs_succeeded", 0)) >= passes
            and not status["sync"]["in_progress"]
        )

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> int:
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers=dict(headers)
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def proc(self, name: str) -> str:
        assert self.process is not None
        return Path(f"/proc/{self.process.pid}/{name}").read_text()

    def stop(self, timeout: float = 45) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds: by this process's own pid."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class Processes:
    """Every service this run started, so that each one is stopped whatever happens."""

    started: list[Service] = field(default_factory=list)

    def start(self, service: Service) -> Service:
        self.started.append(service)
        return service.start()

    def stop_all(self) -> None:
        for service in self.started:
            with contextlib.suppress(Exception):
                service.stop()


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class Repo:
    """A bare repository (what the service follows) and a work tree that pushes to it."""

    root: Path

    def __post_init__(self) -> None:
        self.bare = self.root / "manifests.git"
        self.work = self.root / "work"
        self.root.mkdir(parents=True, exist_ok=True)
        git(self.root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(self.root, "init", "-q", "-b", "main", str(self.work))

    def commit(self, value: str) -> str:
        (self.work / "pod.yaml").write_text(marker_pod(value))
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", f"VALUE={value}")
        git(self.work, "push", "-q", str(self.bare), "main")
        return git(self.work, "rev-parse", "HEAD")


def marker_value(api: docker.APIClient, instance: str) -> str | None:
    """VALUE in the env of the instance's running marker container, if one runs."""
    for container in owned(api, instance, all_=False):
        labels = container.get("Labels") or {}
        if labels.get(L.POD) == MARKER and labels.get(L.CONTAINER) == "app":
            env = api.inspect_container(container["Id"])["Config"].get("Env") or []
            for item in env:
                if item.startswith("VALUE="):
                    return str(item.split("=", 1)[1])
    return None


def wait_value(api: docker.APIClient, instance: str, value: str, timeout: float) -> bool:
    """Poll (every 50 ms) until the marker shows ``value``; False after ``timeout`` s."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with contextlib.suppress(docker.errors.DockerException):
            if marker_value(api, instance) == value:
                return True
        time.sleep(0.05)
    return False


def run_with_rusage(
    command: Sequence[str], env: Mapping[str, str], cwd: Path, log: IO[bytes], timeout: float
) -> tuple[float, float, int]:
    """Run a command to its end: (wall seconds, its user+system CPU seconds, exit code)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, process.returncode


# -- benchmark 1: commit-to-converged latency -----------------------------------------------
def bench_latency(
    bench: Bench, processes: Processes, repeat: int, timeout: float
) -> dict[str, Any]:
    ensure_image(bench, IMAGE)
    api = bench.api
    instances = {kind: bench.instance(kind) for kind in ("apply", *TRIGGERS)}
    apply_dir = bench.path("apply-src", "pod.yaml").parent
    watch_dir = bench.path("watch-src", "pod.yaml").parent
    repos = {kind: Repo(bench.path(f"repo-{kind}", "x").parent) for kind in ("poll", "webhook")}
    (apply_dir / "pod.yaml").write_text(marker_pod("v0"))
    (watch_dir / "pod.yaml").write_text(marker_pod("v0"))
    for repo in repos.values():
        repo.commit("v0")
    bench.log("latency: first apply of the floor's marker pod")
    bench.apply(apply_dir, instances["apply"])
    services = {
        "poll": Service(
            bench,
            "poll",
            instances["poll"],
            repos["poll"].bare,
            ("--branch", "main", "--interval", "1", "--resync", "600"),
        ),
        "webhook": Service(
            bench,
            "webhook",
            instances["webhook"],
            repos["webhook"].bare,
            (
                "--branch",
                "main",
                "--interval",
                "600",
                "--resync",
                "600",
                "--webhook-secret",
                SECRET,
            ),
        ),
        "watch": Service(bench, "watch", instances["watch"], watch_dir, ("--resync", "600")),
    }
    for kind, service in services.items():
        bench.log(f"latency: starting the {kind} service ({service.instance})")
        processes.start(service)
    for kind in TRIGGERS:
        if not wait_value(api, instances[kind], "v0", timeout=max(timeout, 300)):
            raise RuntimeError(f"{kind}: the first pass never converged: {services[kind].tail()}")
    samples: dict[str, list[float]] = {kind: [] for kind in ("apply", *TRIGGERS)}
    apply_wall: list[float] = []
    timeouts: dict[str, int] = {kind: 0 for kind in TRIGGERS}
    hook_codes: set[int] = set()
    for round_ in range(repeat):
        value = f"v{round_ + 1}"
        for kind in rotated(["apply", *TRIGGERS], round_):
            time.sleep(2.0)  # let the passes the last change set off (Docker events) finish
            instance = instances[kind]
            if kind == "apply":
                (apply_dir / "pod.yaml").write_text(marker_pod(value))
                started = time.perf_counter()
                apply_wall.append(bench.apply(apply_dir, instance))
            elif kind == "watch":
                started = time.perf_counter()
                (watch_dir / "pod.yaml").write_text(marker_pod(value))
            else:
                commit = repos[kind].commit(value)
                started = time.perf_counter()
                if kind == "webhook":  # as GitHub: each push names its commit (and counts once)
                    body = push_body(after=commit)
                    hook_codes.add(
                        services[kind].post("/hooks/git", body, github_headers(SECRET, body))
                    )
            if wait_value(api, instance, value, timeout):
                samples[kind].append(time.perf_counter() - started)
            elif kind == "apply":
                raise RuntimeError(f"apply exited 0 but the marker does not show {value}")
            else:
                timeouts[kind] += 1
                bench.log(f"  {kind}: {value} not seen after {timeout:.0f} s")
                if not services[kind].alive():
                    raise RuntimeError(f"{kind}: the service died: {services[kind].tail()}")
            if samples[kind]:
                bench.log(f"  round {round_ + 1} {kind}: {samples[kind][-1]:.2f} s")
    for service in services.values():
        service.stop()
    floor = median(samples["apply"])
    result: dict[str, Any] = {
        "repeat": repeat,
        "apply": {**summary(samples["apply"]), "command_s": summary(apply_wall)["median_s"]},
        "webhook_http_codes": sorted(hook_codes),
    }
    for kind in TRIGGERS:
        result[kind] = {
            **summary(samples[kind]),
            "timeouts": timeouts[kind],
            "ratio": round(ratio(median(samples[kind]), floor), 3) if samples[kind] else None,
            "ratio_best": round(ratio(min(samples[kind]), min(samples["apply"])), 3)
            if samples[kind]
            else None,
        }
    for instance in instances.values():
        bench.down(instance)
    return result


# -- benchmark 2: memory and idle CPU with a fleet -------------------------------------------
def sample_cpu(service: Service) -> tuple[int, int]:
    """(CPU clock ticks so far, passes started so far) of a running service."""
    return cpu_ticks(service.proc("stat")), int(service.status()["counters"]["syncs_started"])


def bench_fleet(
    bench: Bench,
    processes: Processes,
    containers: int,
    apps_per_pod: int,
    passes: int,
    rss_resync: float,
    window: float,
    cli_runs: int,
) -> dict[str, Any]:
    ensure_image(bench, IMAGE)
    pods, apps = split_containers(containers, apps_per_pod)
    total = pods * (apps_per_pod + 1)
    fleet, empty = bench.instance("fleet"), bench.instance("empty")
    fleet_dir = bench.path("fleet-src", "fleet.yaml").parent
    (fleet_dir / "fleet.yaml").write_text(rc_manifest("fleet", pods, IMAGE, apps_per_pod))
    empty_dir = bench.path("empty-src", "x").parent
    bench.log(f"fleet: bringing up {total} containers ({pods} pods) with reconciler apply")
    bring_up = bench.apply(fleet_dir, fleet, "--concurrency", "8", timeout=7200)
    running = bench.containers(fleet, running_only=True)
    if running != total:
        raise RuntimeError(f"fleet: {running} containers running, expected {total}")
    bench.log(f"  up in {bring_up:.0f} s")
    out: dict[str, Any] = {
        "pods": pods,
        "apps_per_pod": apps_per_pod,
        "app_containers": apps,
        "containers": total,
        "bring_up_s": round(bring_up, 1),
    }
    hz = os.sysconf("SC_CLK_TCK")

    def pair(resync: float, tag: str) -> tuple[Service, Service]:
        extra = ("--resync", f"{resync:g}")
        return (
            processes.start(Service(bench, f"fleet-{tag}", fleet, fleet_dir, extra)),
            processes.start(Service(bench, f"empty-{tag}", empty, empty_dir, extra)),
        )

    # resident memory after a few passes
    bench.log(f"fleet: services with --resync {rss_resync:g}, RSS after {passes} passes")
    with_fleet, floor = pair(rss_resync, "rss")
    budget = passes * rss_resync + 900
    for service in (with_fleet, floor):
        wait_until(
            functools.partial(service.idle_after, passes),
            budget,
            f"{service.name}: {passes} passes",
            interval=0.5,
        )
    status_fleet = with_fleet.status()
    managed = metric_value(with_fleet.get("/metrics"), "reconciler_objects_managed")
    rss = {s.name: status_kib(s.proc("status"), "VmRSS") for s in (with_fleet, floor)}
    hwm = {s.name: status_kib(s.proc("status"), "VmHWM") for s in (with_fleet, floor)}
    for service in (with_fleet, floor):
        service.stop()
    out.update(
        {
            "rss_passes": passes,
            "rss_resync_s": rss_resync,
            "objects_managed_metric": managed,
            "pending_changes": status_fleet.get("pending_changes"),
            "rss_fleet_mib": round(rss[with_fleet.name] / 1024, 1),
            "rss_empty_mib": round(rss[floor.name] / 1024, 1),
            "hwm_fleet_mib": round(hwm[with_fleet.name] / 1024, 1),
            "hwm_empty_mib": round(hwm[floor.name] / 1024, 1),
            "rss_ratio": round(ratio(rss[with_fleet.name], rss[floor.name]), 3),
            "rss_kib_per_container": round(
                (rss[with_fleet.name] - rss[floor.name]) / max(1, total), 1
            ),
        }
    )
    # CPU over an idle window with one resync inside it
    bench.log(f"fleet: services with --resync {window:g}, CPU over {window:g} s of idling")
    with_fleet, floor = pair(window, "cpu")
    for service in (with_fleet, floor):
        wait_until(
            functools.partial(service.idle_after, 1),
            900,
            f"{service.name}: its first pass",
            interval=0.2,
        )
    time.sleep(window / 2)
    before = {s.name: sample_cpu(s) for s in (with_fleet, floor)}
    started = time.perf_counter()
    time.sleep(window)
    after = {s.name: sample_cpu(s) for s in (with_fleet, floor)}
    elapsed = time.perf_counter() - started
    for service in (with_fleet, floor):
        service.stop()
    cpu = {name: (after[name][0] - before[name][0]) / hz for name in before}
    passes_in = {name: after[name][1] - before[name][1] for name in before}
    per_minute = {name: cpu[name] / elapsed * 60 for name in cpu}
    # the peer: one no-op `reconciler apply` of the same fleet, its whole CPU
    cli_cpu: list[float] = []
    cli_wall: list[float] = []
    command = reconciler_command() + [
        "apply",
        "--source",
        str(fleet_dir),
        "--instance",
        fleet,
        "--grace-period",
        "0",
    ]
    with bench.path("logs", "cli-noop.log").open("ab") as log:
        for _ in range(cli_runs):
            wall, used, code = run_with_rusage(
                command, bench.env(fleet), bench.workdir, log, timeout=1800
            )
            if code != 0:
                raise RuntimeError(f"no-op reconciler apply exited {code}")
            cli_wall.append(wall)
            cli_cpu.append(used)
    bench.log("fleet: reconciler down")
    down_s = bench.down(fleet)
    bench.down(empty)
    out.update(
        {
            "idle_window_s": round(elapsed, 1),
            "passes_in_window": passes_in[with_fleet.name],
            "passes_in_window_empty": passes_in[floor.name],
            "cpu_idle_fleet_s": round(cpu[with_fleet.name], 3),
            "cpu_idle_empty_s": round(cpu[floor.name], 3),
            "cpu_per_idle_minute_fleet_s": round(per_minute[with_fleet.name], 3),
            "cpu_per_idle_minute_empty_s": round(per_minute[floor.name], 3),
            "cpu_percent_of_one_core": round(per_minute[with_fleet.name] / 60 * 100, 2),
            "cli_noop_apply_cpu_s": round(median(cli_cpu), 3),
            "cli_noop_apply_wall_s": round(median(cli_wall), 3),
            "cli_runs": cli_runs,
            "cpu_ratio": round(ratio(per_minute[with_fleet.name], median(cli_cpu)), 3),
            "down_s": round(down_s, 1),
        }
    )
    return out


# -- report ----------------------------------------------------------------------------------
def print_latency(r: Mapping[str, Any]) -> None:
    floor = r["apply"]
    print(f"== commit-to-converged, {r['repeat']} change(s) per trigger, rotating order ==")
    print(
        f"  floor: `reconciler apply` of the change : median {floor['median_s']:6.2f} s, "
        f"best {floor['best_s']:6.2f} s (the command alone {floor['command_s']:.2f} s)"
    )
    names = {
        "poll": "poll (--interval 1), from the push  ",
        "webhook": "webhook (GitHub-signed push)         ",
        "watch": "watched directory, from the write    ",
    }
    for kind in TRIGGERS:
        k = r[kind]
        if k["median_s"] is None:
            print(f"  {names[kind]}: no change landed ({k['timeouts']} timed out)")
            continue
        print(
            f"  {names[kind]}: median {k['median_s']:6.2f} s, best {k['best_s']:6.2f} s, "
            f"ratio {k['ratio']:.2f}x (best {k['ratio_best']:.2f}x)"
            + (f", {k['timeouts']} timed out" if k["timeouts"] else "")
        )
    print(f"  webhook answers: HTTP {r['webhook_http_codes']}")


def print_fleet(r: Mapping[str, Any]) -> None:
    print(
        f"== the service with {r['containers']} managed containers ({r['pods']} pods x "
        f"{r['apps_per_pod']} app + 1 infra) vs an empty source =="
    )
    print(f"  bring-up with `reconciler apply`: {r['bring_up_s']:.0f} s")
    print(
        f"  VmRSS after {r['rss_passes']} passes (--resync {r['rss_resync_s']:g}): fleet "
        f"{r['rss_fleet_mib']:.1f} MiB, empty {r['rss_empty_mib']:.1f} MiB, ratio "
        f"{r['rss_ratio']:.2f}x, {r['rss_kib_per_container']:.1f} KiB per container "
        f"(peak {r['hwm_fleet_mib']:.1f} / {r['hwm_empty_mib']:.1f} MiB); the service "
        f"counted {r['objects_managed_metric']} objects, pending {r['pending_changes']}"
    )
    print(
        f"  CPU over {r['idle_window_s']:.0f} s idle (--resync = window, "
        f"{r['passes_in_window']} pass(es) inside): fleet {r['cpu_idle_fleet_s']:.2f} s, "
        f"empty {r['cpu_idle_empty_s']:.2f} s"
    )
    print(
        f"  per idle minute: fleet {r['cpu_per_idle_minute_fleet_s']:.2f} CPU-s "
        f"({r['cpu_percent_of_one_core']:.2f}% of one core), empty "
        f"{r['cpu_per_idle_minute_empty_s']:.2f} CPU-s"
    )
    print(
        f"  one no-op `reconciler apply` of the fleet: {r['cli_noop_apply_cpu_s']:.2f} CPU-s "
        f"({r['cli_noop_apply_wall_s']:.2f} s wall, median of {r['cli_runs']}); ratio idle "
        f"minute / CLI pass {r['cpu_ratio']:.2f}x"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.service",
        description="Commit-to-converged latency of `reconciler run` per trigger against a "
        "plain `reconciler apply`, and its memory and idle CPU with a 1,100-container fleet.",
    )
    parser.add_argument("--only", choices=("latency", "fleet"), help="Run one benchmark only.")
    parser.add_argument("--repeat", type=int, default=5, help="latency: changes per trigger.")
    parser.add_argument(
        "--timeout", type=float, default=120, help="latency: seconds a change may take."
    )
    parser.add_argument(
        "--containers", type=int, default=1000, help="fleet: app containers kept running."
    )
    parser.add_argument(
        "--apps-per-pod", type=int, default=10, help="fleet: app containers per pod (+1 infra)."
    )
    parser.add_argument("--passes", type=int, default=3, help="fleet: passes before the RSS.")
    parser.add_argument(
        "--rss-resync", type=float, default=5, help="fleet: --resync while measuring memory."
    )
    parser.add_argument(
        "--idle-window",
        type=float,
        default=60,
        help="fleet: seconds of idling measured (also the services' --resync then).",
    )
    parser.add_argument(
        "--cli-runs", type=int, default=3, help="fleet: no-op `reconciler apply` runs (median)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    parser.add_argument("--json", action="store_true", help="Also print one JSON line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Progress on stderr.")
    args = parser.parse_args(argv)
    for name in ("repeat", "containers", "apps_per_pod", "passes", "cli_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.idle_window < 2 or args.rss_resync < 0.5 or args.timeout < 1:
        parser.error("--idle-window >= 2, --rss-resync >= 0.5 and --timeout >= 1 seconds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(verbose=args.verbose)
    processes = Processes()

    results = start_run("service", bench.run_id)
    failure = ""
    try:
        if args.only in (None, "latency"):
            results["latency"] = bench_latency(bench, processes, args.repeat, args.timeout)
            results["loadavg_after_latency"] = loadavg()
            print_latency(results["latency"])
        if args.only in (None, "fleet"):
            results["fleet"] = bench_fleet(
                bench,
                processes,
                args.containers,
                args.apps_per_pod,
                args.passes,
                args.rss_resync,
                args.idle_window,
                args.cli_runs,
            )
            print_fleet(results["fleet"])
    except KeyboardInterrupt:
        failure = "interrupted"
    except (
        RuntimeError,
        ValueError,
        OSError,
        docker.errors.DockerException,
        subprocess.SubprocessError,
    ) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        bench.log("cleaning up: stopping services, removing instances")
        processes.stop_all()
        results["leftovers"] = bench.cleanup(keep_workdir=args.keep)
    return finish_run(bench, results, failure, service_targets, args.json, width=40)


if __name__ == "__main__":
    sys.exit(main())
