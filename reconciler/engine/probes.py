"""Probes as Docker health checks: the script each check runs and its arguments. Pure.

docs/health.md tells the design; in short:

- An app container with a liveness or startup probe, or an exec readiness probe, gets a
  Docker ``HEALTHCHECK``. Its Docker health is its liveness: ``unhealthy`` once its
  liveness (or startup) probe failed ``failureThreshold`` times in a row, which the
  reconciler answers with a restart (Docker never restarts an unhealthy container).
- The infra container of a pod with readiness or startup probes gets one too: its
  Docker health is the readiness of the whole pod. It runs the HTTP and TCP readiness
  probes itself (it holds the pod's network namespace), and reads what the app
  containers' checks found (exec readiness, startup done) from ``/dev/shm``, which the
  pod's containers share (they join the infra's IPC namespace).
- Each check runs ``/.reconciler-probe/busybox sh -c SCRIPT``: a static busybox from a read-only
  volume the reconciler fills on each host (``engine.probetools``), so that a probe works
  in an image with no shell, curl or wget. The script keeps each probe's own period,
  initial delay and thresholds in ``/dev/shm``: Docker's own interval is the shortest
  period, its retries 1, so a check's exit status is the verdict.

The probes are written into the script as shell-quoted words (``shlex.quote``), never
parsed by the shell from text, so any command, path or header a manifest holds is safe.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.core.model import DesiredContainer, DesiredPod, Probe

#: where the probe tools volume is mounted in a checked container, read-only (not under
#: ``/.reconciler``, where an infra container mounts the pod's files volumes)
TOOLS_MOUNT = "/.reconciler-probe"
BUSYBOX = TOOLS_MOUNT + "/busybox"
#: per-probe state, shared by the pod's containers through the infra's IPC namespace
STATE_DIR = "/dev/shm/.reconciler-probe"
_NANOS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class HealthcheckArgs:
    """Docker's ``Healthcheck`` of a container (``test`` is the exec form, ``CMD``)."""

    test: tuple[str, ...]
    interval: int  # seconds
    timeout: int  # seconds
    retries: int = 1

    def as_docker(self) -> dict[str, Any]:
        """The ``Healthcheck`` object of ``POST /containers/create`` (durations in ns)."""
        return {
            "Test": ["CMD", *self.test],
            "Interval": self.interval * _NANOS,
            "Timeout": self.timeout * _NANOS,
            "Retries": self.retries,
            "StartPeriod": 0,
        }


def tools_volume(instance: str) -> str:
    """The Docker volume holding the static busybox the checks run, one per host."""
    return f"{instance}_reconciler_probe"


# -- what runs where ---------------------------------------------------------------------------
def app_checked(probe: Probe) -> bool:
    """Whether the container's own check runs ``probe``: liveness and startup always (they
    decide whether it lives), readiness when it must run inside the container (exec)."""
    return probe.kind != "readiness" or not probe.network


def app_health_kinds(container: DesiredContainer) -> tuple[str, ...]:
    """What an app container's health check runs, in order: startup, liveness, readiness."""
    kinds = {p.kind for p in container.probes if app_checked(p)}
    return tuple(k for k in ("startup", "liveness", "readiness") if k in kinds)


def needs_tools(pod: DesiredPod) -> bool:
    """Whether any container of ``pod`` has a health check (and so needs the tools)."""
    return pod_checked(pod) or any(app_checked(p) for c in pod.containers[1:] for p in c.probes)


def pod_checked(pod: DesiredPod) -> bool:
    """Whether the pod's readiness is a health check of its infra container: when any app
    container has a readiness or startup probe."""
    return any(p.kind in ("readiness", "startup") for c in pod.app_containers for p in c.probes)


# -- the script --------------------------------------------------------------------------------
_COMMON = r"""
S=__STATE__
B=__BUSYBOX__
[ -d "$S" ] || mkdir -p "$S" 2>/dev/null
read -r stat </proc/1/stat
set -- ${stat##*) }
born=${20}
read -r now _ </proc/uptime
now=${now%.*}
age=$((now - born / 100))
check() {
  local t=$1 h=$2 c n
  shift 2
  case $h in
  exec)
    c=$1
    shift
    case $c in
    */*) ;;
    *)
      local IFS=: d
      for d in $PATH; do
        if [ -f "$d/$c" ] && [ -x "$d/$c" ]; then c=$d/$c; break; fi
      done
      ;;
    esac
    timeout "$t" "$c" "$@"
    ;;
  http)
    c=$1
    shift
    n=$#
    while [ "$n" -gt 0 ]; do set -- "$@" --header "$1"; shift; n=$((n - 1)); done
    timeout "$t" "$B" wget -q -O /dev/null --no-check-certificate "$@" "$c"
    ;;
  tcp) timeout "$t" "$B" nc -w "$t" "$1" "$2" </dev/null ;;
  esac
}
run() {
  local f="$S/$2.$1" last=0 succ=0 fail=0 out rc kind=$1 name=$2 t=$5 sn=$6 fn=$7
  V=0
  [ "$1" = liveness ] && V=1
  { read -r last succ fail V <"$f"; } 2>/dev/null
  F=$fail
  if [ "$age" -lt "$3" ] || [ $((now - last)) -lt "$4" ]; then return; fi
  shift 7
  check "$t" "$@" >"$f.out" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    succ=$((succ + 1)); fail=0
    [ "$succ" -ge "$sn" ] && V=1
  else
    fail=$((fail + 1)); succ=0
    [ "$fail" -ge "$fn" ] && V=0
    out="exit $rc"
    { read -r out <"$f.out"; } 2>/dev/null
    [ "$rc" = 143 ] && out="timed out after ${t}s"
    echo "$name: $kind probe failed ($fail/$fn): $out"
  fi
  echo "$now $succ $fail $V" >"$f"
  F=$fail
}
"""


