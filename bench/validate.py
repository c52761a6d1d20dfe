"""Benchmark ``reconciler validate`` against ``kubernetes-validate --strict``.

Generates a tree of valid manifests (by default 10,000 objects in 1,000 files of 10
documents), checks that ``reconciler validate`` accepts it, then times the whole command
(a subprocess, interpreter start-up included) and ``kubernetes-validate --strict`` on a
sample of the same files, in the same run. Prints objects/second for both, their ratio and
the spec's targets with PASS/FAIL.

    .venv/bin/python -m bench.validate                 # full size, 3 runs each
    .venv/bin/python -m bench.validate --runs 5 --json # plus one machine-readable line

Exit 0 whatever the figures (a missed target prints FAIL); 1 when the generated input was
not valid or a command failed; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import verdicts

try:
    _Dumper: type[Any] = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Dumper = yaml.SafeDumper

#: The spec's targets.
TARGET_RATIO = 30.0
TARGET_RATE = 3_000.0
TARGET_RATE_OBJECTS = 10_000

NODE_PORT_RANGE = (30000, 32767)
#: The document kinds of one file, slot by slot (a Service follows the workload it selects).
#: Ten slots: 3 ReplicationControllers, 3 Pods, 4 Services; longer files repeat the pattern.
PATTERN = ("RC", "SVC", "RC", "SVC", "RC", "SVC", "POD", "SVC", "POD", "POD")
#: Files per folder; each folder is one namespace (``team-00``, ``team-01``, ...).
FILES_PER_NAMESPACE = 50

ROLES = ("api", "web", "worker", "auth", "search", "billing", "gateway", "catalog", "orders")
LOG_LEVELS = ("debug", "info", "warning")
#: The generated ReplicationControllers mount log directories under here: the operator's
#: policy must allow them, as it would for a real tree that does (reconciler.check.policy).
HOST_PATH_PREFIX = "/var/log/apps"
POLICY_FLAGS = ("--allow-host-path", HOST_PATH_PREFIX)


class BenchError(Exception):
    """The benchmark cannot give a figure: invalid input or a command that failed."""


@dataclass
class Tree:
    """What ``generate_tree`` wrote."""

    root: Path
    files: list[Path] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    node_port_services: int = 0
    bytes: int = 0

    @property
    def objects(self) -> int:
        return sum(self.kinds.values())


# -- generating ------------------------------------------------------------------------------
def _version(rng: random.Random) -> str:
    return f"{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"


def _env(rng: random.Random, role: str, name: str, namespace: str) -> list[dict[str, str]]:
    env = [
        {"name": "APP_NAME", "value": name},
        {"name": "NAMESPACE", "value": namespace},
        {"name": "LOG_LEVEL", "value": rng.choice(LOG_LEVELS)},
        {"name": "PORT", "value": "8080"},
    ]
    extra = [
        {"name": "DB_HOST", "value": f"db.{namespace}"},
        {"name": "CACHE_TTL_SECONDS", "value": str(rng.choice((30, 60, 300)))},
        {"name": "FEATURE_FLAGS", "value": f"{role}-v2,metrics"},
        {"name": "GOMAXPROCS", "value": str(rng.randint(1, 4))},
    ]
    return env + extra[: rng.randint(0, len(extra))]


def _replication_controller(rng: random.Random, name: str, role: str, ns: str) -> dict[str, Any]:
    version = _version(rng)
    selector = {"app": name, "tier": "backend"}
    cpu_request = rng.choice((50, 100, 200))
    memory_request = rng.choice((64, 128, 256))
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": name, "tier": "backend", "team": ns},
            "annotations": {"example.com/owner": f"{ns}@example.com"},
        },
        "spec": {
            "replicas": rng.randint(1, 5),
            "selector": selector,
            "template": {
                "metadata": {
                    "labels": {**selector, "team": ns, "version": "v" + version.replace(".", "-")}
                },
                "spec": {
                    "containers": [
                        {
                            "name": role,
                            "image": f"registry.example.com/{ns}/{role}:{version}",
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["--port=8080", f"--log-level={rng.choice(LOG_LEVELS)}"],
                            "env": _env(rng, role, name, ns),
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "resources": {
                                "requests": {
                                    "cpu": f"{cpu_request}m",
                                    "memory": f"{memory_request}Mi",
                                },
                                "limits": {
                                    "cpu": f"{cpu_request * 4}m",
                                    "memory": f"{memory_request * 2}Mi",
                                },
                            },
                            "volumeMounts": [
                                {"name": "cache", "mountPath": "/var/cache/app"},
                                {"name": "logs", "mountPath": "/var/log/app"},
                            ],
                        },
                        {
                            "name": "log-shipper",
                            "image": "registry.example.com/platform/log-shipper:2.4.1",
                            "args": ["--source=/logs", "--listen=:9102"],
                            "env": [{"name": "SHIPPER_TAG", "value": f"{ns}/{name}"}],
                            "ports": [{"name": "metrics", "containerPort": 9102}],
                            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                            "volumeMounts": [
                                {"name": "logs", "mountPath": "/logs", "readOnly": True}
                            ],
                        },
                    ],
                    "volumes": [
                        {"name": "cache", "emptyDir": {"sizeLimit": "512Mi"}},
                        {
                            "name": "logs",
                            "hostPath": {
                                "path": f"{HOST_PATH_PREFIX}/{ns}/{name}",
                                "type": "DirectoryOrCreate",
                            },
                        },
                    ],
                },
            },
        },
    }


def _pod(rng: random.Random, name: str, role: str, ns: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": role,
                "image": f"registry.example.com/{ns}/{role}:{_version(rng)}",
                "command": ["/bin/sh", "-c"],
                "args": [f"exec /usr/local/bin/{role} --listen=:8080"],
                "workingDir": "/srv",
                "env": _env(rng, role, name, ns),
                "ports": [{"name": "web", "containerPort": 8080}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"cpu": "250m", "memory": "128Mi"},
                },
                "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "restartPolicy": rng.choice(("Always", "Always", "OnFailure")),
    }
    if rng.random() < 0.3:
        spec["nodeSelector"] = {"disktype": "ssd"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": name, "tier": "frontend", "team": ns},
        },
        "spec": spec,
    }


def _service(workload: dict[str, Any], node_ports: list[int] | None, ns: str) -> dict[str, Any]:
    """A Service selecting ``workload``, its ports pointing at the workload's named ports.

    With ``node_ports`` (one per port), a NodePort Service with every nodePort explicit:
    Kubernetes would otherwise allocate the missing ones itself, possibly taking a port that a
    later Service asks for.
    """
    name = workload["metadata"]["name"]
    ports: list[dict[str, Any]]
    if workload["kind"] == "ReplicationController":
        selector = dict(workload["spec"]["selector"])
        ports = [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": 9102, "targetPort": "metrics"},
        ]
    else:
        selector = {"app": name}
        ports = [{"name": "web", "port": 8080, "targetPort": "web"}]
    spec: dict[str, Any] = {"type": "ClusterIP", "selector": selector, "ports": ports}
    if node_ports is not None:
        spec["type"] = "NodePort"
        for port, node_port in zip(ports, node_ports, strict=True):
            port["nodePort"] = node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name, "team": ns}},
        "spec": spec,
    }


def service_ports(workload: dict[str, Any]) -> int:
    """How many ports the Service of ``workload`` has (and nodePorts, when a NodePort)."""
    return 2 if workload["kind"] == "ReplicationController" else 1


def generate_tree(
    root: Path,
    files: int = 1000,
    docs_per_file: int = 10,
    seed: int = 0,
    node_port_range: tuple[int, int] = NODE_PORT_RANGE,
) -> Tree:
    """Write ``files`` multi-document YAML files of ``docs_per_file`` valid objects each.

    Files go to ``root/team-NN/manifests-NNNNN.yaml``, one folder (and namespace) per
    ``FILES_PER_NAMESPACE`` files. The first Service of each file is a NodePort while the
    node-port range lasts (30000-32767: 2,768 ports, each used once across the tree, every
    port of a NodePort Service given one); all other Services are ClusterIP. A narrower
    ``node_port_range`` (inside the real one) lets a test run out of ports cheaply.
    Deterministic for a given seed.
    """
    if files < 1 or docs_per_file < 1:
        raise ValueError("files and docs_per_file must be at least 1")
    rng = random.Random(seed)
    tree = Tree(root)
    next_node_port, last_node_port = node_port_range
    for file_index in range(files):
        ns = f"team-{file_index // FILES_PER_NAMESPACE:02d}"
        docs: list[dict[str, Any]] = []
        workload: dict[str, Any] | None = None
        first_service = True
        for slot in range(docs_per_file):
            kind = PATTERN[slot % len(PATTERN)]
            role = rng.choice(ROLES)
            name = f"{role}-{file_index:05d}-{slot}"
            if kind == "RC":
                workload = _replication_controller(rng, name, role, ns)
                docs.append(workload)
            elif kind == "POD":
                workload = _pod(rng, name, role, ns)
                docs.append(workload)
            else:
                assert workload is not None, "PATTERN must put a workload before a Service"
                node_ports = None
                wanted = service_ports(workload)
                if first_service and next_node_port + wanted - 1 <= last_node_port:
                    node_ports = list(range(next_node_port, next_node_port + wanted))
                    next_node_port += wanted
                    tree.node_port_services += 1
                first_service = False
                docs.append(_service(workload, node_ports, ns))
            tree.kinds[docs[-1]["kind"]] += 1
        path = root / ns / f"manifests-{file_index:05d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# generated by bench.validate (seed {seed}): {len(docs)} objects\n"
        body = yaml.dump_all(
            docs, Dumper=_Dumper, sort_keys=False, explicit_start=True, default_flow_style=False
        )
        text = header + body
        path.write_text(text, encoding="utf-8")
        tree.bytes += len(text.encode("utf-8"))
        tree.files.append(path)
    return tree


# -- running ---------------------------------------------------------------------------------
def _command(name: str) -> str:
    """The console script next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BenchError(
            f"{name}: command not found (install the dev extras: pip install -e .[dev])"
        )
    return found


