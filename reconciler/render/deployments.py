"""Deployments and their rollouts for people and tools: the lines ``apply`` and ``diff``
print, the rows of ``get deployments`` and ``rollout history``, and kubectl-shaped
``apps/v1`` Deployment objects for ``get deployments -o json|yaml``. Pure.

A Deployment's view is read from the hosts: its rollout memory (``plan.rollout_memory``:
the spec as last applied, its revisions, failure) and its live pods; with the manifests at
hand (``--source``) the step's status says the same from the desired side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.model import HostState, ObjectRef
from reconciler.core.redact import mask_env
from reconciler.desire.deployments import label_selector
from reconciler.plan.rollout import ObservedPod
from reconciler.plan.rollout_memory import RolloutMemory, read_memories
from reconciler.plan.rollout_status import COMPLETE, FAILED, PAUSED, RolloutStatus
from reconciler.plan.rollouts import Rollouts, observed_pods
from reconciler.render.objects import SOURCE_ANNOTATION, condition, metadata, timestamp
from reconciler.render.views import age

#: the annotation kubectl users know (the reconciler's source annotation is render.objects')
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def _name(ref: ObjectRef) -> str:
    return ref.name if ref.namespace == "default" else f"{ref.namespace}/{ref.name}"


# -- apply and diff ---------------------------------------------------------------------------
def rollout_lines(rollouts: Rollouts) -> list[tuple[str, str]]:
    """(text, style) per Deployment: what its rollout is doing."""
    lines = []
    for ref in sorted(rollouts.steps):
        status = rollouts.steps[ref].status
        style = "green" if status.state == COMPLETE else "cyan"
        if status.failure is not None or status.stalled:
            style = "bold red"
        lines.append((f"rollout {status.message}", style))
    return lines


def rollout_dicts(rollouts: Rollouts) -> list[dict[str, Any]]:
    """``diff -o json``'s ``rollouts``: one entry per Deployment."""
    result = []
    for ref in sorted(rollouts.steps):
        s = rollouts.steps[ref].status
        result.append(
            {
                "namespace": ref.namespace,
                "name": ref.name,
                "state": s.state,
                "revision": s.revision,
                "templateHash": s.template_hash,
                "replicas": s.replicas,
                "updated": s.updated,
                "ready": s.ready,
                "available": s.available,
                "message": s.message,
                "failed": s.failure is not None,
                "source": s.source,
            }
        )
    return result


def failure_line(status: RolloutStatus) -> str:
    """The one line that says a rollout failed: object, revision, manifest, reason, and
    what runs instead."""
    failure = status.failure
    assert failure is not None
    instead = "no earlier revision to roll back to"
    if status.state == COMPLETE:
        instead = f"rolled back to revision {status.revision}"
    elif status.state != FAILED:
        instead = f"rolling back to revision {status.revision}"
    return (
        f"rollout of Deployment/{_name(status.ref)} FAILED: revision {failure.number} "
        f"({failure.hash}) at {failure.source or status.source}: {failure.reason}; {instead}"
    )


# -- what the hosts say -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeploymentView:
    """One Deployment as the hosts show it: its memory and its live pods."""

    ref: ObjectRef
    memory: RolloutMemory
    pods: tuple[ObservedPod, ...]
    now: float

    @property
    def replicas(self) -> int:
        return int(self.memory.spec.get("replicas", 0))

    @property
    def min_ready(self) -> int:
        return int(self.memory.spec.get("minReadySeconds", 0))

    def available(self, pod: ObservedPod) -> bool:
        since = self.memory.ready_since.get(pod.instance)
        return pod.ready and since is not None and self.now - since >= self.min_ready

    @property
    def counts(self) -> dict[str, int]:
        updated = [p for p in self.pods if p.template_hash == self.memory.target]
        return {
            "replicas": len({p.name for p in self.pods}),
            "updated": len({p.name for p in updated}),
            "ready": len({p.name for p in self.pods if p.ready}),
            "available": len({p.name for p in self.pods if self.available(p)}),
        }

    @property
    def state(self) -> str:
        return self.memory.state


def deployment_views(states: Mapping[str, HostState], now: float) -> list[DeploymentView]:
    """Every Deployment whose rollout memory is on a reachable host."""
    return [
        DeploymentView(ref, memory, tuple(observed_pods(ref, states)), now)
        for ref, memory in sorted(read_memories(states).items())
    ]


def deployment_rows(views: Iterable[DeploymentView], wide: bool) -> list[dict[str, Any]]:
    """``get deployments``: NAME READY UP-TO-DATE AVAILABLE AGE, as kubectl's."""
    rows = []
    for view in views:
        counts = view.counts
        row: dict[str, Any] = {
            "NAME": _name(view.ref),
            "READY": f"{counts['ready']}/{view.replicas}",
            "UP-TO-DATE": counts["updated"],
            "AVAILABLE": counts["available"],
            "AGE": age(int(view.memory.created), view.now),
        }
        if wide:
            current = view.memory.revision(view.memory.target)
            template = current.template if current is not None else {}
            containers = _containers(template)
            row["CONTAINERS"] = ",".join(str(c.get("name", "")) for c in containers)
            row["IMAGES"] = ",".join(str(c.get("image", "")) for c in containers)
            row["SELECTOR"] = str(label_selector(view.memory.spec.get("selector") or {}))
            row["REVISION"] = view.memory.number(view.memory.target)
            row["STATUS"] = _state_text(view)
        rows.append(row)
    return rows


