"""What a Deployment's rollout remembers between passes, and how that memory is carried. Pure.

A rollout is decided pass by pass from what runs (``plan.rollout``), but some of it cannot
be seen in what runs: the templates of earlier revisions (for a rollback), which revision
was last fully available, which one failed and why, when the rollout last made progress
(its deadline), since when each pod is ready (``minReadySeconds``), and the choices of
``rollout undo`` and ``rollout restart``. That is a :class:`RolloutMemory`.

It must survive a restart of the reconciler, and be shared by several reconcilers that
share nothing but the hosts, so it lives on the hosts: a never-started marker container per
Deployment on every host, labelled with the memory as canonical JSON and a generation
counter (``engine.rollout_markers``). A write creates the next generation's
marker before it removes the older ones, so a reader never finds none; readers take the
highest generation found on any host (:func:`read_memories`). The state file of
``apply.state`` is per machine, so it is not used for this.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import HostState, ObjectRef


@dataclass(frozen=True, slots=True)
class Revision:
    """One revision of the pod template: its number (1, 2, ... as ``rollout history`` shows
    them), the template itself (what a rollback runs again), and where it came from."""

    number: int
    hash: str
    template: Mapping[str, Any]
    created: float
    source: str = ""  # the manifest's file:line
    commit: str = ""  # the source revision (git commit) it was first seen in
    complete: bool = False  # it was fully available at least once


@dataclass(frozen=True, slots=True)
class Failure:
    """A rollout that made no progress within its deadline: which revision, and why."""

    hash: str
    number: int
    reason: str
    at: float
    source: str = ""


@dataclass(frozen=True, slots=True)
class Pin:
    """``rollout undo``: run revision ``hash`` instead of the manifest's template, for as
    long as the manifest's template is ``manifest`` (a new commit wins)."""

    hash: str
    manifest: str


@dataclass(frozen=True, slots=True)
class RolloutMemory:
    """Everything a rollout keeps between passes (see the module's docstring)."""

    revisions: tuple[Revision, ...] = ()
    target: str = ""  # the revision being rolled out, or running when complete
    last_good: str = ""  # the last revision that was fully available
    failed: Failure | None = None  # the manifest's template failed: not tried again
    pin: Pin | None = None
    restarted_at: float = 0.0  # `rollout restart`: part of the template hash
    manifest: str = ""  # the manifest's template hash, as of the last pass
    state: str = ""  # progressing, complete, paused, failed (see plan.rollout)
    started: float = 0.0  # when the rollout to ``target`` began
    progress_at: float = 0.0  # when it last made progress
    #: the best seen so far: (new pods, new pods available, old pods left)
    progress: tuple[int, int, int] = (0, 0, 0)
    ready_since: Mapping[str, float] = field(default_factory=dict)  # infra id -> time
    last_error: str = ""  # the last failed action on one of its pods (an image pull...)
    spec: Mapping[str, Any] = field(default_factory=dict)  # DeploymentSpec.summary()
    created: float = 0.0
    generation: int = 0  # how many times it was written

    def revision(self, hash_: str) -> Revision | None:
        return next((r for r in self.revisions if r.hash == hash_), None)

    def number(self, hash_: str) -> int:
        found = self.revision(hash_)
        return found.number if found is not None else 0

    @property
    def latest(self) -> int:
        return max((r.number for r in self.revisions), default=0)

    def same_as(self, other: RolloutMemory | None) -> bool:
        """Equal but for the generation: nothing new to write."""
        if other is None:
            return False
        return dataclasses.replace(self, generation=0) == dataclasses.replace(other, generation=0)


def encode(memory: RolloutMemory) -> str:
    """The label text: canonical JSON (equal memories give equal text)."""
    return L.canonical_json(dataclasses.asdict(memory))


def _revision(data: Mapping[str, Any]) -> Revision:
    return Revision(
        number=int(data["number"]),
        hash=str(data["hash"]),
        template=dict(data.get("template") or {}),
        created=float(data.get("created") or 0.0),
        source=str(data.get("source") or ""),
        commit=str(data.get("commit") or ""),
        complete=bool(data.get("complete")),
    )


