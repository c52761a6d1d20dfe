"""Guards on a plan before it runs: the one place that decides whether a plan removes, or
creates, too much.

A bad commit (an emptied directory, a wrong path) looks to a reconciler exactly like an
intended mass deletion (Argo CD #3484). So a plan that would remove every pod this instance
owns on a host, or more than ``max_prune`` of them, is refused unless the operator allows
it. A hostile or mistaken commit can also ask for hundreds of pods at once (``replicas:
900``): a plan that would create more than ``max_create`` pods on one host is refused
likewise. Both ``reconciler apply`` and ``reconciler run`` ask :func:`refusals`. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.plan.model import Plan, Verb


@dataclass(frozen=True, slots=True)
class Limits:
    """What the operator allows one plan to do per host."""

    max_prune: int = 20
    allow_mass_prune: bool = False
    max_create: int = 100
    allow_mass_create: bool = False


def mass_prune_hosts(plan: Plan, max_prune: int) -> dict[str, str]:
    """Hosts where ``plan`` would remove everything we own there, or too much: host -> why."""
    refused: dict[str, str] = {}
    for host, count in plan.prunes_by_host().items():
        owned = plan.owned_pods.get(host, 0)
        if count >= owned > 0:
            refused[host] = f"would remove all {owned} pod(s) owned on host {host}"
        elif count > max_prune:
            refused[host] = (
                f"would remove {count} pods on host {host}, more than --max-prune {max_prune}"
            )
    return refused


def mass_create_hosts(plan: Plan, max_create: int) -> dict[str, str]:
    """Hosts where ``plan`` would create more than ``max_create`` pods: host -> why.

    Workload pods only, as for prunes: a Service's forwarders follow the Services. A
    recreate (a changed spec, a rollout) replaces a pod and is not counted.
    """
    counts: dict[str, int] = {}
    for action in plan.actions:
        if action.verb is Verb.CREATE and not action.container and action.owner.kind != "Service":
            counts[action.host] = counts.get(action.host, 0) + 1
    return {
        host: f"would create {count} pods on host {host}, more than --max-create {max_create}"
        for host, count in sorted(counts.items())
        if count > max_create
    }


def refusals(plan: Plan, limits: Limits) -> dict[str, str]:
    """Why ``plan`` must not prune, per host (empty: it may). :func:`refused` says it all."""
    return {} if limits.allow_mass_prune else mass_prune_hosts(plan, limits.max_prune)


def refused(plan: Plan, limits: Limits) -> list[str]:
    """Why ``plan`` must not run, one sentence per host and guard, each naming the flag that
    overrides it (empty: it may run): what ``apply`` and ``run`` ask before they act."""
    reasons = [
        f"this plan {why} (pass --allow-mass-prune if you mean it)"
        for why in refusals(plan, limits).values()
    ]
    if not limits.allow_mass_create:
        for why in mass_create_hosts(plan, limits.max_create).values():
            reasons.append(f"this plan {why} (pass --allow-mass-create if you mean it)")
    return reasons
