"""``plan(desired, live) -> Plan``: the actions that close the gap, each with its reason. Pure.

Drift is found by the spec-hash label (docker-compose's config-hash idea), so a no-op pass
needs nothing but the one list call per host. Actions come in a stable order: by host, then
namespace and pod name, then container.

Sequencing: every action belongs to a ``group``. Actions of one group run one after the
other; groups run concurrently. A ReplicationController whose template changed gets one
rollout group, so its pods are replaced one at a time and the next only after the new one
is ready: the controller never drops below replicas - 1. That holds across passes too: while
a pod already on the new template is not ready (a failed step), the controller's other pods
are not replaced, pass after pass, and the plan says why (an error at the controller's
file:line). A Deployment's rollout is decided
before this (``plan.rollout``: which pods exist at this step); here its pods are created
and removed like any others, with the rollout's reasons.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import (
    DesiredPod,
    Diagnostic,
    HostState,
    LiveContainer,
    Location,
    ObjectRef,
    Restart,
    Severity,
)
from reconciler.desire.settings import DesiredState
from reconciler.plan.fields import drift, field_changes
from reconciler.plan.lifecycle import app_step, init_steps
from reconciler.plan.live import group_pods, live_spec, owner_of, pod_ready, should_restart
from reconciler.plan.model import Action, FieldChange, Plan, Verb
from reconciler.plan.quiet import in_sync
from reconciler.plan.reload import orphan_records, reload_needed


def _rollout_group(pod: DesiredPod) -> str:
    if pod.owner.kind in ("ReplicationController", "Deployment"):
        return f"rollout/{pod.owner.namespace}/{pod.owner.name}"
    return f"pod/{pod.host}/{pod.namespace}/{pod.name}"


def plan(
    desired: DesiredState,
    live: Mapping[str, HostState],
    *,
    prune: bool = True,
    now: float = 0.0,
) -> Plan:
    """Compare what should run with what runs; return the actions that close the gap.

    ``now`` (epoch seconds) decides restarts held back by their back-off
    (``plan.lifecycle``); ``Plan.wake_at`` says when the first of them may go ahead."""
    result = Plan(problems=list(desired.problems))
    wakes: list[float] = []
    wanted = desired.by_host()
    grouped = {host: group_pods(observed.containers) for host, observed in live.items()}
    live_counts = _OwnerCounts(grouped)
    held: dict[ObjectRef, str] | None = None  # found at the first rolling-update step
    holding: dict[ObjectRef, Location] = {}
    for host in sorted(set(wanted) | set(live)):
        state = live.get(host)
        if state is not None and not state.reachable:
            note = desired.host_notes.get(host)
            result.unreachable[host] = (state.error or "unreachable") + (
                f" ({note})" if note else ""
            )
            continue
        live_pods = grouped.get(host, {})
        records = group_pods(state.markers) if state is not None else {}
        # the prune guard counts workload pods: forwarders follow their Services
        result.owned_pods[host] = sum(
            1 for cs in live_pods.values() if cs[0].labels.get(L.OWNER_KIND, "Pod") != "Service"
        )
        desired_pods = wanted.get(host, {})
        for key in sorted(desired_pods):
            pod = desired_pods[key]
            actions = _pod_actions(
                pod,
                live_pods.get(key),
                desired,
                live_counts,
                now=now,
                wakes=wakes,
                records=records.get(key, []),
            )
            if held is None and any(_update_step(a) for a in actions):
                held = _held_updates(desired, live)  # only a rolling update needs to know
            if held is not None and pod.owner in held:  # its next step waits for the failed one
                kept = [a for a in actions if not _update_step(a)]
                if len(kept) < len(actions):
                    holding[pod.owner] = pod.source
                actions = kept
            result.actions.extend(actions)
        for key in sorted(set(records) - set(live_pods)):
            result.actions.append(orphan_records(host, key, records[key]))
        for key in sorted(set(live_pods) - set(desired_pods) - desired.kept):
            action = _removal(host, key, live_pods[key], desired)
            if prune or not action.prune:
                result.actions.append(action)
            else:
                result.skipped_prunes.append(action)
    result.wake_at = min(wakes, default=None)
    for owner, source in sorted(holding.items()):
        result.problems.append(
            Diagnostic(
                Severity.ERROR,
                source,
                f"rolling update held: {(held or {})[owner]}; the other replicas keep their "
                "template until it is (fix the template, or wait for it)",
                kind=owner.kind,
                name=owner.name,
            )
        )
    return result


class _OwnerCounts(Mapping[ObjectRef, int]):
    """How many live pods each owner has: counted on first use (only a missing replica's
    reason needs it, and a steady pass has none)."""

    def __init__(self, grouped: Mapping[str, Mapping[tuple[str, str], list[LiveContainer]]]):
        self._grouped = grouped
        self._counts: dict[ObjectRef, int] | None = None

    def _counted(self) -> dict[ObjectRef, int]:
        if self._counts is None:
            counts: dict[ObjectRef, int] = defaultdict(int)
            for pods in self._grouped.values():
                for containers in pods.values():
                    counts[owner_of(containers)] += 1
            self._counts = dict(counts)
        return self._counts

    def __getitem__(self, owner: ObjectRef) -> int:
        return self._counted()[owner]

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._counted())

    def __len__(self) -> int:
        return len(self._counted())


def _update_step(action: Action) -> bool:
    """A step of a ReplicationController's rolling update: a pod replaced for its spec."""
    return action.verb is Verb.RECREATE and action.group.startswith("rollout/")


