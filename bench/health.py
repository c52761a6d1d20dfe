"""Health benchmarks: how fast readiness reaches a Service, and what probes cost idle.

Run from the repository root::

    .venv/bin/python -m bench.health -v                      # both benchmarks, full size
    .venv/bin/python -m bench.health --only reaction --rounds 5 --period 2
    .venv/bin/python -m bench.health --only cpu --pods 30 --window 20
    .venv/bin/python -m bench.health --json                  # adds one machine-readable line

1. reaction: an RC of 3 busybox ``httpd`` pods with an httpGet readiness probe
   (``--period`` s, ``--failures`` threshold, default 1 s and 2) behind a Service, and
   ``reconciler run`` on it (a watched directory). Each of ``--rounds`` rounds deletes the
   file the probe reads in one pod (``docker exec``) and times how long until the
   Service's forwarder no longer routes to that pod (its endpoints record, read with the
   same list call the reconciler uses), then restores it and times its return. Reported:
   the median and worst removal against ``periodSeconds`` and against the bound the
   reconciler promises, ``periodSeconds x failureThreshold + 2 s``.

2. cpu: ``--pods`` pods (default 100) idle, twice: without probes, then with a readiness
   (httpGet) and a liveness (exec) probe at Kubernetes' default period (``--cpu-period``,
   10 s). Over ``--window`` seconds (default 60) each: the CPU of the instance's containers
   (cgroup ``cpuacct.usage``: the health checks' processes run there), of their
   ``containerd-shim`` processes (they run ``runc exec`` for each check), and of
   ``dockerd`` and ``containerd`` (shared with the rest of the machine: hold the test lock,
   ``flock /tmp/reconciler-it.lock``, so nothing else runs). Reported: CPU seconds per
   minute of both, their ratio, and the CPU of one health check.

Every instance is ``bench-XXXXXXXX-...`` with a /20 of its own and a temporary state
directory; everything is removed with ``reconciler down`` at the end (then by instance
label). A missed target still exits 0; 1 means no figure came out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors

from bench.service import Processes, Service
from bench.services import (
    IMAGE,
    Bench,
    ensure_image,
    finish_run,
    median,
    owned,
    ratio,
    start_run,
    target,
    wait_until,
)
from reconciler.core import labels as L

#: removal within the promised bound: at most 1.0 of periodSeconds x failureThreshold + 2 s
REACTION_TARGET = 1.0
#: 100 probed pods at the default period cost at most this many times 100 unprobed ones
CPU_RATIO_TARGET = 50.0
CGROUP_CPUACCT = Path("/sys/fs/cgroup/cpuacct")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def probed_manifests(
    replicas: int, period: int, failures: int, node_port: int | None = None, liveness: bool = False
) -> str:
    """An RC of httpd pods, ready while /www/ready exists, and (with ``node_port``) a
    NodePort Service over them; ``period`` 0 means no probes at all."""
    probes = ""
    if period:
        probes = (
            "          readinessProbe:\n"
            "            httpGet: {path: /ready, port: http}\n"
            f"            periodSeconds: {period}\n"
            f"            failureThreshold: {failures}\n"
        )
        if liveness:
            probes += (
                "          livenessProbe:\n"
                "            exec: {command: [cat, /www/index.html]}\n"
                f"            periodSeconds: {period}\n"
            )
    text = f"""\
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
          image: {IMAGE}
          command: [sh, -c]
          args:
            - mkdir -p /www && hostname > /www/index.html && touch /www/ready &&
              exec httpd -f -p 8080 -h /www
          ports: [{{containerPort: 8080, name: http}}]
{probes}"""
    if node_port:
        text += f"""---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http, nodePort: {node_port}}}]
