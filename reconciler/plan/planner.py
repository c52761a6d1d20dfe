"""``plan(desired, live) -> Plan``: the actions that close the gap, each with its reason. Pure.

Drift is found by the spec-hash label (docker-compose's config-hash idea), so a no-op pass
needs nothing but the one list call per host. Actions come in a stable order: by host, then
namespace and pod name, then container.

Sequencing: every action belongs to a ``group``. Actions of one group run one after the
other; groups run concurrently. A ReplicationController whose template changed gets one
rollout group, so its pods are replaced one at a time and the next only after the new one
runs: the controller never drops below replicas - 1.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import (
    DesiredPod,
    Diagnostic,
    HostState,
    LiveContainer,
    Location,
    ObjectRef,
)
from reconciler.desire.compute import DesiredState

_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")
SECRET_MARKERS = ("PASSWORD", "TOKEN", "SECRET", "KEY")
MASK = "******"


class Verb(StrEnum):
    CREATE = "create"
    START = "start"
    RECREATE = "recreate"
    REMOVE = "remove"


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

    @property
    def in_sync(self) -> bool:
        errors = any(d.is_error for d in self.problems)
        return not self.actions and not errors and not self.unreachable

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

    def mass_prune_hosts(self, max_prune: int) -> dict[str, str]:
        """Hosts where this plan would remove everything we own there, or too much."""
        refused: dict[str, str] = {}
        for host, count in self.prunes_by_host().items():
            owned = self.owned_pods.get(host, 0)
            if count >= owned > 0:
                refused[host] = f"would remove all {owned} pod(s) owned on host {host}"
            elif count > max_prune:
                refused[host] = (
                    f"would remove {count} pods on host {host}, more than --max-prune {max_prune}"
                )
        return refused


def exit_code(container: LiveContainer) -> int | None:
    if container.exit_code is not None:
        return container.exit_code
    match = _EXIT_CODE.search(container.status)
    return int(match[1]) if match else None


def should_restart(policy: str, container: LiveContainer) -> bool:
    """Kubernetes' restartPolicy applied to a container that is not running."""
    if container.state in ("running", "restarting"):
        return False
    if policy == "Always":
        return True
    if policy == "OnFailure":
        code = exit_code(container)
        return container.state == "created" or code is None or code != 0
    return container.state == "created"  # Never: only start what never ran


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def _env_map(container: Mapping[str, Any]) -> dict[str, str]:
    return {str(e.get("name")): str(e.get("value")) for e in container.get("env", [])}


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = value


def field_changes(
    old_spec: Mapping[str, Any] | None, new_spec: Mapping[str, Any]
) -> tuple[FieldChange, ...]:
    """Which fields differ, by path; containers matched by name and env by variable name."""
    if not old_spec:
        return (FieldChange("spec", "(unknown: created by another version)", "(new spec)"),)
    changes: list[FieldChange] = []
    old_containers = {c.get("name"): c for c in old_spec.get("containers", [])}
    new_containers = {c.get("name"): c for c in new_spec.get("containers", [])}
    for name in sorted(set(old_containers) | set(new_containers), key=str):
        old, new = old_containers.get(name), new_containers.get(name)
        base = f"containers[{name}]"
        if old is None or new is None:
            changes.append(
                FieldChange(
                    base,
                    "absent" if old is None else "present",
                    "absent" if new is None else "present",
                )
            )
            continue
        old_env, new_env = _env_map(old), _env_map(new)
        for var in sorted(set(old_env) | set(new_env)):
            if old_env.get(var) != new_env.get(var):
                changes.append(FieldChange(f"{base}.env.{var}", old_env.get(var), new_env.get(var)))
        flat_old: dict[str, Any] = {}
        flat_new: dict[str, Any] = {}
        _flatten({k: v for k, v in old.items() if k != "env"}, base, flat_old)
        _flatten({k: v for k, v in new.items() if k != "env"}, base, flat_new)
        for path in sorted(set(flat_old) | set(flat_new)):
            if flat_old.get(path) != flat_new.get(path):
                changes.append(FieldChange(path, flat_old.get(path), flat_new.get(path)))
    flat_old, flat_new = {}, {}
    _flatten({k: v for k, v in old_spec.items() if k != "containers"}, "", flat_old)
    _flatten({k: v for k, v in new_spec.items() if k != "containers"}, "", flat_new)
    for path in sorted(set(flat_old) | set(flat_new)):
        if flat_old.get(path) != flat_new.get(path):
            changes.append(FieldChange(path, flat_old.get(path), flat_new.get(path)))
    return tuple(changes)


