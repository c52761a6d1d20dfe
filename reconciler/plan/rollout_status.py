"""Where a Deployment's rollout stands, in values and in words: its state, its counts, the
failure of its template, and the lines ``apply``, ``rollout status`` and ``/status`` show.
Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.core.model import ObjectRef
from reconciler.plan.rollout_memory import Failure

if TYPE_CHECKING:
    from reconciler.desire.deployments import DeploymentSpec
    from reconciler.plan.rollout import ObservedPod

PROGRESSING, COMPLETE, PAUSED, FAILED = "progressing", "complete", "paused", "failed"


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """Where a Deployment's rollout stands: what ``get deployments``, ``rollout status``,
    ``/status`` and ``apply`` show."""

    ref: ObjectRef
    source: str
    state: str  # progressing, complete, paused, failed
    revision: int
    template_hash: str
    replicas: int
    updated: int  # pods of the target revision
    ready: int
    available: int
    total: int
    message: str
    failure: Failure | None = None  # the manifest's template failed (and stays marked)
    stalled: bool = False  # a rollback or undo past its deadline (reported, retried)

    @property
    def in_progress(self) -> bool:
        return self.state == PROGRESSING


def failure_reason(
    spec: DeploymentSpec, new_pods: Sequence[ObservedPod], error: str, details: str = ""
) -> str:
    """Why a rollout failed: its deadline, the last failed action, and what its new pods
    say (``details``, from the hosts: probe output, exit codes; else the list call's)."""
    head = f"no progress for {spec.deadline}s (progressDeadlineSeconds)"
    parts = [error] if error else []
    if details:
        parts.append(details)
    else:
        parts += [f"pod {p.name}: {p.problem}" for p in new_pods if p.problem][:3]
        waiting = [p.name for p in new_pods if p.ready]
        if waiting and spec.min_ready:
            parts.append(
                f"{len(waiting)} new pod(s) ready but not for minReadySeconds "
                f"({spec.min_ready}s) without interruption"
            )
    if not parts:
        parts.append("no new pod could be made available")
    return f"{head}: " + "; ".join(parts)


def status_message(status: RolloutStatus) -> str:
    """One line for people: what the rollout is doing, or did."""
    name = f"Deployment {status.ref.name}"
    counts = (
        f"{status.updated} of {status.replicas} updated, {status.available} available, "
        f"{status.total} pod(s)"
    )
    failure = status.failure
    if failure is not None:
        if status.state == FAILED:
            return (
                f"{name}: revision {failure.number} failed: {failure.reason}; no earlier "
                "revision was ever fully available"
            )
        failed = f"revision {failure.number} failed"
        if status.state == COMPLETE:
            return f"{name}: {failed}; running revision {status.revision} ({counts})"
        return f"{name}: {failed}; rolling back to revision {status.revision}: {counts}"
    if status.state == COMPLETE:
        return f"{name}: revision {status.revision} rolled out ({status.replicas} available)"
    if status.state == PAUSED:
        return f"{name}: paused ({counts})"
    stalled = " (stalled: past progressDeadlineSeconds)" if status.stalled else ""
    return f"{name}: rolling out revision {status.revision}: {counts}{stalled}"
