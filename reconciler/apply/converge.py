"""One reconcile pass, wired together: load → validate → observe → desire → plan (→ apply).

The pure stages live in their own packages; this module only connects them to the edges
(hosts through the ``Runtime`` protocols, git for revisions, the host memory file), so that
the CLI and the long-lived service share exactly the same pass. Everything but
:func:`connect` is typed on the protocols, so unit tests drive it with in-memory hosts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from reconciler.apply import readiness
from reconciler.apply import state as memory_file
from reconciler.apply.execute import ActionResult, ApplyReport, execute
from reconciler.apply.observer import Observer
from reconciler.apply.runtime import HostRuntime
from reconciler.check.policy import Policy
from reconciler.check.validate import DEFAULT_POLICY, ValidationResult, validate
from reconciler.core import labels as L
from reconciler.core.errors import ReconcilerError
from reconciler.core.model import Diagnostic, HostState, LiveVolume, Manifest, ObjectRef
from reconciler.desire import hostmemory
from reconciler.desire.budget import pod_budget
from reconciler.desire.claims import orphaned_volumes
from reconciler.desire.compute import compute_desired
from reconciler.desire.hostmemory import HostRecord
from reconciler.desire.settings import DesiredState, Settings
from reconciler.engine.host import DockerHost
from reconciler.forwarder.build import forwarder_programs
from reconciler.plan.live import group_pods, owner_of, pod_ready
from reconciler.plan.model import Plan, Verb
from reconciler.plan.planner import plan
from reconciler.plan.rollout import with_details
from reconciler.plan.rollout_memory import encode
from reconciler.plan.rollouts import Rollouts, plan_rollouts
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
    runtimes: Mapping[str, HostRuntime],
    volumes: bool | None = None,
    observer: Observer | None = None,
) -> dict[str, HostState]:
    """Every host at once: a slow or dark host never delays the others' answers, and holds
    the caller no longer than its deadline (``apply.observer``: a host that has not answered
    by then is unreachable for this look). ``volumes``: list the claims' volumes too (None:
    where a container mounts one). ``observer``: the service's, kept across passes (a host's
    observation still in flight is not asked again); by default a new one."""
    if not runtimes:
        return {}
    return (observer or Observer()).observe(runtimes, volumes)


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
    errors: Mapping[ObjectRef, str] | None = None,
    commit: str = "",
) -> tuple[DesiredState, Plan]:
    """The desired state and the plan: first each Deployment's rollout step (which of its
    pods should exist now), then every pod placed, then the actions.

    ``errors``: per Deployment, the last failed action on one of its pods in the previous
    pass (a rollout that fails says why); ``commit``: the source revision."""
    rollouts = plan_rollouts(
        manifests,
        live,
        settings,
        multi_host=len(hosts) > 1,
        now=now,
        errors=errors,
        commit=commit,
    )
    decisions = {ref: done.decision for ref, done in rollouts.steps.items()}
    desired = compute_desired(manifests, hosts, live, settings, host_memory, now, decisions)
    # restarts held back by their back-off need the time of day: the caller's, else now
    the_plan = plan(desired, live, prune=prune, now=now or time.time())
    the_plan.orphaned_volumes = orphaned_volumes(desired.claims, live)
    the_plan.prune_volumes = prune_volumes
    if not prune:
        rollouts.forget = []
    the_plan.rollouts = rollouts
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
    clock: Callable[[], float] = time.time,
    observer: Observer | None = None,
) -> tuple[dict[str, HostState], dict[str, HostRecord], float]:
    """Observe every host and update the instance's host memory (kept on disk when
    ``state_dir`` is given, else carried in ``previous``): what placement needs to give an
    unreachable host its grace period. ``clock``: the wall clock (tests pass their own);
    ``observer``: as ``observe``'s (a host without an answer by its deadline is unreachable,
    and remembered so)."""
    live = observe(runtimes, volumes, observer)
    now = clock()
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
    """What a two-phase apply did: the workload report and the forwarder follow-up, and the
    rollouts as recorded (a failure's reason completed with what the hosts said)."""

    report: ApplyReport
    followup: Plan | None = None  # forwarder actions planned after the pods changed
    rollouts: Rollouts | None = None
    memory_errors: list[str] | None = None  # hosts that could not keep a rollout's memory

    def rollout_errors(self) -> dict[ObjectRef, str]:
        """Per Deployment, the first failed action on one of its pods: the next pass's
        ``errors`` (what a failing rollout reports as its reason)."""
        found: dict[ObjectRef, str] = {}
        for result in self.report.failed:
            owner = result.action.owner
            if owner.kind == "Deployment" and not result.skipped:
                found.setdefault(owner, f"pod {result.action.pod}: {result.error}")
        return found


def failure_details(
    rollouts: Rollouts, runtimes: Mapping[str, HostRuntime], observer: Observer | None = None
) -> dict[ObjectRef, str]:
    """For each rollout that failed in this pass, what the hosts say about the failed
    revision's pods that are not ready (``HostRuntime.failure_details``: exit codes, the
    last probe's output). Asked before the rollback removes them; failures are rare, so one
    more list call per host is no cost worth avoiding."""
    failed = {ref: done.failure for ref, done in rollouts.steps.items() if done.failure}
    if not failed:
        return {}
    live = observe(runtimes, observer=observer)
    found: dict[ObjectRef, list[str]] = {}
    for host, state in sorted(live.items()):
        if not state.reachable:
            continue
        pods = group_pods(state.containers)
        for (_, pod), containers in sorted(pods.items()):
            owner = owner_of(containers)
            failure = failed.get(owner)
            if failure is None or containers[0].labels.get(L.TEMPLATE_HASH) != failure.hash:
                continue
            if pod_ready(containers):
                continue
            try:
                said = runtimes[host].failure_details(containers)
            except Exception:  # only the reason gets shorter
                continue
            # the app containers, and the infra container when it carries the pod's
            # readiness probe (docs/health.md): what that probe got is the reason
            telling = [
                c
                for c in containers
                if c.labels.get(L.ROLE) == L.ROLE_APP or c.labels.get(L.HEALTH)
            ]
            texts = [said[c.id] for c in telling if c.id in said] or [
                said[c.id] for c in containers if c.id in said
            ]
            if texts:
                found.setdefault(owner, []).append(f"pod {pod} on {host}: {'; '.join(texts)}")
    return {ref: "; ".join(lines[:3]) for ref, lines in found.items()}


def record_rollouts(
    rollouts: Rollouts,
    runtimes: Mapping[str, HostRuntime],
    image: str,
    details: Mapping[ObjectRef, str] | None = None,
) -> tuple[Rollouts, list[str]]:
    """Write each rollout's memory where it must go (``Rollouts.writes``), a decided
    failure's reason first completed with ``details``; the rollouts as written, and what
    could not be written (it costs the memory's freshness on that host, never the pass)."""
    steps = dict(rollouts.steps)
    for ref, extra in (details or {}).items():
        if ref in steps:
            steps[ref] = with_details(steps[ref], extra)
    errors: list[str] = []

    def write(ref: ObjectRef, host: str) -> None:
        done = steps[ref]
        generation = done.memory.generation + (1 if done.changed else 0)
        memory = dataclasses.replace(done.memory, generation=generation)
        try:
            runtimes[host].record_rollout(ref, encode(memory), generation, image)
        except Exception as exc:  # one host's marker; the others still get theirs
            errors.append(f"host {host}: cannot record the rollout of {ref}: {exc}")

    jobs = [(ref, host) for ref, hosts in rollouts.writes.items() for host in hosts]
    if jobs:
        with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
            list(pool.map(lambda job: write(*job), jobs))
    for ref, done in steps.items():
        if ref in rollouts.writes and done.changed:
            steps[ref] = dataclasses.replace(
                done,
                memory=dataclasses.replace(done.memory, generation=done.memory.generation + 1),
            )
    return Rollouts(steps, rollouts.writes, rollouts.forget), errors


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
    observer: Observer | None = None,
) -> Converged:
    """Apply ``the_plan``; when pods changed, re-observe and bring the forwarders up to date.

    Rollouts first write their memory (before any pod of a new revision exists, so that no
    pod's revision is ever unknown), a failure's reason completed with what the hosts say
    of the failed pods (before the rollback removes them). Then the pods.

    Forwarders carry a Service's endpoints, which exist only once the pods run. So pods go
    first; then one list call per host shows where they run now, a fresh plan says which
    forwarders must follow, and those run. When no pod changes, the plan runs as it is.
    When the pods' phase removes pods while the forwarders' endpoints already changed (a
    rollout: new pods became ready, old ones go now), the forwarders are brought up to date
    first, so that a Service always has the new pods before it loses the old ones.
    ``wait_ready`` (``reconciler apply``): pods made with readiness probes are given the
    time their probes need to pass before the forwarders are planned (``apply.readiness``);
    not a Deployment's, whose rollout already looks again until its pods are ready (or its
    deadline passes: a template that never becomes ready must not hold every pass).
    ``observer``: for every look at the hosts (``observe``); hosts the plan found
    unreachable are not asked to forget a rollout (a dark host would hold the pass).
    """
    observer = observer or Observer()
    rollouts, memory_errors = record_rollouts(
        the_plan.rollouts,
        runtimes,
        settings.infra_image,
        failure_details(the_plan.rollouts, runtimes, observer),
    )
    workload, forwarders = the_plan.split_forwarders()
    if not workload.actions:
        report = apply_plan(the_plan, runtimes, concurrency=concurrency, on_result=on_result)
        _forget_rollouts(rollouts, _answering(runtimes, the_plan), memory_errors)
        return Converged(report, rollouts=rollouts, memory_errors=memory_errors)
    report = ApplyReport()
    removes = any(a.verb in (Verb.REMOVE, Verb.RECREATE) for a in workload.actions)
    if removes and forwarders.actions:
        report = apply_plan(forwarders, runtimes, concurrency=concurrency, on_result=on_result)
    done = apply_plan(workload, runtimes, concurrency=concurrency, on_result=on_result)
    report.results.extend(done.results)
    _forget_rollouts(rollouts, _answering(runtimes, the_plan), memory_errors)
    probed = [p for p in readiness.made_by(workload) if p.owner.kind != "Deployment"]
    if wait_ready and probed:  # a one-shot apply: its new pods' probes get their time
        readiness.wait_ready(
            probed, lambda: observe(runtimes, observer=observer), readiness.grace(probed)
        )
    if not forwarders_follow(manifests, the_plan):
        # no Service, no forwarder: nothing to re-plan, and what each host runs now is
        # what it ran plus what was made, minus what was removed (a change among 10,000
        # pods costs its own actions, not another look at all 10,000)
        remember_changes(report, settings.instance, state_dir)
        return Converged(report, None, rollouts, memory_errors)
    # what runs now: the forwarders' endpoints, and the host memory (which pods each host
    # runs, so that a host lost before the next pass keeps them for its grace period)
    live, host_memory, now = observe_and_remember(
        runtimes,
        settings.instance,
        state_dir,
        host_memory,
        wants_volumes(manifests),
        observer=observer,
    )
    _, fresh = make_plan(
        manifests, hosts, live, settings, prune=prune, host_memory=host_memory, now=now
    )
    _, followup = fresh.split_forwarders()
    if followup.actions:
        more = apply_plan(followup, runtimes, concurrency=concurrency, on_result=on_result)
        report.results.extend(more.results)
    return Converged(report, followup, rollouts, memory_errors)


def _answering(runtimes: Mapping[str, HostRuntime], the_plan: Plan) -> dict[str, HostRuntime]:
    """The hosts the plan did not find unreachable."""
    return {name: r for name, r in runtimes.items() if name not in the_plan.unreachable}


def _forget_rollouts(
    rollouts: Rollouts, runtimes: Mapping[str, HostRuntime], errors: list[str]
) -> None:
    """The markers of Deployments that left the manifests go with their pods."""
    for ref in rollouts.forget:
        for host, runtime in runtimes.items():
            try:
                runtime.forget_rollout(ref)
            except Exception as exc:  # the next pass tries again
                errors.append(f"host {host}: cannot remove the rollout memory of {ref}: {exc}")