def _held_updates(desired: DesiredState, live: Mapping[str, HostState]) -> dict[ObjectRef, str]:
    """ReplicationControllers whose rolling update must wait, with why: a pod of theirs
    already runs the wanted template (a step taken, in this pass or an earlier one) and is
    not ready (``plan.live.pod_ready``). Replacing another now would take down a replica
    that serves for one that does not."""
    wanted = {(p.host, *p.key): p for p in desired.pods if p.owner.kind == "ReplicationController"}
    held: dict[ObjectRef, str] = {}
    for host in sorted(live):
        state = live[host]
        if not state.reachable:
            continue
        for key, containers in sorted(group_pods(state.containers).items()):
            pod = wanted.get((host, *key))
            if pod is None or {c.labels.get(L.SPEC_HASH) for c in containers} != {pod.spec_hash}:
                continue
            if not pod_ready(containers):
                why = f"pod {pod.name} on {host} runs the new template and is not ready"
                held.setdefault(pod.owner, why)
    return held


def _pod_actions(
    pod: DesiredPod,
    live: list[LiveContainer] | None,
    desired: DesiredState,
    live_counts: Mapping[ObjectRef, int],
    *,
    now: float = 0.0,
    wakes: list[float] | None = None,
    records: list[LiveContainer] | None = None,
) -> list[Action]:
    if live and in_sync(pod, live):
        return []
    group = f"pod/{pod.host}/{pod.namespace}/{pod.name}"
    wakes = [] if wakes is None else wakes

    def act(
        verb: Verb,
        reason: str,
        *,
        container: str = "",
        on: tuple[LiveContainer, ...] = (),
        in_group: str = group,
        changes: tuple[FieldChange, ...] = (),
        restart: Restart | None = None,
    ) -> Action:
        if restart is not None and restart.start_after:
            wakes.append(restart.start_after)  # a pass is due when the new instance may start
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
            restart=restart,
        )

    if not live:
        if pod.owner.kind == "ReplicationController":
            wanted = desired.replicas.get(pod.owner, 0)
            have = live_counts.get(pod.owner, 0)
            reason = (
                f"replica {pod.name} missing: ReplicationController {pod.owner.name} wants "
                f"{wanted} pod(s), {have} exist"
            )
        elif pod.owner.kind == "Deployment":
            reason = desired.reasons.get(pod.key) or (
                f"pod missing: Deployment {pod.owner.name} wants "
                f"{desired.deployments.get(pod.owner, 0)} pod(s), "
                f"{live_counts.get(pod.owner, 0)} exist"
            )
        elif pod.owner.kind == "Service":
            reason = f"no forwarder for Service {pod.owner.name} on this host"
        else:
            reason = "pod does not exist"
        return [act(Verb.CREATE, reason)]
    hashes = {c.labels.get(L.SPEC_HASH) for c in live}
    if hashes != {pod.spec_hash}:
        old_spec = live_spec(live)
        changes = field_changes(old_spec, pod.spec)
        if old_spec:  # a known spec: say what else the hash covers that changed
            changes += drift(live, pod, explained=bool(changes))
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
    if pod.owner.kind == "Service":
        actions.extend(
            act(Verb.RELOAD, reason, on=(infra, *(records or [])), changes=changes)
            for reason, changes in reload_needed(pod, infra, records or [])
        )
    steps, initialized = init_steps(pod, by_name, now, wakes)
    for init in steps:
        actions.append(
            act(init.verb, init.reason, container=init.container, on=init.on, restart=init.restart)
        )
    for container in pod.app_containers if initialized else ():
        found = by_name.get(container.container)
        handled, step = (False, None) if found is None else app_step(pod, found, now, wakes)
        if found is None:
            actions.append(
                act(
                    Verb.CREATE,
                    "container missing from a running pod",
                    container=container.container,
                )
            )
        elif handled:
            if step is not None:
                actions.append(
                    act(
                        step.verb,
                        step.reason,
                        container=step.container,
                        on=step.on,
                        restart=step.restart,
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
    owner = owner_of(containers)
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
    elif owner.kind == "Deployment" and owner in desired.deployments:
        reason = desired.removal_reasons.get(key) or (
            f"Deployment {owner.name} wants {desired.deployments[owner]} pod(s) (scale down)"
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
