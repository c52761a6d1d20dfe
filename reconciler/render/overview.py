"""The world as ``reconciler run`` last saw it, as JSON-ready rows for ``/status``. Pure.

:func:`world_rows` turns the manifests in force, the desired state and one observation of
every host into four lists: hosts, workloads (ReplicationControllers, and any kind the
desired state counts replicas for), pods and Services. The service stores them on its
status board after every pass; the page (``render.statuspage``) and ``reconciler status``
(``render.statustext``) read them back from ``/status``.

Rows hold values, not display text (counts as numbers, times as epoch seconds, labels as
mappings), so that each reader formats them its own way. Texts written in manifests
(labels, annotations, file names) are kept as they are, only cut to :data:`MAX_TEXT`
characters: escaping is the renderer's job. No env value is ever copied here, so a secret
cannot reach the page through these rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from reconciler.core import labels as L
from reconciler.core.model import HostState, Manifest, ObjectRef, as_map
from reconciler.desire.settings import DesiredState
from reconciler.render.views import LivePod, forwarder_views, host_rows, live_pods
from reconciler.source.hosts import Host

#: Longest text kept from a manifest (a label value, an annotation); the rest is cut.
MAX_TEXT: Final = 200
#: The kinds whose pods are replicas of a template: a workload row each.
WORKLOAD_KINDS: Final = ("ReplicationController", "Deployment")


def cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _texts(value: Any) -> dict[str, str]:
    """A label or annotation mapping, each key and value cut to :data:`MAX_TEXT`."""
    return {cut(str(k)): cut(str(v)) for k, v in sorted(as_map(value).items(), key=str)}


def _name(namespace: str, name: str) -> str:
    return name if namespace == "default" else f"{namespace}/{name}"


def world_rows(
    manifests: Sequence[Manifest],
    desired: DesiredState | None,
    live: Mapping[str, HostState],
    hosts: Sequence[Host],
    *,
    versions: Mapping[str, str] | None = None,
    restarts: Mapping[tuple[str, str], int] | None = None,
    failed_rollouts: Mapping[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``{"hosts", "workloads", "pods", "services"}``, each a list of rows.

    ``restarts``: per (namespace, pod), the container restarts the service saw;
    ``failed_rollouts``: per workload (``Kind/namespace/name``), why its last rollout failed.
    """
    pods = live_pods(live)
    return {
        "hosts": host_list(live, hosts, versions or {}),
        "workloads": workload_rows(manifests, desired, pods, failed_rollouts or {}),
        "pods": pod_list(pods, restarts or {}),
        "services": service_list(manifests, pods, live),
    }


def host_list(
    live: Mapping[str, HostState], hosts: Sequence[Host], versions: Mapping[str, str]
) -> list[dict[str, Any]]:
    """``get hosts -o wide``'s rows with lower-case keys."""
    rows = []
    for row in host_rows(live, hosts, versions, wide=False):
        item = {key.lower(): value for key, value in row.items()}
        item["reachable"] = row["REACHABLE"] == "yes"
        rows.append(item)
    return rows


