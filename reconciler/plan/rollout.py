"""A Deployment's rollout as a pure step function: (the desired Deployment, its live pods and
their readiness, the rollout's memory, the time) → which pods should exist now, the next
memory, and the rollout's status. Pure.

The reconciler is level-triggered, so a rollout is not a procedure that runs to its end: each
pass asks :func:`step` what is allowed *now*, and the plan carries that out. A pass always
makes the progress allowed, a pass that finds nothing allowed changes nothing, and a
restarted reconciler (or another one, sharing only the hosts) resumes from the same
inputs, because everything :func:`step` reads is either live or in the memory kept on the
hosts (``plan.rollout_memory``).

RollingUpdate follows the deployment controller (``pkg/controller/deployment/rolling.go``),
pod by pod instead of ReplicaSet by ReplicaSet:

- new pods are made while the Deployment has fewer than ``replicas + maxSurge`` pods;
- old pods go while at least ``replicas - maxUnavailable`` pods stay available, counting
  new pods that are not available yet as unavailable (``maxScaledDown``); old pods that are
  not available go first;
- a pod is *available* once it has been ready (``plan.live.pod_ready``) for
  ``minReadySeconds``.

Creating and removing in the same pass is safe in any order: the creations fit under the
surge limit counting every pod that still exists, and the removals keep the availability
floor counting only pods already available. So both limits hold at every moment, whatever
host each pod is on. Recreate removes every old pod, then makes the new ones.

Progress is measured, not assumed: more new pods, more of them available, or fewer old
pods than ever seen in this rollout. A rollout of the manifest's template that makes no
progress for ``progressDeadlineSeconds`` fails: the revision is marked failed (with the
reason: the last failed action, the pods' exit codes, what their probes said) and the
Deployment goes back to the last revision that was fully available, under the same limits.
The failed template is not tried again while the manifest asks for it; a change of the
template, or ``rollout restart``, tries again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.model import ObjectRef
from reconciler.desire.deployments import (
    DeploymentSpec,
    RolloutDecision,
    WantedPod,
    pod_name,
)
from reconciler.plan.rollout_memory import (
    Failure,
    Revision,
    RolloutMemory,
)
from reconciler.plan.rollout_status import (
    COMPLETE,
    FAILED,
    PAUSED,
    PROGRESSING,
    RolloutStatus,
    failure_reason,
    status_message,
)


@dataclass(frozen=True, slots=True)
class ObservedPod:
    """One live pod of a Deployment, as the step needs it."""

    name: str
    host: str
    template_hash: str
    ordinal: int
    instance: str  # the infra container's id: one incarnation of the pod
    ready: bool
    created: int = 0
    problem: str = ""  # why it is not ready, as far as the list call tells


@dataclass(frozen=True, slots=True)
class Step:
    """One pass's answer for one Deployment."""

    ref: ObjectRef
    spec: DeploymentSpec
    decision: RolloutDecision
    memory: RolloutMemory
    status: RolloutStatus
    changed: bool  # the memory differs from what was read: it must be written
    failure: Failure | None = None  # decided in this pass: reported once
    completed: bool = False  # the target became fully available in this pass
    started: bool = False  # a rollout to a new target began in this pass


# -- the step -------------------------------------------------------------------------------
def _removal_order(pod: ObservedPod, numbers: Mapping[str, int]) -> tuple[int, int, int, int]:
    """Which old pod goes first: not ready, then the oldest revision, then the highest
    ordinal, then the newest (as the ReplicaSet controller ranks pods to delete)."""
    return (int(pod.ready), numbers.get(pod.template_hash, 0), -pod.ordinal, -pod.created)


def _target(
    spec: DeploymentSpec, before: RolloutMemory, templates: Mapping[str, Mapping[str, Any]]
) -> str:
    manifest = spec.template_hash
    if spec.paused:
        return before.target if before.target in templates else ""
    pin = before.pin
    if pin is not None and pin.manifest == manifest and pin.hash in templates:
        return pin.hash  # `rollout undo` chose, over the manifest and over a rollback
    failed = before.failed
    if failed is not None and failed.hash == manifest:
        good = before.last_good
        return good if good and good != manifest and good in templates else manifest
    return manifest


def _history(revisions: Iterable[Revision], keep: set[str], limit: int) -> tuple[Revision, ...]:
    """The revisions kept: those in use (``keep``) and the ``limit`` newest others."""
    ordered = sorted(revisions, key=lambda r: r.number)
    others = [r for r in ordered if r.hash not in keep]
    dropped = {r.hash for r in others[: max(0, len(others) - limit)]}
    return tuple(r for r in ordered if r.hash not in dropped)


def step(
    spec: DeploymentSpec,
    pods: Sequence[ObservedPod],
    memory: RolloutMemory | None,
    now: float,
    *,
    error: str = "",
    commit: str = "",
) -> Step:
    """What Deployment ``spec`` may do now; see the module's docstring.

    ``error``: the last action on one of its pods that failed (an image that cannot be
    pulled...), for the reason of a failure; ``commit``: the source revision, recorded with
    a new template revision.
    """
    now = round(now, 3)
    before = memory or RolloutMemory()
    result = _step(spec, pods, before, now, error, commit)
    if result.failure is None:
        return result
    # failed: the same pass starts going back to the last good revision
    again = _step(spec, pods, result.memory, now, error, commit)
    return dataclasses.replace(again, failure=result.failure, changed=True)


