"""Whether a live pod needs nothing at all, read from its labels and states alone. Pure.

Why: in a steady pass nearly every pod is in sync, and the planner's full rules (drift,
the infra container, init steps, probes and restarts, strays) cost far more than this one
look: a pod created from the same spec hash whose containers all run, healthy or without
a health check, none of them held back or a stray, gets no action from those rules either.
Anything else (a Service's forwarder, init containers, a stopped or unhealthy container,
a missing or extra one) goes through the full rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.core import labels as L
from reconciler.core.model import DesiredPod, LiveContainer
from reconciler.desire.template import container_names

_UNHEALTHY = "(unhealthy)"


def in_sync(pod: DesiredPod, live: Sequence[LiveContainer]) -> bool:
    """True only when the planner's rules would give ``pod`` no action at all."""
    wanted = container_names(pod)
    if pod.owner.kind == "Service" or len(live) != len(wanted):
        return False
    spec_hash = pod.spec_hash
    names = set()
    for c in live:
        labels = c.labels
        if (
            c.state != "running"
            or labels.get(L.SPEC_HASH) != spec_hash
            or c.status.endswith(_UNHEALTHY)
        ):
            return False
        names.add(labels.get(L.CONTAINER, ""))
    # exactly the wanted containers (an init container, done and not running, never is)
    return len(names) == len(wanted) and all(name in names for name in wanted)
