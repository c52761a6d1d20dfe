"""The live state: what one ``GET /containers/json`` (and the volume list) says, as values.
Pure, like ``engine.translate`` (which re-exports these names).

Why apart: a list call of 10,000 pods is the largest value the reconciler reads, so it is
read in one pass, entry by entry (``client.json_array_items`` decodes as it goes), and the
label texts that repeat on every container (owner, pod labels, revision...) are kept once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import HostState, LiveContainer, LiveVolume


def live_container(
    host: str, item: Mapping[str, Any], shared: dict[str, str] | None = None
) -> LiveContainer:
    """One entry of ``GET /containers/json`` as a LiveContainer. ``shared``: label texts
    seen in the same list call, kept once (owner, pod labels... repeat on every container)."""
    keep = (shared if shared is not None else {}).setdefault
    names = item.get("Names") or ["/"]
    networks = (item.get("NetworkSettings") or {}).get("Networks") or {}
    address = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), "")
    published = tuple(
        sorted(
            {
                (int(p["PrivatePort"]), str(p.get("Type", "tcp")), int(p["PublicPort"]))
                for p in item.get("Ports") or []
                if p.get("PublicPort") and p.get("PrivatePort")
            }
        )
    )
    return LiveContainer(
        id=str(item.get("Id", "")),
        name=str(names[0]).lstrip("/"),
        host=host,
        labels={keep(k, k): keep(v, v) for k, v in (item.get("Labels") or {}).items()},
        state=str(item.get("State", "")),
        status=str(item.get("Status", "")),
        created=int(item.get("Created", 0)),
        image=str(item.get("Image", "")),
        ip_address=address or "",
        ports=published,
    )


def live_volumes(
    host: str, instance: str, listed: Iterable[Mapping[str, Any]]
) -> tuple[LiveVolume, ...]:
    """Our volumes from one ``GET /volumes`` (never anyone else's, whatever the filter let
    through), sorted by name."""
    return tuple(
        sorted(
            (
                LiveVolume(
                    str(v.get("Name", "")),
                    host,
                    dict(v.get("Labels") or {}),
                    str(v.get("Driver", "local")),
                )
                for v in listed
                if L.is_owned(v.get("Labels"), instance)
            ),
            key=lambda v: v.name,
        )
    )


def mounts_claims(instance: str, listed: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a listed container mounts one of the instance's claim volumes: then its
    volumes are worth a list call too (``Mounts`` comes with the container list)."""
    prefix = f"{instance}_"
    return any(
        str(m.get("Name", "")).startswith(prefix) and str(m.get("Name", "")).endswith("_PVC")
        for item in listed
        for m in item.get("Mounts") or []
    )


def host_state(
    host: str,
    instance: str,
    listed: Iterable[Mapping[str, Any]],
    volumes: Iterable[Mapping[str, Any]] = (),
) -> HostState:
    """One host's state from its container list (one pass: it may be decoded as it is read):
    our containers only, the revision its newest marker records, the Deployments' rollout
    markers (apart: they are no pods); our volumes."""
    shared: dict[str, str] = {}
    containers: list[LiveContainer] = []
    records: list[LiveContainer] = []
    rollouts: list[LiveContainer] = []  # the Deployments' rollout markers: no pods
    applied: Mapping[str, Any] | None = None
    for item in listed:
        labels = item.get("Labels") or {}
        if not L.is_owned(labels, instance):
            continue
        role = labels.get(L.ROLE)
        if role == L.ROLE_STATE:  # the newest marker
            newer = applied is None or int(item.get("Created", 0)) > int(applied.get("Created", 0))
            applied = item if newer else applied
        elif role == L.ROLE_ROLLOUT:
            rollouts.append(live_container(host, item, shared))
        elif role != L.ROLE_TOOLS:  # endpoints records apart
            (records if role == L.ROLE_ENDPOINTS else containers).append(
                live_container(host, item, shared)
            )
    return HostState(
        host,
        reachable=True,
        containers=tuple(containers),
        applied_revision=(applied.get("Labels") or {}).get(L.REVISION, "") if applied else "",
        rollouts=tuple(rollouts),
        markers=tuple(records),
        volumes=live_volumes(host, instance, volumes),
    )