@dataclass(frozen=True)
class Timing:
    """One run of a command: wall-clock seconds, and CPU seconds (user + system) it used."""

    wall: float
    cpu: float


def _run(argv: Sequence[str]) -> tuple[Timing, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu), done


def _failure(what: str, done: subprocess.CompletedProcess[str]) -> BenchError:
    output = (done.stdout + done.stderr).strip().splitlines()
    shown = "\n".join(output[:20]) + (
        f"\n... ({len(output) - 20} more lines)" if len(output) > 20 else ""
    )
    return BenchError(f"{what} exited {done.returncode}:\n{shown}")


def check_reconciler(tree: Tree) -> None:
    """``reconciler validate -o json ROOT`` must say valid, with no warnings, for every object."""
    _, done = _run(
        [_command("reconciler"), "validate", *POLICY_FLAGS, "-o", "json", str(tree.root)]
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise _failure("reconciler validate -o json (no JSON report)", done) from None
    problems = [
        f"{d['file']}:{d['line']}:{d['column']}: {severity}: {d['kind']}/{d['name']}: "
        f"{d['path']}: {d['message']}"
        for severity in ("error", "warning")
        for d in report.get(severity + "s", [])
    ]
    if done.returncode != 0 or problems or report.get("objects") != tree.objects:
        shown = "\n".join(problems[:20]) + (
            f"\n... ({len(problems) - 20} more)" if len(problems) > 20 else ""
        )
        raise BenchError(
            f"the generated tree should be {tree.objects} valid objects with no warnings, but "
            f"reconciler validate exited {done.returncode} with {report.get('objects')} "
            f"objects, {len(report.get('errors', []))} errors and "
            f"{len(report.get('warnings', []))} warnings:\n{shown}"
        )


def time_reconciler(tree: Tree, runs: int) -> list[Timing]:
    """One Timing per run of the whole ``reconciler validate ROOT`` command (must exit 0)."""
    argv = [_command("reconciler"), "validate", *POLICY_FLAGS, str(tree.root)]
    timings = []
    for _ in range(runs):
        timing, done = _run(argv)
        if done.returncode != 0:
            raise _failure("reconciler validate", done)
        timings.append(timing)
    return timings


def peer_sample(tree: Tree, count: int) -> list[Path]:
    """``count`` files spread evenly over the tree (every namespace and shape is represented)."""
    count = max(1, min(count, len(tree.files)))
    step = len(tree.files) / count
    return [tree.files[int(i * step)] for i in range(count)]


def time_peer(sample: list[Path], objects: int, runs: int) -> list[Timing]:
    """One Timing per run of ``kubernetes-validate --strict`` over ``sample``.

    Each run must pass every one of the ``objects`` objects: one ``INFO ... passed`` line
    per object, no ``ERROR`` or ``WARN`` (an unknown kind is only a warning there).
    """
    argv = [_command("kubernetes-validate"), "--strict", *map(str, sample)]
    timings = []
    for _ in range(runs):
        timing, done = _run(argv)
        lines = done.stdout.splitlines()
        passed = sum(1 for line in lines if line.startswith("INFO ") and " passed " in line)
        if done.returncode != 0 or passed != objects or len(lines) != objects:
            raise _failure(
                f"kubernetes-validate --strict ({passed} of {objects} objects passed)", done
            )
        timings.append(timing)
    return timings


# -- reporting -------------------------------------------------------------------------------
def _figures(timings: list[Timing], objects: int) -> dict[str, Any]:
    walls = [t.wall for t in timings]
    best, median = min(walls), statistics.median(walls)
    cpu = min(t.cpu for t in timings)
    return {
        "objects": objects,
        "runs": len(timings),
        "best_s": round(best, 4),
        "median_s": round(median, 4),
        "cpu_s": round(cpu, 4),
        "objects_per_s": round(objects / best, 1),
        "objects_per_s_median": round(objects / median, 1),
        "objects_per_cpu_s": round(objects / cpu, 1) if cpu > 0 else None,
    }


def _status(passed: bool | None) -> str:
    return verdicts.status(passed)


def _objects_per_file(tree: Tree) -> int:
    return tree.objects // len(tree.files)


def summarise(
    tree: Tree,
    reconciler_timings: list[Timing],
    sample: list[Path],
    peer_timings: list[Timing],
    load: tuple[float, float],
    peer_error: str = "",
) -> dict[str, Any]:
    """The figures, the ratio and the targets' status, as printed and as ``--json``.

    Without ``peer_timings`` (the peer could not run: ``peer_error`` says why) the ratio is
    not measured, and so the run cannot be a PASS."""
    ours = _figures(reconciler_timings, tree.objects)
    ours["files"] = len(tree.files)
    peer: dict[str, Any] | None = None
    ratio = ratio_median = ratio_cpu = None
    if peer_timings:
        peer = _figures(peer_timings, len(sample) * _objects_per_file(tree))
        peer["files"] = len(sample)
        peer["sample"] = len(sample) < len(tree.files)
        ratio = ours["objects_per_s"] / peer["objects_per_s"]
        ratio_median = ours["objects_per_s_median"] / peer["objects_per_s_median"]
        ratio_cpu = (
            ours["objects_per_cpu_s"] / peer["objects_per_cpu_s"]
            if ours["objects_per_cpu_s"] and peer["objects_per_cpu_s"]
            else None
        )
    full_size = tree.objects >= TARGET_RATE_OBJECTS
    return {
        "benchmark": "validate",
        "tree": {
            "files": len(tree.files),
            "objects": tree.objects,
            "kinds": dict(sorted(tree.kinds.items())),
            "node_port_services": tree.node_port_services,
            "bytes": tree.bytes,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": round(load[0], 2),
            "load_after": round(load[1], 2),
        },
        "reconciler": ours,
        "kubernetes_validate": peer,
        "peer_error": peer_error,
        "ratio": round(ratio, 1) if ratio is not None else None,
        "ratio_median": round(ratio_median, 1) if ratio_median is not None else None,
        "ratio_cpu": round(ratio_cpu, 1) if ratio_cpu is not None else None,
        "targets": {
            "ratio": {
                "target": TARGET_RATIO,
                "value": round(ratio, 1) if ratio is not None else None,
                "status": _status(ratio >= TARGET_RATIO if ratio is not None else None),
            },
            "reconciler_objects_per_s": {
                "target": TARGET_RATE,
                "value": ours["objects_per_s"],
                "status": _status(ours["objects_per_s"] >= TARGET_RATE if full_size else None),
            },
        },
    }


def _peer_lines(result: dict[str, Any], per_cpu: Any) -> list[str]:
    tree, peer = result["tree"], result["kubernetes_validate"]
    if peer is None:
        return [f"peer:       `kubernetes-validate --strict` could not run: {result['peer_error']}"]
    sample = (
        f"a SAMPLE of {peer['files']:,} of the {tree['files']:,} files "
        f"({peer['objects']:,} objects)"
        if peer["sample"]
        else f"all {peer['files']:,} files ({peer['objects']:,} objects)"
    )
    return [
        f"peer:       `kubernetes-validate --strict FILE...` on {sample}, one process, "
        f"best of {peer['runs']}",
        f"            {peer['objects_per_s']:>10,.1f} objects/s  (best {peer['best_s']:.3f} s; "
        f"median {peer['median_s']:.3f} s = {peer['objects_per_s_median']:,.1f} objects/s; "
        f"{per_cpu(peer)})",
        "            the peer's rate is per object, so it compares with ours although it ran "
        "on a sample",
        "",
        f"ratio:      {result['ratio']:,.1f}x  reconciler / kubernetes-validate, objects/s "
        f"(median-based {result['ratio_median']:,.1f}x"
        + (f", CPU-time-based {result['ratio_cpu']:,.1f}x)" if result["ratio_cpu"] else ")"),
    ]


def print_report(result: dict[str, Any]) -> None:
    tree, ours, peer = result["tree"], result["reconciler"], result["kubernetes_validate"]
    targets, machine = result["targets"], result["machine"]
    kinds = ", ".join(f"{n:,} {k}" for k, n in tree["kinds"].items())
    rate_note = (
        ""
        if targets["reconciler_objects_per_s"]["status"] != verdicts.NOT_MEASURED
        else f"  (needs {TARGET_RATE_OBJECTS:,} objects: run at full size)"
    )

    def per_cpu(figures: dict[str, Any]) -> str:
        rate = figures["objects_per_cpu_s"]
        return f"{rate:,.1f} objects per CPU-second" if rate else "CPU time not measured"

    lines = [
        "",
        "== bench.validate ==",
        f"input:      {tree['objects']:,} valid objects in {tree['files']:,} files ({kinds}; "
        f"{tree['node_port_services']:,} NodePort Services; "
        f"{tree['bytes'] / 1e6:.1f} MB, {tree['bytes'] / tree['objects']:,.0f} bytes/object)",
        f"machine:    {machine['cpus']} CPUs, load average {machine['load_before']:.1f} before, "
        f"{machine['load_after']:.1f} after",
        "",
        f"reconciler: `reconciler validate DIR` on all {ours['files']:,} files, the whole "
        f"command incl. interpreter start-up, best of {ours['runs']}",
        f"            {ours['objects_per_s']:>10,.1f} objects/s  (best {ours['best_s']:.3f} s; "
        f"median {ours['median_s']:.3f} s = {ours['objects_per_s_median']:,.1f} objects/s; "
        f"{per_cpu(ours)})",
        *_peer_lines(result, per_cpu),
        "",
        f"target ratio >= {TARGET_RATIO:.0f}x:                        "
        f"{targets['ratio']['status']}  "
        + (f"({result['ratio']:,.1f}x)" if result["ratio"] is not None else "(no peer)"),
        f"target reconciler >= {TARGET_RATE:,.0f} objects/s on 10k:  "
        f"{targets['reconciler_objects_per_s']['status']}  "
        f"({ours['objects_per_s']:,.1f} objects/s){rate_note}",
        "",
        "Both tools ran in this run on this machine: read the ratio, not absolute times."
        if peer is not None
        else "The peer did not run: the ratio is not measured.",
        verdicts.overall_line(t["status"] for t in targets.values()),
    ]
    if machine["load_before"] > (machine["cpus"] or 1) or machine["load_after"] > (
        machine["cpus"] or 1
    ):
        lines.append(
            "NOTE: the load average exceeded the CPU count: other work competed for the CPUs, "
            "so wall-clock rates are low; the objects-per-CPU-second figures are less affected."
        )
    print("\n".join(lines))


# -- main ------------------------------------------------------------------------------------
def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.validate",
        description="Time `reconciler validate` on generated manifests against "
        "`kubernetes-validate --strict` (objects/second, ratio, spec targets).",
    )
    parser.add_argument("--files", type=_positive, default=1000, help="files to generate")
    parser.add_argument(
        "--docs-per-file", type=_positive, default=10, help="documents (objects) per file"
    )
    parser.add_argument("--runs", type=_positive, default=3, help="timed runs of each command")
    parser.add_argument(
        "--peer-files",
        type=_positive,
        default=50,
        help="files given to kubernetes-validate (a sample spread over the tree; it manages "
        "about 70 objects/s)",
    )
    parser.add_argument(
        "--peer-runs", type=_positive, default=None, help="timed runs of the peer (default --runs)"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--json", action="store_true", help="also print one JSON line at the end")
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated tree and print where it is"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="reconciler-bench-validate-"))
    try:
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        tree = generate_tree(workdir / "manifests", args.files, args.docs_per_file, args.seed)
        print(
            f"generated {tree.objects:,} objects in {len(tree.files):,} files under {tree.root} "
            f"({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )
        check_reconciler(tree)  # also warms the page cache and .pyc files
        print("reconciler validate: valid, no warnings; timing...", file=sys.stderr)
        reconciler_times = time_reconciler(tree, args.runs)
        sample = peer_sample(tree, args.peer_files)
        peer_objects = len(sample) * _objects_per_file(tree)
        print(
            f"timing kubernetes-validate --strict on {len(sample)} files "
            f"({peer_objects} objects)...",
            file=sys.stderr,
        )
        peer_error = ""
        try:
            peer_times = time_peer(sample, peer_objects, args.peer_runs or args.runs)
        except BenchError as exc:  # the ratio is then not measured, never a pass
            peer_times, peer_error = [], str(exc)
        load_after = os.getloadavg()[0]
        return summarise(
            tree, reconciler_times, sample, peer_times, (load_before, load_after), peer_error
        )
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench.validate: FAILED: {exc}", file=sys.stderr)
        return 1
    print_report(result)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
