"""One reconcile pass, wired together: load → validate → observe → desire → plan (→ apply).

The pure stages live in their own modules; this one only connects them to the two edges
(docker_io for hosts, gitsource for revisions), so that the CLI and, later, the long-lived
service share exactly the same pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.execute import ActionResult, ApplyReport, execute
from reconciler.check.validate import ValidationResult, validate
from reconciler.core.model import HostState, Manifest
from reconciler.desire import hostmemory
from reconciler.desire.compute import DesiredState, Settings, compute_desired
from reconciler.desire.hostmemory import HostRecord
from reconciler.engine.docker_host import DockerHost
from reconciler.plan.planner import Plan, plan
from reconciler.source.git import revision_of
from reconciler.source.hosts import Host
from reconciler.source.load import load_paths


@dataclass
class Pass:
    """Everything one pass learned, for the CLI to report."""

    validation: ValidationResult
    revision: str
    live: dict[str, HostState] = field(default_factory=dict)
    desired: DesiredState | None = None
    plan: Plan | None = None


def load_source(paths: Sequence[str]) -> tuple[ValidationResult, int]:
    """Validated manifests of a source tree, and how many files it had."""
    loaded = load_paths(paths)
    return validate(loaded), len(loaded.files)


def source_revision(paths: Sequence[str]) -> str:
    return revision_of(paths[0]) if paths and paths[0] != "-" else ""


def connect(
    hosts: Sequence[Host], instance: str, revision: str = "", grace_seconds: int = 10
) -> dict[str, DockerHost]:
    return {
        h.name: DockerHost(h, instance=instance, revision=revision, grace_seconds=grace_seconds)
        for h in hosts
    }


def observe(runtimes: Mapping[str, DockerHost]) -> dict[str, HostState]:
    """Every host at once: a slow or dead host never delays the others' answers."""
    if not runtimes:
        return {}
    with ThreadPoolExecutor(max_workers=len(runtimes), thread_name_prefix="observe") as pool:
        futures = {name: pool.submit(runtime.observe) for name, runtime in runtimes.items()}
        return {name: future.result() for name, future in futures.items()}


def make_plan(
    manifests: Sequence[Manifest],
    hosts: Sequence[Host],
    live: Mapping[str, HostState],
    settings: Settings,
    *,
    prune: bool = True,
    host_memory: Mapping[str, HostRecord] | None = None,
    now: float = 0.0,
) -> tuple[DesiredState, Plan]:
    desired = compute_desired(manifests, hosts, live, settings, host_memory, now)
    return desired, plan(desired, live, prune=prune)


def observe_and_remember(
    runtimes: Mapping[str, DockerHost],
    instance: str,
    state_dir: Path | None,
    previous: Mapping[str, HostRecord] | None = None,
) -> tuple[dict[str, HostState], dict[str, HostRecord], float]:
    """Observe every host and update the instance's host memory (kept on disk when
    ``state_dir`` is given, else carried in ``previous``): what placement needs to give an
    unreachable host its grace period."""
    live = observe(runtimes)
    now = time.time()
    if state_dir is None:
        return live, hostmemory.remember(previous or {}, live, now), now
    before = hostmemory.load(instance, state_dir)
    after = hostmemory.remember(before, live, now)
    if after != before:
        hostmemory.save(instance, state_dir, after)
    return live, after, now


def apply_plan(
    the_plan: Plan,
    runtimes: Mapping[str, DockerHost],
    *,
    concurrency: int = 8,
    on_result: Callable[[ActionResult], None] | None = None,
) -> ApplyReport:
    return execute(the_plan, runtimes, concurrency=concurrency, on_result=on_result)


@dataclass
class Converged:
    """What a two-phase apply did: the workload report and the forwarder follow-up."""

    report: ApplyReport
    followup: Plan | None = None  # forwarder actions planned after the pods changed


def converge(
    the_plan: Plan,
    manifests: Sequence[Manifest],
    hosts: Sequence[Host],
    settings: Settings,
    runtimes: Mapping[str, DockerHost],
    *,
    prune: bool = True,
    concurrency: int = 8,
    on_result: Callable[[ActionResult], None] | None = None,
    host_memory: Mapping[str, HostRecord] | None = None,
    now: float = 0.0,
    state_dir: Path | None = None,
) -> Converged:
    """Apply ``the_plan``; when pods changed, re-observe and bring the forwarders up to date.

    Forwarders carry a Service's endpoints, which exist only once the pods run. So pods go
    first; then one list call per host shows where they run now, a fresh plan says which
    forwarders must follow, and those run. When no pod changes, the plan runs as it is.
    """
    workload, _ = the_plan.split_forwarders()
    if not workload.actions:
        return Converged(
            apply_plan(the_plan, runtimes, concurrency=concurrency, on_result=on_result)
        )
    report = apply_plan(workload, runtimes, concurrency=concurrency, on_result=on_result)
    # what runs now: the forwarders' endpoints, and the host memory (which pods each host
    # runs, so that a host lost before the next pass keeps them for its grace period)
    live, host_memory, now = observe_and_remember(
        runtimes, settings.instance, state_dir, host_memory
    )
    _, fresh = make_plan(
        manifests, hosts, live, settings, prune=prune, host_memory=host_memory, now=now
    )
    _, followup = fresh.split_forwarders()
    if followup.actions:
        more = apply_plan(followup, runtimes, concurrency=concurrency, on_result=on_result)
        report.results.extend(more.results)
    return Converged(report, followup)