def _live_spec(containers: Iterable[LiveContainer]) -> dict[str, Any] | None:
    for c in containers:
        if c.labels.get(L.ROLE) in (L.ROLE_INFRA, L.ROLE_FORWARDER) and c.labels.get(L.SPEC):
            try:
                spec = json.loads(c.labels[L.SPEC])
            except ValueError:
                return None
            return spec.get("spec") if isinstance(spec, dict) else None
    return None


def _live_labels(containers: Iterable[LiveContainer]) -> dict[str, str] | None:
    """The pod labels the live pod was created with, or None when they were not recorded."""
    for c in containers:
        raw = c.labels.get(L.POD_LABELS)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None
    return None


def _drift(
    live: list[LiveContainer], pod: DesiredPod, *, explained: bool
) -> tuple[FieldChange, ...]:
    """What differs besides the spec: the hash also covers pod labels and the infra image.

    The image Docker lists can be an image ID (a re-tagged image), so the infra image is
    named only when nothing else explains the new hash.
    """
    changes: list[FieldChange] = []
    old_labels = _live_labels(live)
    if old_labels is not None:
        for key in sorted(set(old_labels) | set(pod.labels)):
            if old_labels.get(key) != pod.labels.get(key):
                changes.append(
                    FieldChange(f"metadata.labels.{key}", old_labels.get(key), pod.labels.get(key))
                )
    infra = next((c for c in live if c.labels.get(L.ROLE) == L.ROLE_INFRA), None)
    if not (explained or changes) and infra is not None and infra.image != pod.containers[0].image:
        changes.append(FieldChange("infraImage", infra.image, pod.containers[0].image))
    return tuple(changes)


def _owner_of(containers: Iterable[LiveContainer]) -> ObjectRef:
    for c in containers:
        return ObjectRef(
            c.labels.get(L.OWNER_KIND, "Pod"),
            c.labels.get(L.OWNER_NAMESPACE, c.labels.get(L.POD_NAMESPACE, "default")),
            c.labels.get(L.OWNER_NAME, c.labels.get(L.POD, "")),
        )
    return ObjectRef("Pod", "default", "")


def group_pods(containers: Iterable[LiveContainer]) -> dict[tuple[str, str], list[LiveContainer]]:
    """Live containers by (namespace, pod), in a stable order."""
    pods: dict[tuple[str, str], list[LiveContainer]] = {}
    for c in sorted(containers, key=lambda c: (c.labels.get(L.CONTAINER, ""), c.id)):
        key = (c.labels.get(L.POD_NAMESPACE, ""), c.labels.get(L.POD, ""))
        pods.setdefault(key, []).append(c)
    return pods


def _rollout_group(pod: DesiredPod) -> str:
    if pod.owner.kind == "ReplicationController":
        return f"rollout/{pod.owner.namespace}/{pod.owner.name}"
    return f"pod/{pod.host}/{pod.namespace}/{pod.name}"


def plan(
    desired: DesiredState,
    live: Mapping[str, HostState],
    *,
    prune: bool = True,
) -> Plan:
    """Compare what should run with what runs; return the actions that close the gap."""
    result = Plan(problems=list(desired.problems))
    wanted = desired.by_host()
    live_counts: dict[ObjectRef, int] = defaultdict(int)
    for observed in live.values():
        for containers in group_pods(observed.containers).values():
            live_counts[_owner_of(containers)] += 1
    for host in sorted(set(wanted) | set(live)):
        state = live.get(host)
        if state is not None and not state.reachable:
            note = desired.host_notes.get(host)
            result.unreachable[host] = (state.error or "unreachable") + (
                f" ({note})" if note else ""
            )
            continue
        live_pods = group_pods(state.containers) if state is not None else {}
        # the prune guard counts workload pods: forwarders follow their Services
        result.owned_pods[host] = sum(
            1 for cs in live_pods.values() if _owner_of(cs).kind != "Service"
        )
        desired_pods = wanted.get(host, {})
        for key in sorted(desired_pods):
            result.actions.extend(
                _pod_actions(desired_pods[key], live_pods.get(key), desired, live_counts)
            )
        for key in sorted(set(live_pods) - set(desired_pods)):
            action = _removal(host, key, live_pods[key], desired)
            if prune or not action.prune:
                result.actions.append(action)
            else:
                result.skipped_prunes.append(action)
    return result


