"""One reconcile pass, wired together: load → validate → observe → desire → plan (→ apply).

The pure stages live in their own packages; this module only connects them to the edges
(hosts through the ``Runtime`` protocols, git for revisions, the host memory file), so that
the CLI and the long-lived service share exactly the same pass. Everything but
:func:`connect` is typed on the protocols, so unit tests drive it with in-memory hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from reconciler.apply import readiness
from reconciler.apply import state as memory_file
from reconciler.apply.execute import ActionResult, ApplyReport, execute
from reconciler.apply.runtime import HostRuntime
from reconciler.check.policy import Policy
from reconciler.check.validate import DEFAULT_POLICY, ValidationResult, validate
from reconciler.core.errors import ReconcilerError
from reconciler.core.model import Diagnostic, HostState, LiveVolume, Manifest
from reconciler.desire import hostmemory
from reconciler.desire.budget import pod_budget
from reconciler.desire.claims import orphaned_volumes
from reconciler.desire.compute import compute_desired
from reconciler.desire.hostmemory import HostRecord
from reconciler.desire.settings import DesiredState, Settings
from reconciler.engine.host import DockerHost
from reconciler.forwarder.build import forwarder_programs
from reconciler.plan.model import Plan, Verb
from reconciler.plan.planner import plan
from reconciler.source.git import revision_of
from reconciler.source.hosts import Host
from reconciler.source.keys import Keyring
from reconciler.source.load import SourceLimits, load_paths
from reconciler.source.sops import open_secrets


def load_source(
    paths: Sequence[str],
    keyring: Keyring | None = None,
    *,
    policy: Policy = DEFAULT_POLICY,
    limits: SourceLimits | None = None,
    root: str | None = None,
    max_pods: int | None = None,
    exclude: Sequence[str] = (),
) -> tuple[ValidationResult, int]:
    """Validated manifests of a source tree (less what ``exclude`` and ``.sourceignore``
    files leave out), and how many files it had.

    With a ``keyring`` (``diff``, ``apply``, ``run``), SOPS-encrypted Secrets are decrypted
    in memory first and checked in full; one that cannot be opened is an error, so nothing
    is applied. Without one (``get``), they are checked as ``validate`` checks them.

    What the operator allows is checked here too, for ``diff``, ``apply`` and ``run`` alike:
    the ``policy``, the source's ``limits`` (``root`` is the tree symbolic links must stay
    in: a git checkout) and, when given, ``max_pods``.
    """
    loaded = load_paths(paths, limits=limits, root=root, exclude=exclude)
    if keyring is not None:
        loaded = open_secrets(loaded, keyring)
    result = validate(loaded, policy)
    if max_pods is not None and result.valid:
        over: list[Diagnostic] = pod_budget(result.manifests, max_pods)
        result.diagnostics = sorted([*result.diagnostics, *over], key=Diagnostic.sort_key)
    return result, len(loaded.files)


def source_revision(paths: Sequence[str]) -> str:
    return revision_of(paths[0]) if paths and paths[0] != "-" else ""


def connect(
    hosts: Sequence[Host], instance: str, revision: str = "", grace_seconds: int = 10
) -> dict[str, DockerHost]:
    """A Docker connection per host (opened on first use). The forwarder program is handed
    to each: the engine builds the forwarder image from it when a host lacks one."""
    return {
        h.name: DockerHost(
            h,
            instance=instance,
            revision=revision,
            grace_seconds=grace_seconds,
            programs=forwarder_programs,
        )
        for h in hosts
    }


def observe(
    runtimes: Mapping[str, HostRuntime], volumes: bool | None = None
) -> dict[str, HostState]:
    """Every host at once: a slow or dead host never delays the others' answers.
    ``volumes``: list the claims' volumes too (None: where a container mounts one)."""
    if not runtimes:
        return {}
    with ThreadPoolExecutor(max_workers=len(runtimes), thread_name_prefix="observe") as pool:
        futures = {
            name: pool.submit(runtime.observe, volumes) for name, runtime in runtimes.items()
        }
        return {name: future.result() for name, future in futures.items()}


def wants_volumes(manifests: Sequence[Manifest]) -> bool | None:
    """List the claims' volumes when the manifests define claims (placement follows them);
    otherwise only where a container mounts one (``observe``'s default)."""
    return True if any(m.kind == "PersistentVolumeClaim" for m in manifests) else None


def make_plan(
    manifests: Sequence[Manifest],
    hosts: Sequence[Host],
    live: Mapping[str, HostState],
    settings: Settings,
    *,
    prune: bool = True,
    host_memory: Mapping[str, HostRecord] | None = None,
    now: float = 0.0,
    prune_volumes: bool = False,
) -> tuple[DesiredState, Plan]:
    desired = compute_desired(manifests, hosts, live, settings, host_memory, now)
    # restarts held back by their back-off need the time of day: the caller's, else now
    the_plan = plan(desired, live, prune=prune, now=now or time.time())
    the_plan.orphaned_volumes = orphaned_volumes(desired.claims, live)
    the_plan.prune_volumes = prune_volumes
    return desired, the_plan


