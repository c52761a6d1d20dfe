"""Guards on a plan before it runs: the one place that decides whether a plan removes too much.

A bad commit (an emptied directory, a wrong path) looks to a reconciler exactly like an
intended mass deletion (Argo CD #3484). So a plan that would remove every pod this instance
owns on a host, or more than ``max_prune`` of them, is refused unless the operator allows
it; both ``reconciler apply`` and ``reconciler run`` ask :func:`refusals`. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.plan.model import Plan


@dataclass(frozen=True, slots=True)
class Limits:
    """What the operator allows one plan to do per host."""

    max_prune: int = 20
    allow_mass_prune: bool = False


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


def refusals(plan: Plan, limits: Limits) -> dict[str, str]:
    """Why ``plan`` must not run, per host (empty: it may). The callers say how to override."""
    return {} if limits.allow_mass_prune else mass_prune_hosts(plan, limits.max_prune)