def _pod_actions(
    pod: DesiredPod,
    live: list[LiveContainer] | None,
    desired: DesiredState,
    live_counts: Mapping[ObjectRef, int],
) -> list[Action]:
    group = f"pod/{pod.host}/{pod.namespace}/{pod.name}"

    def act(
        verb: Verb,
        reason: str,
        *,
        container: str = "",
        on: tuple[LiveContainer, ...] = (),
        in_group: str = group,
        changes: tuple[FieldChange, ...] = (),
    ) -> Action:
        return Action(
            verb,
            host=pod.host,
            owner=pod.owner,
            pod=pod.name,
            reason=reason,
            container=container,
            group=in_group,
            source=pod.source,
            desired=pod,
            live=on,
            changes=changes,
        )

    if not live:
        if pod.owner.kind == "ReplicationController":
            wanted = desired.replicas.get(pod.owner, 0)
            have = live_counts.get(pod.owner, 0)
            reason = (
                f"replica {pod.name} missing: ReplicationController {pod.owner.name} wants "
                f"{wanted} pod(s), {have} exist"
            )
        elif pod.owner.kind == "Service":
            reason = f"no forwarder for Service {pod.owner.name} on this host"
        else:
            reason = "pod does not exist"
        return [act(Verb.CREATE, reason)]
    hashes = {c.labels.get(L.SPEC_HASH) for c in live}
    if hashes != {pod.spec_hash}:
        live_spec = _live_spec(live)
        changes = field_changes(live_spec, pod.spec)
        if live_spec:  # a known spec: say what else the hash covers that changed
            changes += _drift(live, pod, explained=bool(changes))
        shown = ", ".join(c.path for c in changes[:4]) + (" ..." if len(changes) > 4 else "")
        return [
            act(
                Verb.RECREATE,
                f"spec changed: {shown}",
                on=tuple(live),
                in_group=_rollout_group(pod),
                changes=changes,
            )
        ]
    by_name = {c.labels.get(L.CONTAINER, ""): c for c in live}
    infra = by_name.get(L.INFRA_CONTAINER)
    if infra is None or not infra.running:
        why = "is missing" if infra is None else f"is {infra.state} ({infra.status})"
        return [
            act(
                Verb.RECREATE,
                f"infra container {why}: the pod's network namespace must be rebuilt",
                on=tuple(live),
            )
        ]
    actions: list[Action] = []
    for container in pod.app_containers:
        found = by_name.get(container.container)
        if found is None:
            actions.append(
                act(
                    Verb.CREATE,
                    "container missing from a running pod",
                    container=container.container,
                )
            )
        elif should_restart(pod.restart_policy, found):
            actions.append(
                act(
                    Verb.START,
                    f"container is {found.state} ({found.status}); "
                    f"restartPolicy {pod.restart_policy}",
                    container=container.container,
                    on=(found,),
                )
            )
    wanted_names = {c.container for c in pod.containers}
    for name, found in sorted(by_name.items()):
        if name not in wanted_names:
            actions.append(
                act(Verb.REMOVE, "container is not in the pod's spec", container=name, on=(found,))
            )
    return actions


def _removal(
    host: str, key: tuple[str, str], containers: list[LiveContainer], desired: DesiredState
) -> Action:
    owner = _owner_of(containers)
    placed_elsewhere = next((p for p in desired.pods if p.key == key), None)
    if placed_elsewhere is not None:
        reason = f"pod now runs on host {placed_elsewhere.host}: surplus copy"
        prune = False
    elif owner.kind == "ReplicationController" and owner in desired.replicas:
        reason = (
            f"ReplicationController {owner.name} wants {desired.replicas[owner]} pod(s) "
            "(scale down)"
        )
        prune = False
    else:
        reason = f"{owner.kind} {owner.name} is no longer in the manifests"
        prune = True
    return Action(
        Verb.REMOVE,
        host=host,
        owner=owner,
        pod=key[1],
        reason=reason,
        group=f"pod/{host}/{key[0]}/{key[1]}",
        live=tuple(containers),
        prune=prune,
    )


def mask_env(name: str, value: Any) -> Any:
    """Hide values of variables whose names look secret, in every output."""
    return MASK if value is not None and is_secret_name(name) else value


def removal_plan(pods: Iterable[Any]) -> Plan:
    """Remove exactly these live pods (``reconciler down``)."""
    actions = [
        Action(
            Verb.REMOVE,
            host=p.host,
            owner=p.owner,
            pod=p.name,
            reason="down",
            group=f"pod/{p.host}/{p.namespace}/{p.name}",
            live=p.containers,
        )
        for p in pods
    ]
    return Plan(actions=actions)
