"""What ``diff --assume-down HOST`` adds to a plan: the Services that would lose endpoints. Pure.

The plan itself already says where the lost host's replicas would go (creates on the other
hosts) and what cannot be placed (its problems). What it does not say in words is what the
clients of each Service would see, so :func:`endpoint_changes` compares, per Service and
host, the endpoints its forwarder carries now (read from the live forwarders' labels)
with those the desired forwarders would carry right after the loss, before the moved
replicas run: the moment of least capacity.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import HostState, ObjectRef
from reconciler.desire.settings import DesiredState
from reconciler.render.views import forwarder_views


def endpoint_changes(
    desired: DesiredState, before: Mapping[str, HostState], lost: Collection[str]
) -> list[dict[str, Any]]:
    """Per Service and host whose endpoints would shrink or whose forwarder would go:
    ``{"service", "host", "before", "after", "lost", "forwarder_lost"}``."""
    now = forwarder_views(before)
    after: dict[tuple[ObjectRef, str], list[str]] = {}
    for pod in desired.pods:
        if pod.containers and pod.containers[0].role == L.ROLE_FORWARDER:
            found = [e for p in pod.spec.get("ports", []) for e in p.get("endpoints", [])]
            after[(pod.owner, pod.host)] = found
    changes = []
    for ref in sorted(now):
        for host, endpoints in sorted(now[ref].endpoints.items()):
            gone = host in lost
            then = list(endpoints)
            later = [] if gone else after.get((ref, host), [])
            missing = [e for e in then if e not in later]
            if not missing and not gone:
                continue
            name = ref.name if ref.namespace == "default" else f"{ref.namespace}/{ref.name}"
            changes.append(
                {
                    "service": name,
                    "host": host,
                    "before": then,
                    "after": later,
                    "lost": missing,
                    "forwarder_lost": gone,
                }
            )
    return changes


def endpoint_lines(changes: list[dict[str, Any]]) -> list[str]:
    """``Service web on h1: 3 -> 2 endpoint(s), loses 10.231.0.12:32768``."""
    lines = []
    for change in changes:
        where = f"Service {change['service']} on {change['host']}"
        if change["forwarder_lost"]:
            lines.append(f"{where}: the host is down, its forwarder with it")
            continue
        lost = ", ".join(change["lost"])
        lines.append(
            f"{where}: {len(change['before'])} -> {len(change['after'])} endpoint(s), "
            f"loses {lost}" + (" (no endpoint left)" if not change["after"] else "")
        )
    return lines
