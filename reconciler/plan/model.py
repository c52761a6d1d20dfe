"""The plan as a value: actions, each with its verb, host, object, reason and the group it runs
in, plus what kept the plan from being complete. Pure.

Sequencing: every action belongs to a ``group``. Actions of one group run one after the
other; groups run concurrently (``apply.execute``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.core.model import (
    DesiredPod,
    Diagnostic,
    LiveContainer,
    LiveVolume,
    Location,
    ObjectRef,
    Restart,
)
from reconciler.plan.rollouts import Rollouts


class Verb(StrEnum):
    CREATE = "create"
    START = "start"
    RECREATE = "recreate"
    REMOVE = "remove"
    RESTART = "restart"  # a failed container replaced by a new instance (probes, init)
    STOP = "stop"  # a failed container stopped for good (restartPolicy Never)
    RELOAD = "reload"  # a forwarder given new endpoints in place


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs between what runs and what is wanted."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan. ``container`` is empty when the action concerns the whole pod."""

    verb: Verb
    host: str
    owner: ObjectRef
    pod: str
    reason: str
    container: str = ""
    group: str = ""
    source: Location | None = None
    desired: DesiredPod | None = None
    live: tuple[LiveContainer, ...] = ()
    changes: tuple[FieldChange, ...] = ()
    prune: bool = False  # a removal because the object is no longer wanted at all
    restart: Restart | None = None  # RESTART: the count and back-off of the new instance

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    def as_dict(self) -> dict[str, str]:
        return {
            "host": self.host,
            "action": self.verb.value,
            "kind": self.owner.kind,
            "namespace": self.owner.namespace,
            "name": self.owner.name,
            "pod": self.pod,
            "container": self.container,
            "reason": self.reason,
        }


@dataclass
class Plan:
    """Actions in a stable order, plus what kept the plan from being complete."""

    actions: list[Action] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # host -> error
    owned_pods: dict[str, int] = field(default_factory=dict)  # host -> pods we own there
    skipped_prunes: list[Action] = field(default_factory=list)  # with --no-prune
    #: epoch seconds when a held restart (CrashLoopBackOff) may go ahead: a pass is due then
    wake_at: float | None = None
    #: claims' volumes whose claim left the manifests: kept and reported (``plan.volumes``)
    orphaned_volumes: list[LiveVolume] = field(default_factory=list)
    prune_volumes: bool = False  # --prune-volumes: remove them
    #: each Deployment's rollout step (``plan.rollout``): its status, the memory to write
    rollouts: Rollouts = field(default_factory=Rollouts)

    @property
    def in_sync(self) -> bool:
        """Nothing to do: no action, no error, every host answering, and no rollout under
        way (one waiting for pods to become ready has nothing to do yet, but is not done)."""
        errors = any(d.is_error for d in self.problems)
        volumes = self.prune_volumes and self.orphaned_volumes
        rolling = self.rollouts.in_progress
        return (
            not self.actions and not errors and not self.unreachable and not volumes and not rolling
        )

    def split_forwarders(self) -> tuple[Plan, Plan]:
        """(everything but Service forwarders, only the forwarders), problems kept on the first."""
        workload = [a for a in self.actions if a.owner.kind != "Service"]
        forwarders = [a for a in self.actions if a.owner.kind == "Service"]
        first = Plan(
            actions=workload,
            problems=self.problems,
            unreachable=self.unreachable,
            owned_pods=self.owned_pods,
            skipped_prunes=self.skipped_prunes,
            rollouts=self.rollouts,
            wake_at=self.wake_at,
        )
        return first, Plan(actions=forwarders, owned_pods=self.owned_pods)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.verb.value] = counts.get(action.verb.value, 0) + 1
        return counts

    def prunes_by_host(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for action in self.actions:
            if action.prune and action.owner.kind != "Service":
                counts[action.host] += 1
        return dict(counts)
