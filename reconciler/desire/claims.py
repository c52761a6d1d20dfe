"""PersistentVolumeClaims: a Docker named volume per claim, on the host where its pods run.
Pure.

A claim's volume is named ``<instance>_<namespace>_<claim>_PVC`` (no pod volume can be
called ``PVC``: volume names are lower case) and carries the ownership labels and the
claim's name, never a pod's: removing a pod never removes it. Data is never deleted
implicitly: a claim that leaves the manifests leaves an *orphaned* volume, which ``get
volumes`` lists and ``diff`` reports, and only ``down --volumes`` or ``--prune-volumes``
removes.

Docker's local volumes live on one host, so the pods that mount a claim go where its
volume is (:func:`claim_hosts`, from the live volumes), or, for a new claim, where its first
pod is placed; they wait for that host when it is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.core import labels as L
from reconciler.core.model import (
    Diagnostic,
    HostState,
    LiveVolume,
    Location,
    Manifest,
    Severity,
    as_list,
    as_map,
)
from reconciler.desire.settings import docker_name
from reconciler.source.hosts import DEFAULT_VOLUME_DRIVER, Host

CLAIM_PART = "PVC"


@dataclass(frozen=True, slots=True)
class Claim:
    namespace: str
    name: str
    storage_class: str
    storage: str | None
    source: Location
    storage_at: Location


def claim_volume_name(instance: str, namespace: str, claim: str) -> str:
    return docker_name(instance, namespace, claim, CLAIM_PART)


def claims_of(manifests: Iterable[Manifest]) -> dict[tuple[str, str], Claim]:
    result = {}
    for m in manifests:
        if m.kind != "PersistentVolumeClaim":
            continue
        spec = as_map(m.body.get("spec"))
        storage = as_map(as_map(spec.get("resources")).get("requests")).get("storage")
        result[(m.namespace, m.name)] = Claim(
            m.namespace,
            m.name,
            str(spec.get("storageClassName") or ""),
            None if storage is None else str(storage),
            m.source,
            m.locate(("spec", "resources", "requests", "storage")),
        )
    return result


def claim_labels(instance: str, namespace: str, claim: str) -> tuple[tuple[str, str], ...]:
    return (
        (L.MANAGED_BY, L.MANAGED_BY_VALUE),
        (L.INSTANCE, instance),
        (L.OWNER_KIND, "PersistentVolumeClaim"),
        (L.CLAIM, claim),
        (L.CLAIM_NAMESPACE, namespace),
    )


def is_claim_volume(volume: LiveVolume) -> bool:
    return bool(volume.labels.get(L.CLAIM))


def claim_hosts(live: Mapping[str, HostState]) -> dict[tuple[str, str], str]:
    """Where each claim's volume is now: (namespace, claim) -> host, the first host listed
    when several hold one."""
    found: dict[tuple[str, str], str] = {}
    for host in sorted(live):
        for volume in live[host].volumes:
            if is_claim_volume(volume):
                key = (volume.labels.get(L.CLAIM_NAMESPACE, ""), volume.labels.get(L.CLAIM, ""))
                found.setdefault(key, host)
    return found


def pod_claims(raw_spec: Mapping[str, object]) -> list[str]:
    return [
        str(claim)
        for v in as_list(raw_spec.get("volumes"))
        if (claim := as_map(as_map(v).get("persistentVolumeClaim")).get("claimName"))
    ]


def driver_for(claim: Claim, host: Host) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The volume driver (and options) of ``claim`` on ``host``; ValueError when the host
    does not know its storage class."""
    if not claim.storage_class:
        return DEFAULT_VOLUME_DRIVER, ()
    found = host.storage_classes.get(claim.storage_class)
    if found is None:
        raise ValueError(
            f"storage class {claim.storage_class!r} of claim {claim.name} is not in host "
            f"{host.name}'s storage_classes (hosts file)"
        )
    return found


def storage_warnings(
    claims: Mapping[tuple[str, str], Claim],
    placed: Mapping[tuple[str, str], str],
    hosts: Sequence[Host],
) -> list[Diagnostic]:
    """A storage request Docker cannot enforce: the ``local`` driver has no size limit."""
    by_name = {h.name: h for h in hosts}
    problems = []
    for key, claim in sorted(claims.items()):
        host = by_name.get(placed.get(key, ""))
        if claim.storage is None or host is None:
            continue
        try:
            driver, options = driver_for(claim, host)
        except ValueError:
            continue
        if driver == DEFAULT_VOLUME_DRIVER and not any(
            k == "o" and "size=" in v for k, v in options
        ):
            problems.append(
                Diagnostic(
                    Severity.WARNING,
                    claim.storage_at,
                    f"storage {claim.storage} is not enforced: Docker's local volume driver "
                    "gives a claim the free space of its host",
                    kind="PersistentVolumeClaim",
                    name=claim.name,
                    path="spec.resources.requests.storage",
                )
            )
    return problems


def orphaned_volumes(
    claims: Iterable[tuple[str, str]], live: Mapping[str, HostState]
) -> list[LiveVolume]:
    """Claims' volumes whose claim is no longer in the manifests: kept, and reported."""
    wanted = set(claims)
    return [
        volume
        for host in sorted(live)
        if live[host].reachable
        for volume in live[host].volumes
        if is_claim_volume(volume)
        and (volume.labels.get(L.CLAIM_NAMESPACE, ""), volume.labels.get(L.CLAIM, "")) not in wanted
    ]
