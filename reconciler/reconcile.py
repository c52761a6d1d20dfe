"""One reconcile pass, wired together: load → validate → observe → desire → plan (→ apply).

The pure stages live in their own modules; this one only connects them to the two edges
(docker_io for hosts, gitsource for revisions), so that the CLI and, later, the long-lived
service share exactly the same pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reconciler.applying import ActionResult, ApplyReport, execute
from reconciler.desired import DesiredState, Settings, compute_desired
from reconciler.docker_io import DockerHost
from reconciler.gitsource import revision_of
from reconciler.hosts import Host
from reconciler.loading import load_paths
from reconciler.model import HostState, Manifest
from reconciler.planning import Plan, plan
from reconciler.validation import ValidationResult, validate


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
) -> tuple[DesiredState, Plan]:
    desired = compute_desired(manifests, hosts, live, settings)
    return desired, plan(desired, live, prune=prune)


def apply_plan(
    the_plan: Plan,
    runtimes: Mapping[str, DockerHost],
    *,
    concurrency: int = 8,
    on_result: Callable[[ActionResult], None] | None = None,
) -> ApplyReport:
    return execute(the_plan, runtimes, concurrency=concurrency, on_result=on_result)
