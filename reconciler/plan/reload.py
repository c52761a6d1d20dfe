"""Whether a running Service forwarder must be given other endpoints, in place. Pure.

A forwarder's endpoints are not in its spec hash (``desire.forwarders``): it is made with
the endpoints of the moment, in its spec label, and each later change is a ``reload``
(``engine.reload``) that leaves a record beside it saying what it was given, keyed by the
forwarder's container id. So what a forwarder routes to is its newest record's endpoints,
or its spec label's when it has none: both come from the one list call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import DesiredPod, LiveContainer, ObjectRef
from reconciler.desire.forwarders import forwarder_endpoints
from reconciler.plan.live import live_spec
from reconciler.plan.model import Action, FieldChange, Verb


def live_endpoints(forwarder: LiveContainer, records: Sequence[LiveContainer]) -> list[Any]:
    """What ``forwarder`` routes to now: ``[protocol, port, [endpoint...]]`` per listener."""
    for record in sorted(records, key=lambda r: r.created, reverse=True):
        if record.labels.get(L.FORWARDER) == forwarder.id:
            try:
                value = json.loads(record.labels.get(L.ENDPOINTS, ""))
            except ValueError:
                break
            if isinstance(value, list):
                return value
    return forwarder_endpoints(live_spec([forwarder]) or {})


def reload_needed(
    pod: DesiredPod, forwarder: LiveContainer, records: Sequence[LiveContainer]
) -> list[tuple[str, tuple[FieldChange, ...]]]:
    """``[(reason, changes)]`` when the forwarder must be given the desired endpoints."""
    have = {(str(p), int(port)): list(eps) for p, port, eps in live_endpoints(forwarder, records)}
    changes = []
    for index, (protocol, port, endpoints) in enumerate(forwarder_endpoints(pod.spec)):
        old = have.get((protocol, int(port)))
        if old != endpoints:
            changes.append(FieldChange(f"ports[{index}].endpoints", old, endpoints))
    if not changes:
        return []
    shown = ", ".join(c.path for c in changes)
    return [(f"endpoints changed: {shown} (reloaded in place, connections kept)", tuple(changes))]


def orphan_records(host: str, key: tuple[str, str], records: list[LiveContainer]) -> Action:
    """Records whose forwarder is gone (its removal was interrupted): removed."""
    first = records[0].labels
    owner = ObjectRef("Service", first.get(L.OWNER_NAMESPACE, key[0]), first.get(L.OWNER_NAME, ""))
    return Action(
        Verb.REMOVE,
        host=host,
        owner=owner,
        pod=key[1],
        reason="endpoints record of a forwarder that is gone",
        container="endpoints",
        group=f"pod/{host}/{key[0]}/{key[1]}",
        live=tuple(records),
    )
