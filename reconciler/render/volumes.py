"""Rows for ``reconciler get volumes``: the claims' Docker volumes on every host, and whether
their claim is still in the manifests (``Bound``) or has left them (``Orphaned``: kept, with
its data, until ``down --volumes`` or ``--prune-volumes``). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import HostState


def volume_rows(
    states: Mapping[str, HostState], claims: Set[tuple[str, str]], wide: bool
) -> list[dict[str, Any]]:
    rows = []
    for host in sorted(states):
        for volume in states[host].volumes:
            claim = volume.labels.get(L.CLAIM)
            if not claim:
                continue  # a pod's own volume: it goes with the pod
            namespace = volume.labels.get(L.CLAIM_NAMESPACE, "default")
            row: dict[str, Any] = {
                "CLAIM": claim if namespace == "default" else f"{namespace}/{claim}",
                "STATUS": "Bound" if (namespace, claim) in claims else "Orphaned",
                "HOST": host,
                "DRIVER": volume.driver,
            }
            if wide:
                row["VOLUME"] = volume.name
            rows.append(row)
    return rows