def _step(
    spec: DeploymentSpec,
    pods: Sequence[ObservedPod],
    before: RolloutMemory,
    now: float,
    error: str,
    commit: str,
) -> Step:
    ref, replicas = spec.ref, spec.replicas
    templates: dict[str, Mapping[str, Any]] = {r.hash: r.template for r in before.revisions}
    templates[spec.template_hash] = spec.template
    failed = before.failed if before.failed and before.failed.hash == spec.template_hash else None
    pin = before.pin if before.pin and before.pin.manifest == spec.template_hash else None
    target = _target(spec, dataclasses.replace(before, failed=failed, pin=pin), templates)
    revisions = list(before.revisions)
    if target and before.revision(target) is None:
        revisions.append(
            Revision(
                number=before.latest + 1,
                hash=target,
                template=spec.template,
                created=now,
                source=str(spec.source),
                commit=commit,
            )
        )
    numbers = {r.hash: r.number for r in revisions}
    started = bool(target) and target != before.target

    ready_since = {p.instance: before.ready_since.get(p.instance, now) for p in pods if p.ready}

    def available(pod: ObservedPod) -> bool:
        return pod.ready and now - ready_since[pod.instance] >= spec.min_ready

    names = {p.name for p in pods}
    new = {p.name: p for p in pods if p.template_hash == target and target}
    in_range = {n: p for n, p in new.items() if p.ordinal < replicas}
    surplus = sorted({n for n in new if n not in in_range})
    old = {p.name: p for p in pods if p.name not in new}
    new_available = sum(1 for p in in_range.values() if available(p))
    old_available = sum(1 for p in old.values() if available(p))
    number = numbers.get(target, 0)

    create: list[int] = []
    removals: dict[str, str] = {}
    missing = [i for i in range(replicas) if pod_name(ref.name, target, i) not in new]
    for name in surplus:
        removals[name] = f"Deployment {ref.name} wants {replicas} pod(s) (scale down)"
    state = PROGRESSING
    if not target:
        state = PAUSED
    elif failed is not None and target == failed.hash:
        state = FAILED  # nothing to go back to: what runs stays, nothing more is tried
    elif spec.paused:
        state = PAUSED
        if not surplus:
            create = missing[: max(0, replicas - len(names))]
    elif surplus:
        pass  # scale down first, as the controller does; the rest next pass
    elif spec.strategy == "Recreate":
        if old:
            for name, pod in old.items():
                removals[name] = (
                    f"Recreate: revision {numbers.get(pod.template_hash, '?')} goes before "
                    f"revision {number} starts"
                )
        else:
            create = missing
    else:
        room = replicas + spec.max_surge - len(names)
        create = missing[: max(0, room)]
        removals.update(
            _scale_down_old(spec, old, numbers, number, len(names) + len(create),
                            len(in_range) + len(create), new_available, old_available,
                            available)
        )  # fmt: skip

    complete = (
        bool(target)
        and len(in_range) == replicas
        and new_available == replicas
        and not old
        and not surplus
    )
    if state == PROGRESSING and (complete or (before.state == COMPLETE and not started)):
        # complete, or a complete rollout healing or scaling its pods: no deadline applies
        # any more (as a Deployment whose Progressing reason is NewReplicaSetAvailable)
        state = COMPLETE
    signature = (len(in_range), new_available, len(old))
    resumed = before.state == PAUSED and state == PROGRESSING
    if started or resumed or not before.target:
        progress, progress_at = signature, now
    else:
        best = before.progress
        improved = signature[0] > best[0] or signature[1] > best[1] or signature[2] < best[2]
        progress = (
            max(best[0], signature[0]),
            max(best[1], signature[1]),
            min(best[2], signature[2]),
        )
        progress_at = now if improved else before.progress_at

    failure = None
    stalled = state == PROGRESSING and now - progress_at > spec.deadline
    if stalled and target == spec.template_hash:
        failure = Failure(
            hash=target,
            number=number,
            reason=failure_reason(spec, list(in_range.values()), error),
            at=now,
            source=str(spec.source),
        )
        failed = failure

    if complete:
        revisions = [
            dataclasses.replace(r, complete=True) if r.hash == target else r for r in revisions
        ]
    last_good = target if complete else before.last_good
    keep = {target, last_good, *(p.template_hash for p in pods)}
    if failed is not None:
        keep.add(failed.hash)
    if pin is not None:
        keep.add(pin.hash)
    memory = RolloutMemory(
        revisions=_history(revisions, keep, spec.history_limit),
        target=target,
        last_good=last_good,
        failed=failed,
        pin=pin,
        restarted_at=before.restarted_at,
        manifest=spec.template_hash,
        state=state,
        started=now if started else before.started,
        progress_at=progress_at,
        progress=progress,
        ready_since=ready_since,
        last_error=error if state == PROGRESSING else "",
        spec=spec.summary(),
        created=before.created or now,
        generation=before.generation,
    )
    decision = _decision(spec, target, number, pods, create, removals, templates, in_range, old)
    ready = sum(1 for p in pods if p.ready)
    status = RolloutStatus(
        ref=ref,
        source=str(spec.source),
        state=state,
        revision=number,
        template_hash=target,
        replicas=replicas,
        updated=len(in_range),
        ready=ready,
        available=new_available + old_available,
        total=len(names),
        message="",
        failure=failed,
        stalled=stalled and failure is None,
    )
    status = dataclasses.replace(status, message=status_message(status))
    return Step(
        ref=ref,
        spec=spec,
        decision=decision,
        memory=memory,
        status=status,
        changed=not memory.same_as(before),
        failure=failure,
        completed=complete and (before.state != COMPLETE or started),
        started=started,
    )