def _q(word: object) -> str:
    return shlex.quote(str(word))


def _run_line(container: str, probe: Probe) -> str:
    """``run KIND CONTAINER DELAY PERIOD TIMEOUT SUCCESS FAILURE HANDLER ARG...``."""
    if probe.handler == "exec":
        target: list[object] = ["exec", *probe.command]
    elif probe.handler == "http":
        scheme = "https" if probe.scheme == "HTTPS" else "http"
        host = probe.host or "127.0.0.1"
        url = f"{scheme}://{host}:{probe.port}{probe.path}"
        target = ["http", url, *(f"{name}: {value}" for name, value in probe.headers)]
    else:
        target = ["tcp", probe.host or "127.0.0.1", probe.port]
    words: list[object] = [
        "run",
        probe.kind,
        container,
        probe.initial_delay,
        probe.period,
        probe.timeout,
        probe.success_threshold,
        probe.failure_threshold,
        *target,
    ]
    return " ".join(_q(w) for w in words)


def _script(lines: Iterable[str]) -> str:
    common = _COMMON.replace("__STATE__", _q(STATE_DIR)).replace("__BUSYBOX__", _q(BUSYBOX))
    return common.lstrip("\n") + "\n".join(lines) + "\n"


def app_script(container: DesiredContainer) -> str:
    """The check of one app container: startup, then liveness, then exec readiness.

    A new instance of the container (a restart: its PID 1 started at another time) starts
    from scratch: its probes' counts, its startup and its readiness are forgotten.
    """
    name = _q(container.container)
    state = f'"$S"/{name}'
    lines = [
        f"was=; {{ read -r was <{state}.id; }} 2>/dev/null",
        f'if [ "$was" != "$born" ]; then rm -f {state}.*; echo "$born" >{state}.id; fi',
        "dead=; started=1",
    ]
    by_kind = {p.kind: p for p in container.probes if app_checked(p)}
    startup = by_kind.get("startup")
    if startup is not None:
        lines += [
            f"if [ ! -e {state}.started ]; then",
            "  " + _run_line(container.container, startup),
            f'  if [ "$V" = 1 ]; then : >{state}.started; else started=; '
            f'[ "$F" -ge {startup.failure_threshold} ] && dead=startup; fi',
            "fi",
        ]
    liveness = by_kind.get("liveness")
    if liveness is not None:
        lines += [
            'if [ -n "$started" ]; then',
            "  " + _run_line(container.container, liveness),
            '  [ "$V" = 1 ] || dead=liveness',
            "fi",
        ]
    readiness = by_kind.get("readiness")
    if readiness is not None:
        lines += [
            'if [ -n "$started" ]; then',
            "  " + _run_line(container.container, readiness),
            f'  echo "$V" >{state}.ready',
            f"else echo 0 >{state}.ready; fi",
        ]
    lines += [
        f'if [ -n "$dead" ]; then echo {name}": $dead probe failed: to be restarted"; exit 1; fi',
        "exit 0",
    ]
    return _script(lines)


def pod_script(pod: DesiredPod) -> str:
    """The check of a pod's infra container: the pod is ready when every container with a
    startup probe has started, every HTTP or TCP readiness probe passes (run from here,
    the pod's network namespace) and every exec readiness probe passed in its container."""
    lines = ["ready=1"]
    for container in pod.app_containers:
        name = _q(container.container)
        state = f'"$S"/{name}'
        kinds = {p.kind: p for p in container.probes}
        waits = "startup" in kinds
        if waits:
            lines.append(
                f"[ -e {state}.started ] || {{ ready=0; "
                f'echo {name}": startup probe has not succeeded yet"; }}'
            )
        readiness = kinds.get("readiness")
        if readiness is None:
            continue
        if readiness.network:
            run = _run_line(container.container, readiness)
            check = f'{run}; [ "$V" = 1 ] || ready=0'
            lines.append(f"if [ -e {state}.started ]; then {check}; fi" if waits else check)
        else:
            lines.append(
                f"v=0; {{ read -r v <{state}.ready; }} 2>/dev/null; "
                f'[ "$v" = 1 ] || {{ ready=0; echo {name}": exec readiness probe not passing"; }}'
            )
    lines.append('[ "$ready" = 1 ]')
    return _script(lines)


def _timing(probes: Iterable[Probe]) -> tuple[int, int]:
    """Docker's interval (the shortest period) and timeout (every probe's, and a margin)."""
    listed = list(probes)
    interval = min((p.period for p in listed), default=10)
    return max(1, interval), sum(p.timeout for p in listed) + 2


def app_healthcheck(container: DesiredContainer) -> HealthcheckArgs | None:
    checked = [p for p in container.probes if app_checked(p)]
    if not checked:
        return None
    interval, timeout = _timing(checked)
    return HealthcheckArgs((BUSYBOX, "sh", "-c", app_script(container)), interval, timeout)


def pod_healthcheck(pod: DesiredPod) -> HealthcheckArgs | None:
    if not pod_checked(pod):
        return None
    gating = [p for c in pod.app_containers for p in c.probes if p.kind in ("readiness", "startup")]
    network = [p for p in gating if p.kind == "readiness" and p.network]
    interval, _ = _timing(gating)
    _, timeout = _timing(network)
    return HealthcheckArgs((BUSYBOX, "sh", "-c", pod_script(pod)), interval, timeout)