"""
    return text


def routes(api: docker.APIClient, instance: str) -> set[str]:
    """Where the Service's forwarder routes now: its newest endpoints record, else its spec
    label (what a pass reads, from one list call)."""
    found = owned(api, instance)
    forwarder = next(
        (c for c in found if (c.get("Labels") or {}).get(L.ROLE) == L.ROLE_FORWARDER), None
    )
    if forwarder is None:
        return set()
    records = [
        c
        for c in found
        if (c.get("Labels") or {}).get(L.FORWARDER) == forwarder["Id"]
        and (c.get("Labels") or {}).get(L.ROLE) == L.ROLE_ENDPOINTS
    ]
    if records:
        newest = max(records, key=lambda c: int(c.get("Created", 0)))
        listed = json.loads(newest["Labels"][L.ENDPOINTS])
    else:
        spec = json.loads(forwarder["Labels"].get(L.SPEC, "{}")).get("spec", {})
        listed = [[p["protocol"], p["port"], p["endpoints"]] for p in spec.get("ports", [])]
    return {e.split(":")[0] for _, _, endpoints in listed for e in endpoints}


def pod_address(api: docker.APIClient, instance: str, pod: str) -> str:
    for c in owned(api, instance):
        labels = c.get("Labels") or {}
        if labels.get(L.POD) == pod and labels.get(L.ROLE) == L.ROLE_INFRA:
            for network in (c.get("NetworkSettings") or {}).get("Networks", {}).values():
                if network.get("IPAddress"):
                    return str(network["IPAddress"])
    raise RuntimeError(f"pod {pod} has no address")


def free_node_port() -> int:
    for port in range(31900, 32700):
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free node port")


def bench_reaction(bench: Bench, rounds: int, period: int, failures: int) -> dict[str, Any]:
    """Readiness failure -> endpoint removal (and back), under ``reconciler run``."""
    instance = bench.instance("reaction")
    source = bench.path("reaction", "web.yaml")
    source.write_text(probed_manifests(3, period, failures, free_node_port()))
    processes = Processes()
    removals: list[float] = []
    returns: list[float] = []
    try:
        processes.start(Service(bench, "reaction", instance, source.parent))
        wait_until(
            lambda: len(routes(bench.api, instance)) == 3, 120, "all three pods to be routed"
        )
        for turn in range(rounds):
            pod = f"web-{turn % 3}"
            name = f"{instance}_default_{pod}_web"
            address = pod_address(bench.api, instance, pod)
            bench.api.exec_start(bench.api.exec_create(name, ["rm", "/www/ready"]))
            started = time.monotonic()
            wait_until(
                lambda address=address: address not in routes(bench.api, instance),
                60,
                f"{pod} removed",
                interval=0.02,
            )
            removals.append(time.monotonic() - started)
            bench.api.exec_start(bench.api.exec_create(name, ["touch", "/www/ready"]))
            started = time.monotonic()
            wait_until(
                lambda address=address: address in routes(bench.api, instance),
                60,
                f"{pod} back",
                interval=0.02,
            )
            returns.append(time.monotonic() - started)
            bench.log(
                f"round {turn + 1}: removed in {removals[-1]:.2f}s, back in {returns[-1]:.2f}s"
            )
    finally:
        processes.stop_all()
    bound = period * failures + 2
    return {
        "period": period,
        "failure_threshold": failures,
        "bound": bound,
        "removal_median": median(removals),
        "removal_worst": max(removals),
        "return_median": median(returns),
        "removal_per_period": ratio(median(removals), period),
        "worst_per_bound": ratio(max(removals), bound),
    }


def container_cpu(container_id: str) -> float:
    """CPU seconds a container's cgroup used (cgroup v1 ``cpuacct.usage``), 0 if unknown."""
    for path in (
        CGROUP_CPUACCT / "docker" / container_id / "cpuacct.usage",
        CGROUP_CPUACCT / "system.slice" / f"docker-{container_id}.scope" / "cpuacct.usage",
    ):
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text()) / 1e9
    return 0.0


def process_cpu(pid: int, children: bool = False) -> float:
    """utime + stime (and, with ``children``, what its waited-for children used), seconds."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used = int(fields[11]) + int(fields[12])
        if children:
            used += int(fields[13]) + int(fields[14])
        return used / CLOCK_TICKS
    return 0.0


def engine_pids(container_ids: set[str]) -> tuple[list[int], list[int]]:
    """(dockerd and containerd, the shims of these containers), by their command lines."""
    engine, shims = [], []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().split(b"\0")
            name = Path(args[0].decode(errors="replace")).name
            if name in ("dockerd", "containerd"):
                engine.append(int(entry.name))
            elif name.startswith("containerd-shim"):
                text = b" ".join(args).decode(errors="replace")
                if any(cid in text for cid in container_ids):
                    shims.append(int(entry.name))
    return engine, shims


def cpu_window(api: docker.APIClient, instance: str, window: float) -> dict[str, float]:
    """CPU seconds per minute the instance's containers, their shims and the engine use."""
    ids = {c["Id"] for c in owned(api, instance)}
    engine, shims = engine_pids(ids)

    def sample() -> tuple[float, float, float]:
        return (
            sum(container_cpu(i) for i in ids),
            sum(process_cpu(p, children=True) for p in shims),
            sum(process_cpu(p) for p in engine),
        )

    before = sample()
    time.sleep(window)
    after = sample()
    per_minute = 60.0 / window
    containers, shim, engine_cpu = (
        round((b - a) * per_minute, 3) for a, b in zip(before, after, strict=True)
    )
    return {
        "containers": containers,
        "shims": shim,
        "engine": engine_cpu,
        "total": round(containers + shim + engine_cpu, 3),
    }