def decode(text: str) -> RolloutMemory | None:
    """The memory in a marker's label, or None when it cannot be read (an older or foreign
    format is forgotten, never fatal: the rollout starts from what runs)."""
    try:
        data = json.loads(text)
        failed = data.get("failed")
        pin = data.get("pin")
        progress = [int(n) for n in data.get("progress") or (0, 0, 0)]
        return RolloutMemory(
            revisions=tuple(_revision(r) for r in data.get("revisions") or ()),
            target=str(data.get("target") or ""),
            last_good=str(data.get("last_good") or ""),
            failed=Failure(**failed) if isinstance(failed, dict) else None,
            pin=Pin(**pin) if isinstance(pin, dict) else None,
            restarted_at=float(data.get("restarted_at") or 0.0),
            manifest=str(data.get("manifest") or ""),
            state=str(data.get("state") or ""),
            started=float(data.get("started") or 0.0),
            progress_at=float(data.get("progress_at") or 0.0),
            progress=(progress[0], progress[1], progress[2]),
            ready_since={str(k): float(v) for k, v in dict(data.get("ready_since") or {}).items()},
            last_error=str(data.get("last_error") or ""),
            spec=dict(data.get("spec") or {}),
            created=float(data.get("created") or 0.0),
            generation=int(data.get("generation") or 0),
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def marker_owner(labels: Mapping[str, str]) -> ObjectRef:
    return ObjectRef("Deployment", labels.get(L.OWNER_NAMESPACE, ""), labels.get(L.OWNER_NAME, ""))


def read_memories(live: Mapping[str, HostState]) -> dict[ObjectRef, RolloutMemory]:
    """Each Deployment's memory: the highest generation found on any reachable host."""
    found: dict[ObjectRef, RolloutMemory] = {}
    for host in sorted(live):
        state = live[host]
        if not state.reachable:
            continue
        for marker in state.rollouts:
            memory = decode(marker.labels.get(L.ROLLOUT, ""))
            if memory is None:
                continue
            ref = marker_owner(marker.labels)
            best = found.get(ref)
            if best is None or memory.generation > best.generation:
                found[ref] = memory
    return found


def marker_generations(live: Mapping[str, HostState]) -> dict[ObjectRef, dict[str, int]]:
    """Per Deployment, the generation each reachable host holds: which hosts are behind."""
    result: dict[ObjectRef, dict[str, int]] = {}
    for host, state in live.items():
        if not state.reachable:
            continue
        for marker in state.rollouts:
            memory = decode(marker.labels.get(L.ROLLOUT, ""))
            generation = memory.generation if memory is not None else -1
            held = result.setdefault(marker_owner(marker.labels), {})
            held[host] = max(held.get(host, -1), generation)
    return result


#: how far ahead of any pass in flight a command's write goes: a pass that read the memory
#: before ``rollout undo`` wrote it would otherwise write the same generation over it
COMMAND_GENERATION_STEP = 10


def undo(memory: RolloutMemory, to_revision: int = 0) -> tuple[RolloutMemory, Revision]:
    """``rollout undo``: run an earlier revision instead of the manifest's template, until
    that template changes. Default: the revision before the current one. ``ValueError``
    with the reason when there is none to go back to."""
    current = memory.number(memory.target)
    kept = sorted(memory.revisions, key=lambda r: r.number)
    if to_revision:
        chosen = next((r for r in kept if r.number == to_revision), None)
        if chosen is None:
            known = ", ".join(str(r.number) for r in kept) or "none"
            raise ValueError(f"no revision {to_revision} in the history (kept: {known})")
    else:
        failed = memory.failed.hash if memory.failed is not None else ""
        earlier = [r for r in kept if r.number < current and r.hash != failed]
        if not earlier:
            raise ValueError(f"no revision before the current one ({current}) to go back to")
        chosen = earlier[-1]
    if chosen.hash == memory.target:
        raise ValueError(f"revision {chosen.number} is already the current one")
    pinned = dataclasses.replace(
        memory,
        pin=Pin(chosen.hash, memory.manifest),
        generation=memory.generation + COMMAND_GENERATION_STEP,
    )
    return pinned, chosen


def restart(memory: RolloutMemory, now: float) -> RolloutMemory:
    """``rollout restart``: every pod is replaced (the restart time is part of the template
    hash, as kubectl's restartedAt annotation), and a failed template is tried again."""
    return dataclasses.replace(
        memory,
        restarted_at=round(now, 3),
        pin=None,
        generation=memory.generation + COMMAND_GENERATION_STEP,
    )
