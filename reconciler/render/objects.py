"""kubectl-shaped objects of what runs: ``get -o json``, ``-o yaml`` and ``-o name``. Pure.

A ``List`` of ``Pod``, ``ReplicationController``, ``Service`` or ``Node`` objects with the
fields scripts written for kubectl read (``.items[].metadata.name``,
``.status.containerStatuses[].restartCount``, ``.status.conditions[] | select(.type ==
"Ready")``...), made from the live state (one list call per host) and, where a kind needs
it, the manifests. Fields Kubernetes has but the reconciler cannot know (``uid``,
``resourceVersion``) are left out rather than invented.

The builders are public so that other kinds (Deployments) build on the same shapes:
:func:`metadata`, :func:`timestamp`, :func:`condition`, :func:`object_list`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from reconciler.core import health
from reconciler.core import labels as L
from reconciler.core.model import HostState, LiveContainer, LiveVolume, Manifest, ObjectRef
from reconciler.plan.live import exit_code
from reconciler.render.views import LivePod, ServiceView, init_names
from reconciler.source.hosts import Host

#: where an object's annotations say which manifest line and revision it came from
SOURCE_ANNOTATION = "reconciler.io/source"
REVISION_ANNOTATION = "reconciler.io/revision"
HOST_ANNOTATION = "reconciler.io/host"

#: kubectl's resource names for ``-o name``
RESOURCE_NAMES = {
    "Pod": "pod",
    "ReplicationController": "replicationcontroller",
    "Service": "service",
    "Node": "node",
    "PersistentVolumeClaim": "persistentvolumeclaim",
    "Deployment": "deployment.apps",
}


def timestamp(epoch: float) -> str:
    """Kubernetes' RFC 3339 form, in UTC, to the second: ``2024-05-01T12:00:00Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: float | None = None,
) -> dict[str, Any]:
    """An object's ``metadata``; empty fields are left out, as the API server does."""
    result: dict[str, Any] = {"name": name}
    if namespace is not None:
        result["namespace"] = namespace
    if created:
        result["creationTimestamp"] = timestamp(created)
    if labels:
        result["labels"] = dict(labels)
    if annotations:
        result["annotations"] = {k: v for k, v in annotations.items() if v}
    return result


def condition(kind: str, true: bool, reason: str = "") -> dict[str, str]:
    result = {"type": kind, "status": "True" if true else "False"}
    if reason:
        result["reason"] = reason
    return result


def object_list(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What ``kubectl get -o json`` prints for several objects."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": list(items),
    }