def bench_cpu(bench: Bench, pods: int, period: int, window: float) -> dict[str, Any]:
    """``pods`` idle pods without probes, then with probes: CPU over ``window`` each."""
    result: dict[str, Any] = {"pods": pods, "period": period, "window": window}
    for tag, probe_period in (("unprobed", 0), ("probed", period)):
        instance = bench.instance(f"cpu-{tag}")
        source = bench.path(f"cpu-{tag}", "web.yaml")
        source.write_text(probed_manifests(pods, probe_period, 3, liveness=True))
        bench.log(f"{tag}: applying {pods} pods")
        bench.apply(source.parent, instance, timeout=1800)
        time.sleep(min(10.0, window / 3))  # the first checks and their settling
        bench.log(f"{tag}: measuring {window:.0f}s")
        result[tag] = cpu_window(bench.api, instance, window)
        bench.down(instance)
    checks_per_minute = pods * 2 * 60.0 / period  # the infra's readiness, the app's liveness
    extra = result["probed"]["total"] - result["unprobed"]["total"]
    result["checks_per_minute"] = checks_per_minute
    result["ms_per_check"] = round(1000 * extra / checks_per_minute, 2)
    result["ratio"] = round(ratio(result["probed"]["total"], result["unprobed"]["total"]), 2)
    result["cores"] = round(result["probed"]["total"] / 60.0, 3)
    return result


def health_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    reaction = results.get("reaction") or {}
    cpu = results.get("cpu") or {}
    return [
        target(
            "worst removal / (period x threshold + 2 s)",
            reaction.get("worst_per_bound"),
            "<=",
            REACTION_TARGET,
        ),
        target("CPU, probed / unprobed pods", cpu.get("ratio"), "<=", CPU_RATIO_TARGET),
    ]


def print_reaction(r: Mapping[str, Any]) -> None:
    print(
        f"== reaction: readiness failure -> endpoint removed (period {r['period']}s, "
        f"failureThreshold {r['failure_threshold']}, bound {r['bound']}s) =="
    )
    print(
        f"  removal: median {r['removal_median']:.2f}s, worst {r['removal_worst']:.2f}s "
        f"({r['removal_per_period']:.2f}x the period); back: median {r['return_median']:.2f}s"
    )


def print_cpu(r: Mapping[str, Any]) -> None:
    print(
        f"== cpu: {r['pods']} idle pods, probes every {r['period']}s, {r['window']:.0f}s "
        "window (CPU seconds per minute) =="
    )
    for tag in ("unprobed", "probed"):
        row = r[tag]
        print(
            f"  {tag:<9} containers {row['containers']:.2f}  shims {row['shims']:.2f}  "
            f"engine {row['engine']:.2f}  total {row['total']:.2f}"
        )
    print(
        f"  probed / unprobed {r['ratio']:.1f}x; {r['ms_per_check']:.1f} ms CPU per check "
        f"({r['checks_per_minute']:.0f} checks a minute, {r['cores']:.3f} cores)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.health",
        description="Readiness reaction time against periodSeconds, and the idle CPU of probed "
        "pods against unprobed ones, each measured in the same run.",
    )
    parser.add_argument("--only", choices=("reaction", "cpu"), help="Run one benchmark only.")
    parser.add_argument("--rounds", type=int, default=6, help="reaction: failures timed.")
    parser.add_argument("--period", type=int, default=1, help="reaction: periodSeconds.")
    parser.add_argument("--failures", type=int, default=2, help="reaction: failureThreshold.")
    parser.add_argument("--pods", type=int, default=100, help="cpu: idle pods.")
    parser.add_argument("--cpu-period", type=int, default=10, help="cpu: periodSeconds.")
    parser.add_argument("--window", type=float, default=60, help="cpu: seconds measured.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    parser.add_argument("--json", action="store_true", help="Also print one JSON line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Progress on stderr.")
    args = parser.parse_args(argv)
    for name in ("rounds", "period", "failures", "pods", "cpu_period"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(verbose=args.verbose)

    results = start_run("health", bench.run_id)
    failure = ""
    try:
        ensure_image(bench, IMAGE)
        if args.only in (None, "reaction"):
            results["reaction"] = bench_reaction(bench, args.rounds, args.period, args.failures)
            print_reaction(results["reaction"])
        if args.only in (None, "cpu"):
            results["cpu"] = bench_cpu(bench, args.pods, args.cpu_period, args.window)
            print_cpu(results["cpu"])
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
        bench.log("cleaning up")
        results["leftovers"] = bench.cleanup(keep_workdir=args.keep)
    return finish_run(bench, results, failure, health_targets, args.json, width=44)


if __name__ == "__main__":
    sys.exit(main())