def _scale_down_old(
    spec: DeploymentSpec,
    old: Mapping[str, ObservedPod],
    numbers: Mapping[str, int],
    number: int,
    all_pods: int,
    new_pods: int,
    new_available: int,
    old_available: int,
    available: Callable[[ObservedPod], bool],
) -> dict[str, str]:
    """The old pods that may go now (``reconcileOldReplicaSets``): at most
    ``all_pods - minAvailable - new pods not yet available``, unavailable ones first, and
    available ones only while ``minAvailable`` stay available."""
    min_available = spec.replicas - spec.max_unavailable
    max_scaled_down = all_pods - min_available - (new_pods - new_available)
    if max_scaled_down <= 0:
        return {}
    ordered = sorted(old.values(), key=lambda p: _removal_order(p, numbers))
    unhealthy = [p for p in ordered if not available(p)][:max_scaled_down]
    budget = max_scaled_down - len(unhealthy)
    healthy_count = max(0, min(new_available + old_available - min_available, budget))
    healthy = [p for p in ordered if available(p)][:healthy_count]
    removals = {}
    for pod in unhealthy:
        removals[pod.name] = (
            f"rollout of revision {number}: pod of revision "
            f"{numbers.get(pod.template_hash, '?')} is not available ({pod.problem or 'not ready'})"
        )
    for pod in healthy:
        removals[pod.name] = (
            f"rollout of revision {number}: replaces a pod of revision "
            f"{numbers.get(pod.template_hash, '?')} ({new_available + old_available} available, "
            f"at least {min_available} stay: maxUnavailable {spec.unavailable_text})"
        )
    return removals


def _decision(
    spec: DeploymentSpec,
    target: str,
    number: int,
    pods: Sequence[ObservedPod],
    create: Sequence[int],
    removals: Mapping[str, str],
    templates: Mapping[str, Mapping[str, Any]],
    in_range: Mapping[str, ObservedPod],
    old: Mapping[str, ObservedPod],
) -> RolloutDecision:
    """The pods the step wants: those it keeps and those it makes."""
    replicas, name = spec.replicas, spec.ref.name
    wanted: list[WantedPod] = []
    kept: list[str] = []
    for pod in sorted({p.name: p for p in pods}.values(), key=lambda p: p.name):
        if pod.name in removals:
            continue
        if pod.template_hash in templates:
            wanted.append(WantedPod(pod.name, pod.template_hash, pod.ordinal))
        else:
            kept.append(pod.name)
    for ordinal in create:
        if old:
            limit = replicas + spec.max_surge
            why = (
                f"rollout of revision {number} ({target}): new pod {len(in_range) + 1} "
                f"of {replicas} (maxSurge {spec.surge_text}: at most {limit} pods)"
                if spec.strategy == "RollingUpdate"
                else f"rollout of revision {number} ({target})"
            )
        elif in_range:
            why = f"Deployment {name} wants {replicas} pod(s), {len(in_range)} exist"
        else:
            why = f"rollout of revision {number} ({target}): new pod of {replicas}"
        wanted.append(WantedPod(pod_name(name, target, ordinal), target, ordinal, why))
    used = {p.template_hash for p in wanted}
    return RolloutDecision(
        pods=tuple(wanted),
        templates={h: t for h, t in templates.items() if h in used},
        kept=tuple(kept),
        removals=dict(removals),
    )


def with_details(result: Step, details: str) -> Step:
    """``result`` whose failure reason says what the hosts tell about the new pods (the
    probe's last output, exit codes), gathered by the edge once the failure is decided."""
    failure = result.failure
    if failure is None or not details:
        return result
    new_pods: list[ObservedPod] = []
    better = dataclasses.replace(
        failure,
        reason=failure_reason(result.spec, new_pods, result.memory.last_error or "", details),
    )
    memory = dataclasses.replace(result.memory, failed=better)
    status = dataclasses.replace(result.status, failure=better)
    status = dataclasses.replace(status, message=status_message(status))
    return dataclasses.replace(result, failure=better, memory=memory, status=status)