def object_names(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """``kubectl get -o name``: ``pod/web-0``, ``service/db``..."""
    return [
        f"{RESOURCE_NAMES.get(str(i.get('kind')), str(i.get('kind')).lower())}/"
        f"{i['metadata']['name']}"
        for i in items
    ]


def _json_label(container: LiveContainer | None, key: str) -> Any:
    if container is None:
        return None
    try:
        return json.loads(container.labels.get(key, ""))
    except ValueError:
        return None


def _pruned(value: Any) -> Any:
    """The normalised spec without its empty fields (``command: null``, ``env: []``)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


# -- pods ---------------------------------------------------------------------------------------
def _state(container: LiveContainer) -> dict[str, Any]:
    if container.state == "running":
        return {"running": {"startedAt": timestamp(container.created)}}
    if container.state == "restarting":
        return {"waiting": {"reason": "CrashLoopBackOff"}}
    if container.state == "created":
        if health.start_after(container):
            backoff = health.backoff(container)
            return {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {backoff}s restarting failed container",
                }
            }
        return {"waiting": {"reason": "ContainerCreating"}}
    code = exit_code(container)
    return {
        "terminated": {
            "exitCode": code if code is not None else -1,
            "reason": "Completed" if code == 0 else "Error",
        }
    }


def _container_status(
    name: str,
    image: str,
    container: LiveContainer | None,
    ready: bool,
    docker_restarts: Mapping[str, int],
    waiting: str,
) -> dict[str, Any]:
    if container is None:
        return {
            "name": name,
            "image": image,
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"waiting": {"reason": waiting}},
        }
    return {
        "name": name,
        "image": image or container.image,
        "imageID": container.image,
        "containerID": f"docker://{container.id}",
        "ready": ready,
        "started": container.running,
        "restartCount": health.restarts(container) + docker_restarts.get(container.id, 0),
        "state": _state(container),
    }


def _phase(pod: LivePod, policy: str, initialized: bool) -> str:
    """Pending, Running, Succeeded or Failed, as Kubernetes reckons a pod's phase."""
    if pod.infra is None:
        return "Unknown"
    if not pod.infra.running:
        return "Failed"
    if not initialized or not pod.apps:
        status = pod.status
        return "Failed" if status == "Init:Error" and policy == "Never" else "Pending"
    states = {c.state for c in pod.apps}
    if states <= {"exited", "dead"}:
        if all(exit_code(c) == 0 for c in pod.apps):
            return "Succeeded"
        if policy == "Never":
            return "Failed"
    if states == {"created"}:
        return "Pending"
    return "Running"


def pod_object(
    pod: LivePod, host_address: str = "", docker_restarts: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """A ``Pod``: metadata (with the manifest line and revision it was made from), its
    spec as the reconciler runs it (``nodeName`` is the host), and its status: phase,
    addresses, conditions, a status per container and per init container."""
    restarts = docker_restarts or {}
    stored = _json_label(pod.infra, L.SPEC)
    spec = stored.get("spec", {}) if isinstance(stored, dict) else {}
    first = pod.infra or (pod.apps[0] if pod.apps else None)
    annotations = {
        SOURCE_ANNOTATION: first.labels.get(L.SOURCE, "") if first else "",
        REVISION_ANNOTATION: first.labels.get(L.REVISION, "") if first else "",
    }
    meta = metadata(pod.name, pod.namespace, pod.labels, annotations, pod.created or None)
    if pod.owner.kind != "Pod":
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": pod.owner.kind, "name": pod.owner.name, "controller": True}
        ]
    ready = pod.is_ready
    initialized = not pod.status.startswith(("Init:", "PodInitializing"))
    images = {c.get("name"): c.get("image", "") for c in spec.get("containers", [])}
    by_name = {c.labels.get(L.CONTAINER, ""): c for c in pod.apps}
    waiting = "ContainerCreating" if initialized else "PodInitializing"
    container_statuses = [
        _container_status(
            name,
            images.get(name, ""),
            by_name.get(name),
            name in by_name and health.container_ready(by_name[name], ready),
            restarts,
            waiting,
        )
        for name in (images or by_name)
    ]
    init_images = {c.get("name"): c.get("image", "") for c in spec.get("initContainers", [])}
    inits = {c.labels.get(L.CONTAINER, ""): c for c in pod.inits}
    init_statuses = [
        _container_status(
            name,
            init_images.get(name, ""),
            inits.get(name),
            name in inits and inits[name].state == "exited" and _completed(inits[name]),
            restarts,
            "PodInitializing",
        )
        for name in init_names(pod)
    ]
    status: dict[str, Any] = {
        "phase": _phase(pod, str(spec.get("restartPolicy", "Always")), initialized),
        "hostIP": host_address,
        "podIP": pod.infra.ip_address if pod.infra else "",
        "conditions": [
            condition("PodScheduled", True),
            condition("Initialized", initialized),
            condition("ContainersReady", ready, "" if ready else "ContainersNotReady"),
            condition("Ready", ready, "" if ready else "ContainersNotReady"),
        ],
        "containerStatuses": container_statuses,
    }
    if pod.created:
        status["startTime"] = timestamp(pod.created)
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if pod.status in ("CrashLoopBackOff", "Init:CrashLoopBackOff", "Init:Error"):
        status["reason"] = pod.status
    body_spec: dict[str, Any] = {"nodeName": pod.host}
    body_spec.update(_pruned({k: v for k, v in spec.items() if k != "nodeSelector"}))
    if spec.get("nodeSelector"):
        body_spec["nodeSelector"] = spec["nodeSelector"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": body_spec,
        "status": status,
    }


def _completed(container: LiveContainer) -> bool:
    return exit_code(container) == 0


# -- controllers, services, hosts -----------------------------------------------------------------
def _source_of(manifest: Manifest | None) -> dict[str, str]:
    return {SOURCE_ANNOTATION: str(manifest.source)} if manifest else {}


def rc_object(
    ref: ObjectRef, manifest: Manifest | None, members: Sequence[LivePod]
) -> dict[str, Any]:
    """A ``ReplicationController``: its manifest's spec (when ``--source`` gave it) and the
    status its live pods make: ``replicas``, ``readyReplicas``, ``availableReplicas``."""
    body = manifest.body if manifest else {}
    ready = sum(1 for p in members if p.is_ready)
    created = min((p.created for p in members), default=0) or None
    meta = metadata(
        ref.name,
        ref.namespace,
        dict(manifest.labels) if manifest else None,
        _source_of(manifest),
        created,
    )
    spec = dict(body.get("spec") or {})
    status = {
        "replicas": len(members),
        "fullyLabeledReplicas": len(members),
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


def service_object(
    manifest: Manifest, view: ServiceView | None, endpoints: Sequence[LivePod]
) -> dict[str, Any]:
    """A ``Service``: its manifest's spec with the cluster IP it has, and, in an
    annotation, the ready pods it sends traffic to."""
    spec = dict(manifest.body.get("spec") or {})
    spec.setdefault("type", "ClusterIP")
    if view is not None and view.cluster_ip:
        spec["clusterIP"] = view.cluster_ip
    annotations = {
        **_source_of(manifest),
        "reconciler.io/endpoints": ",".join(f"{p.name}@{p.host}" for p in endpoints),
    }
    meta = metadata(manifest.name, manifest.namespace, dict(manifest.labels), annotations)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def node_object(
    name: str, host: Host | None, state: HostState, version: str, pods: int
) -> dict[str, Any]:
    """A host as a ``Node``: its address, labels, engine and whether it answered."""
    addresses = [{"type": "InternalIP", "address": host.address}] if host else []
    addresses.append({"type": "Hostname", "address": name})
    capacity: dict[str, str] = {}
    if host is not None and host.cpu_nano is not None:
        capacity["cpu"] = f"{host.cpu_nano / 1e9:g}"
    if host is not None and host.memory_bytes is not None:
        capacity["memory"] = str(host.memory_bytes)
    status: dict[str, Any] = {
        "addresses": addresses,
        "conditions": [
            condition("Ready", state.reachable, "" if state.reachable else "EngineUnreachable")
        ],
        "nodeInfo": {"containerRuntimeVersion": f"docker://{version}" if version else ""},
    }
    if capacity:
        status["capacity"] = capacity
    forwarders = sum(1 for c in state.containers if c.labels.get(L.ROLE) == L.ROLE_FORWARDER)
    annotations = {
        HOST_ANNOTATION: host.url if host else "",
        "reconciler.io/pods": str(pods),
        "reconciler.io/forwarders": str(forwarders),
    }
    if state.error:
        annotations["reconciler.io/error"] = state.error
    meta = metadata(name, None, dict(host.labels) if host else None, annotations)
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "status": status}


def claim_object(volume: LiveVolume, bound: bool) -> dict[str, Any]:
    """A claim's Docker volume as a ``PersistentVolumeClaim``: ``Bound`` while its claim is
    in the manifests, else ``Lost`` (kept with its data: ``reconciler.io/status`` says
    ``Orphaned``, as ``get volumes`` does)."""
    annotations = {
        HOST_ANNOTATION: volume.host,
        "reconciler.io/volume": volume.name,
        "reconciler.io/driver": volume.driver,
        "reconciler.io/status": "Bound" if bound else "Orphaned",
    }
    meta = metadata(
        volume.labels.get(L.CLAIM, ""),
        volume.labels.get(L.CLAIM_NAMESPACE, "default"),
        annotations=annotations,
    )
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "status": {"phase": "Bound" if bound else "Lost"},
    }