def _state_text(view: DeploymentView) -> str:
    failed = view.memory.failed
    if failed is not None:
        return f"revision {failed.number} failed"
    return {COMPLETE: "complete", PAUSED: "paused", FAILED: "failed"}.get(view.state, "progressing")


def _containers(template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = template.get("spec") if isinstance(template, Mapping) else None
    found = spec.get("containers") if isinstance(spec, Mapping) else None
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


def history_rows(memory: RolloutMemory, now: float) -> list[dict[str, Any]]:
    """``rollout history``: one row per revision kept, oldest first."""
    rows = []
    for revision in sorted(memory.revisions, key=lambda r: r.number):
        status = "complete" if revision.complete else ""
        if memory.failed is not None and memory.failed.hash == revision.hash:
            status = "failed"
        if revision.hash == memory.target:
            status = (status + ", " if status else "") + "current"
        rows.append(
            {
                "REVISION": revision.number,
                "HASH": revision.hash,
                "STATUS": status,
                "AGE": age(int(revision.created), now),
                "COMMIT": revision.commit[:12],
                "CHANGE-CAUSE": change_cause(revision.template),
            }
        )
    return rows


def change_cause(template: Mapping[str, Any]) -> str:
    """What a revision runs, in a few words: its containers' images."""
    containers = _containers(template)
    return ",".join(f"{c.get('name')}={c.get('image')}" for c in containers)


def template_text(template: Mapping[str, Any]) -> str:
    """A revision's template as JSON, secret-looking env values masked."""

    def masked(value: Any) -> Any:
        if isinstance(value, dict):
            if "name" in value and "value" in value and len(value) <= 3:
                return {**value, "value": mask_env(str(value["name"]), value["value"])}
            return {k: masked(v) for k, v in value.items()}
        if isinstance(value, list):
            return [masked(v) for v in value]
        return value

    return json.dumps(masked(dict(template)), indent=2, sort_keys=True)


# -- kubectl-shaped objects (the shapes of ``render.objects``) ---------------------------------
def _condition(kind: str, true: bool, reason: str, message: str, at: float) -> dict[str, Any]:
    """A Deployment's condition: ``render.objects.condition`` with the message and times
    the deployment controller adds."""
    result: dict[str, Any] = {**condition(kind, true, reason), "message": message}
    if at:
        result["lastUpdateTime"] = result["lastTransitionTime"] = timestamp(at)
    return result


def conditions(view: DeploymentView) -> list[dict[str, Any]]:
    """``Available`` and ``Progressing``, with the reasons the deployment controller uses."""
    memory, counts = view.memory, view.counts
    strategy = memory.spec.get("strategy") or {}
    unavailable = 0
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        written = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
        text = str(written)
        unavailable = (
            view.replicas * int(text[:-1]) // 100 if text.endswith("%") else int(text or 0)
        )
    minimum = counts["available"] >= view.replicas - unavailable
    available = _condition(
        "Available",
        minimum,
        "MinimumReplicasAvailable" if minimum else "MinimumReplicasUnavailable",
        "Deployment has minimum availability."
        if minimum
        else "Deployment does not have minimum availability.",
        memory.progress_at,
    )
    number = memory.number(memory.target)
    if memory.failed is not None:
        progressing = _condition(
            "Progressing",
            False,
            "ProgressDeadlineExceeded",
            f"revision {memory.failed.number} has timed out progressing: {memory.failed.reason}",
            memory.failed.at,
        )
    elif view.state == PAUSED:
        progressing = _condition(
            "Progressing", False, "DeploymentPaused", "Deployment is paused", memory.progress_at
        )
    elif view.state == COMPLETE:
        progressing = _condition(
            "Progressing",
            True,
            "NewReplicaSetAvailable",
            f"revision {number} ({memory.target}) has successfully progressed.",
            memory.progress_at,
        )
    else:
        progressing = _condition(
            "Progressing",
            True,
            "ReplicaSetUpdated",
            f"revision {number} ({memory.target}) is progressing.",
            memory.progress_at,
        )
    return [available, progressing]


def deployment_object(view: DeploymentView) -> dict[str, Any]:
    """An ``apps/v1`` Deployment as ``kubectl get deployment -o json`` shows one."""
    memory, counts = view.memory, view.counts
    spec = dict(memory.spec)
    current = memory.revision(memory.target)
    template = dict(current.template) if current is not None else {}
    number = memory.number(memory.target)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **metadata(
                view.ref.name,
                view.ref.namespace,
                memory.spec.get("labels") or None,
                {
                    REVISION_ANNOTATION: str(number),
                    SOURCE_ANNOTATION: str(spec.get("source", "")),
                },
                memory.created,
            ),
            "generation": memory.generation,
        },
        "spec": {
            "replicas": view.replicas,
            "selector": spec.get("selector", {}),
            "template": template,
            "strategy": spec.get("strategy", {}),
            "minReadySeconds": spec.get("minReadySeconds", 0),
            "progressDeadlineSeconds": spec.get("progressDeadlineSeconds", 600),
            "revisionHistoryLimit": spec.get("revisionHistoryLimit", 10),
            "paused": bool(spec.get("paused", False)),
        },
        "status": {
            "observedGeneration": memory.generation,
            "replicas": counts["replicas"],
            "updatedReplicas": counts["updated"],
            "readyReplicas": counts["ready"],
            "availableReplicas": counts["available"],
            "unavailableReplicas": max(0, view.replicas - counts["available"]),
            "conditions": conditions(view),
        },
    }