def remove_volumes(
    volumes: Sequence[LiveVolume], runtimes: Mapping[str, HostRuntime]
) -> list[tuple[LiveVolume, str]]:
    """Remove claims' volumes (``--prune-volumes``, ``down --volumes``): each with "" when
    it went, else why not (in use, not ours, host away). Never implicit."""
    results = []
    for volume in volumes:
        runtime = runtimes.get(volume.host)
        if runtime is None:
            results.append((volume, f"host {volume.host} is not configured"))
            continue
        try:
            runtime.remove_volume(volume)
        except ReconcilerError as exc:
            results.append((volume, str(exc)))
            continue
        results.append((volume, ""))
    return results


def observe_and_remember(
    runtimes: Mapping[str, HostRuntime],
    instance: str,
    state_dir: Path | None,
    previous: Mapping[str, HostRecord] | None = None,
    volumes: bool | None = None,
) -> tuple[dict[str, HostState], dict[str, HostRecord], float]:
    """Observe every host and update the instance's host memory (kept on disk when
    ``state_dir`` is given, else carried in ``previous``): what placement needs to give an
    unreachable host its grace period."""
    live = observe(runtimes, volumes)
    now = time.time()
    if state_dir is None:
        return live, hostmemory.remember(previous or {}, live, now), now
    before = memory_file.load(instance, state_dir)
    after = hostmemory.remember(before, live, now)
    if after != before:
        memory_file.save(instance, state_dir, after)
    return live, after, now


def apply_plan(
    the_plan: Plan,
    runtimes: Mapping[str, HostRuntime],
    *,
    concurrency: int = 8,
    on_result: Callable[[ActionResult], None] | None = None,
) -> ApplyReport:
    return execute(the_plan, runtimes, concurrency=concurrency, on_result=on_result)


def forwarders_follow(manifests: Sequence[Manifest], the_plan: Plan) -> bool:
    """Whether forwarders may have to follow the pods a plan changes: there is a Service,
    or a forwarder (of a Service just removed) is in the plan."""
    return any(m.kind == "Service" for m in manifests) or any(
        a.owner.kind == "Service" for a in the_plan.actions
    )


def remember_changes(report: ApplyReport, instance: str, state_dir: Path | None) -> None:
    """The host memory file after an apply, from what it did (``hostmemory.after_changes``)."""
    if state_dir is None:
        return  # the caller's memory: renewed by the next pass's observation
    made = [
        (r.action.host, (r.action.namespace, r.action.pod))
        for r in report.results
        if r.ok and not r.action.container and r.action.verb in (Verb.CREATE, Verb.RECREATE)
    ]
    removed = [
        (r.action.host, (r.action.namespace, r.action.pod))
        for r in report.results
        if r.ok and not r.action.container and r.action.verb == Verb.REMOVE
    ]
    if made or removed:
        before = memory_file.load(instance, state_dir)
        memory_file.save(instance, state_dir, hostmemory.after_changes(before, made, removed))


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
    runtimes: Mapping[str, HostRuntime],
    *,
    prune: bool = True,
    concurrency: int = 8,
    on_result: Callable[[ActionResult], None] | None = None,
    host_memory: Mapping[str, HostRecord] | None = None,
    now: float = 0.0,
    state_dir: Path | None = None,
    wait_ready: bool = False,
) -> Converged:
    """Apply ``the_plan``; when pods changed, re-observe and bring the forwarders up to date.

    Forwarders carry a Service's endpoints, which exist only once the pods run. So pods go
    first; then one list call per host shows where they run now, a fresh plan says which
    forwarders must follow, and those run. When no pod changes, the plan runs as it is.
    ``wait_ready`` (``reconciler apply``): pods made with readiness probes are given the
    time their probes need to pass before the forwarders are planned (``apply.readiness``).
    """
    workload, _ = the_plan.split_forwarders()
    if not workload.actions:
        return Converged(
            apply_plan(the_plan, runtimes, concurrency=concurrency, on_result=on_result)
        )
    report = apply_plan(workload, runtimes, concurrency=concurrency, on_result=on_result)
    probed = readiness.made_by(workload)
    if wait_ready and probed:  # a one-shot apply: its new pods' probes get their time
        readiness.wait_ready(probed, lambda: observe(runtimes), readiness.grace(probed))
    if not forwarders_follow(manifests, the_plan):
        # no Service, no forwarder: nothing to re-plan, and what each host runs now is
        # what it ran plus what was made, minus what was removed (a change among 10,000
        # pods costs its own actions, not another look at all 10,000)
        remember_changes(report, settings.instance, state_dir)
        return Converged(report)
    # what runs now: the forwarders' endpoints, and the host memory (which pods each host
    # runs, so that a host lost before the next pass keeps them for its grace period)
    live, host_memory, now = observe_and_remember(
        runtimes, settings.instance, state_dir, host_memory, wants_volumes(manifests)
    )
    _, fresh = make_plan(
        manifests, hosts, live, settings, prune=prune, host_memory=host_memory, now=now
    )
    _, followup = fresh.split_forwarders()
    if followup.actions:
        more = apply_plan(followup, runtimes, concurrency=concurrency, on_result=on_result)
        report.results.extend(more.results)
    return Converged(report, followup)