def workload_rows(
    manifests: Sequence[Manifest],
    desired: DesiredState | None,
    pods: Sequence[LivePod],
    failed_rollouts: Mapping[str, str],
) -> list[dict[str, Any]]:
    """One row per workload: desired, current, ready, up to date, and its rollout state."""
    wanted_hash = {p.key: p.spec_hash for p in desired.pods} if desired else {}
    members: dict[ObjectRef, list[LivePod]] = {}
    for pod in pods:
        members.setdefault(pod.owner, []).append(pod)
    rows = []
    for manifest in sorted((m for m in manifests if m.kind in WORKLOAD_KINDS), key=_ref):
        ref = manifest.ref
        spec = as_map(manifest.body.get("spec"))
        replicas = spec.get("replicas", 1)
        want = replicas if isinstance(replicas, int) else 1
        mine = members.get(ref, [])
        ready = sum(1 for p in mine if p.is_ready)  # readiness probes included
        updated = sum(
            1
            for p in mine
            if p.infra is not None
            and p.infra.labels.get(L.SPEC_HASH) == wanted_hash.get((p.namespace, p.name))
        )
        failure = failed_rollouts.get(str(ref), "")
        if failure:
            rollout = "failed"
        elif updated >= want and ready >= want and len(mine) == want:
            rollout = "complete"
        elif ready == 0 and want > 0:
            rollout = "unavailable"
        else:
            rollout = "progressing"
        template = as_map(spec.get("template"))
        rows.append(
            {
                "kind": manifest.kind,
                "namespace": manifest.namespace,
                "name": manifest.name,
                "desired": want,
                "current": len(mine),
                "ready": ready,
                "updated": updated,
                "rollout": rollout,
                "rollout_error": failure,
                "hosts": sorted({p.host for p in mine}),
                "source": str(manifest.source),
                "labels": _texts(manifest.labels),
                "annotations": _texts(manifest.metadata.get("annotations")),
                "pod_labels": _texts(as_map(template.get("metadata")).get("labels")),
            }
        )
    return rows


def _ref(manifest: Manifest) -> ObjectRef:
    return manifest.ref


def pod_list(
    pods: Sequence[LivePod], restarts: Mapping[tuple[str, str], int]
) -> list[dict[str, Any]]:
    """Every workload pod: where, ready, status, restarts, age, images, its manifest's
    file:line and the commit it was made from (both from its containers' labels)."""
    rows = []
    for pod in pods:
        ready, total = pod.ready
        labels = (
            pod.infra.labels if pod.infra is not None else (pod.apps[0].labels if pod.apps else {})
        )
        rows.append(
            {
                "namespace": pod.namespace,
                "name": pod.name,
                "host": pod.host,
                "ready": ready,
                "containers": total,
                "status": pod.status,
                "restarts": restarts.get((pod.namespace, pod.name), 0) + pod.restarts,
                "created": pod.created,
                "images": [cut(c.image) for c in pod.apps],
                "owner": f"{pod.owner.kind}/{_name(pod.owner.namespace, pod.owner.name)}",
                "source": cut(labels.get(L.SOURCE, "")),
                "revision": cut(labels.get(L.REVISION, "")),
                "ip": pod.infra.ip_address if pod.infra else "",
                "labels": _texts(pod.labels),
            }
        )
    return rows


def service_list(
    manifests: Sequence[Manifest], pods: Sequence[LivePod], live: Mapping[str, HostState]
) -> list[dict[str, Any]]:
    """Every Service: type, cluster IP, ports, and per host the endpoints its forwarder
    carries traffic to (as the forwarders' own labels say)."""
    views = forwarder_views(live)
    rows = []
    for manifest in sorted((m for m in manifests if m.kind == "Service"), key=_ref):
        spec = as_map(manifest.body.get("spec"))
        selector = _texts(spec.get("selector"))
        view = views.get(manifest.ref)
        ports = [
            f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
            f"/{p.get('protocol', 'TCP')}"
            for p in (as_map(x) for x in spec.get("ports") or [])
        ]
        selected = [
            p
            for p in pods
            if p.namespace == manifest.namespace
            and selector
            and all(p.labels.get(k) == v for k, v in selector.items())
        ]
        rows.append(
            {
                "namespace": manifest.namespace,
                "name": manifest.name,
                "type": str(spec.get("type", "ClusterIP")),
                "cluster_ip": view.cluster_ip if view else "",
                "ports": ports,
                "selector": selector,
                "pods": len(selected),
                "ready_pods": sum(1 for p in selected if p.is_ready),
                "endpoints": {host: list(found) for host, found in sorted(view.endpoints.items())}
                if view
                else {},
                "source": str(manifest.source),
                "labels": _texts(manifest.labels),
            }
        )
    return rows
