"""Every Deployment's rollout in one pass: their live pods observed (with ``pod_ready``),
their memories read from the hosts' markers, one :func:`plan.rollout.step` each, and where
each memory must be written. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.core import labels as L
from reconciler.core.model import HostState, LiveContainer, Manifest, ObjectRef
from reconciler.desire.deployments import deployment_spec
from reconciler.desire.settings import Settings
from reconciler.plan.live import exit_code, group_pods, owner_of, pod_ready
from reconciler.plan.rollout import ObservedPod, Step, step
from reconciler.plan.rollout_memory import marker_generations, read_memories

# -- observing ----------------------------------------------------------------------------
_NAME = re.compile(r"^(?P<deployment>.+)-(?P<hash>[0-9a-f]+)-(?P<ordinal>\d+)$")


def _problem(containers: Sequence[LiveContainer]) -> str:
    """Why a pod is not ready, from what the list call shows."""
    for c in containers:
        if c.running:
            continue
        name = c.labels.get(L.CONTAINER, c.name)
        code = exit_code(c)
        last = f", exit code {code}" if code is not None else ""
        return f"container {name} is {c.state}{last} ({c.status})"
    return "not ready" if containers else "gone"


def observed_pods(ref: ObjectRef, live: Mapping[str, HostState]) -> list[ObservedPod]:
    """The live pods of Deployment ``ref`` on every reachable host."""
    result = []
    for host in sorted(live):
        state = live[host]
        if not state.reachable:
            continue
        for (_, name), containers in group_pods(state.containers).items():
            if owner_of(containers) != ref:
                continue
            labels = containers[0].labels
            parsed = _NAME.match(name)
            hash_ = labels.get(L.TEMPLATE_HASH) or (parsed["hash"] if parsed else "")
            ordinal = labels.get(L.REPLICA) or (parsed["ordinal"] if parsed else "0")
            infra = next((c for c in containers if c.labels.get(L.ROLE) == L.ROLE_INFRA), None)
            ready = pod_ready(containers)
            result.append(
                ObservedPod(
                    name=name,
                    host=host,
                    template_hash=hash_,
                    ordinal=int(ordinal) if str(ordinal).isdigit() else 0,
                    instance=infra.id if infra is not None else containers[0].id,
                    ready=ready,
                    created=min(c.created for c in containers),
                    problem="" if ready else _problem(containers),
                )
            )
    return result


# -- every Deployment of a pass -------------------------------------------------------------
@dataclass
class Rollouts:
    """The rollouts of one pass: a step per Deployment, the hosts each one's memory must be
    written to (all when it changed; a host that lacks the latest generation gets a copy),
    and the Deployments that left the manifests (their markers go, with ``prune``)."""

    steps: dict[ObjectRef, Step] = field(default_factory=dict)
    writes: dict[ObjectRef, tuple[str, ...]] = field(default_factory=dict)
    forget: list[ObjectRef] = field(default_factory=list)

    @property
    def in_progress(self) -> bool:
        return any(s.status.in_progress for s in self.steps.values())

    @property
    def failures(self) -> list[Step]:
        """The steps whose Deployment's manifest template is marked failed."""
        return [s for s in self.steps.values() if s.status.failure is not None]


def plan_rollouts(
    manifests: Iterable[Manifest],
    live: Mapping[str, HostState],
    settings: Settings,
    *,
    multi_host: bool,
    now: float,
    errors: Mapping[ObjectRef, str] | None = None,
    commit: str = "",
) -> Rollouts:
    """A step for every Deployment of the manifests (see :class:`Rollouts`)."""
    memories = read_memories(live)
    held = marker_generations(live)
    reachable = sorted(h for h, state in live.items() if state.reachable)
    result = Rollouts()
    for manifest in manifests:
        if manifest.kind != "Deployment":
            continue
        ref = manifest.ref
        memory = memories.get(ref)
        restarted = memory.restarted_at if memory is not None else 0.0
        spec = deployment_spec(manifest, settings, multi_host, restarted)
        pods = observed_pods(ref, live)
        done = step(spec, pods, memory, now, error=(errors or {}).get(ref, ""), commit=commit)
        result.steps[ref] = done
        generation = done.memory.generation
        hosts = (
            reachable
            if done.changed
            else [h for h in reachable if held.get(ref, {}).get(h, -1) < generation]
        )
        if hosts:
            result.writes[ref] = tuple(hosts)
    result.forget = sorted(ref for ref in memories if ref not in result.steps)
    return result
