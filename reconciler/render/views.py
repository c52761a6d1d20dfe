"""kubectl-style views of live state: rows for ``reconciler get``. Pure.

Rows keep empty cells as ``""`` (``-o json``); ``table_lines`` prints them as ``<none>``,
as kubectl's tables do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core import health
from reconciler.core import labels as L
from reconciler.core.model import HostState, LiveContainer, LiveVolume, Manifest, ObjectRef
from reconciler.core.selectors import Selector
from reconciler.plan.live import group_pods
from reconciler.plan.reload import live_endpoints
from reconciler.source.hosts import Host

#: What an empty cell prints as in ``get`` tables, as in kubectl's.
NONE = "<none>"


def table_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``rows`` as an aligned table: a header, then one line per row.

    An empty cell prints as ``<none>`` so that an empty column never shifts the fields
    after it for awk or ``cut``; the rows themselves keep ``""`` (``-o json``).
    """
    if not rows:
        return ["No resources found."]
    columns = list(rows[0])
    cells = [[str(row[c]) or NONE for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "   ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    return lines


@dataclass(frozen=True, slots=True)
class LivePod:
    """The containers of one pod on one host."""

    host: str
    namespace: str
    name: str
    owner: ObjectRef
    labels: Mapping[str, str]
    infra: LiveContainer | None
    apps: tuple[LiveContainer, ...]
    inits: tuple[LiveContainer, ...] = ()  # init containers, in the order they run

    @property
    def containers(self) -> tuple[LiveContainer, ...]:
        return ((self.infra,) if self.infra else ()) + self.inits + self.apps

    @property
    def is_ready(self) -> bool:
        """Ready for traffic, as Service endpoints count it (``core.health.pod_ready``)."""
        return health.pod_ready(self.containers)

    @property
    def ready(self) -> tuple[int, int]:
        """Ready app containers, of those the pod's spec has (kubectl's READY ``1/2``)."""
        pod_is_ready = self.is_ready
        ready = sum(1 for c in self.apps if health.container_ready(c, pod_is_ready))
        spec = _json_label(self.infra, L.SPEC) if self.infra else None
        declared = spec.get("spec", {}).get("containers", []) if isinstance(spec, dict) else []
        return ready, max(len(self.apps), len(declared) if isinstance(declared, list) else 0)

    @property
    def restarts(self) -> int:
        """Restarts the reconciler made (labels) of its app and init containers."""
        return sum(health.restarts(c) for c in self.inits + self.apps)

    @property
    def status(self) -> str:
        if self.infra is None or not self.infra.running:
            return "Terminating" if self.infra is None else "Error"
        initializing = _init_status(self)
        if initializing:
            return initializing
        states = [c.state for c in self.apps]
        if not states:
            return "Pending"
        if all(s == "running" for s in states):
            return "Running"
        if any(s == "restarting" or _held(c) for s, c in zip(states, self.apps, strict=True)):
            return "CrashLoopBackOff"
        if any(s == "created" for s in states):
            return "ContainerCreating"
        codes = [_exit_code(c) for c in self.apps if c.state == "exited"]
        if codes and all(code == 0 for code in codes) and len(codes) == len(states):
            return "Completed"
        return "Error"

    @property
    def created(self) -> int:
        return min((c.created for c in self.containers), default=0)


def _exit_code(container: LiveContainer) -> int | None:
    from reconciler.plan.live import exit_code

    return exit_code(container)


def _held(container: LiveContainer) -> bool:
    """A restarted instance the reconciler holds until its back-off ends."""
    return container.state == "created" and health.start_after(container) > 0


def init_names(pod: LivePod) -> list[str]:
    """The pod's init containers by name, in order, from the spec its infra carries."""
    spec = _json_label(pod.infra, L.SPEC) if pod.infra else None
    inits = spec.get("spec", {}).get("initContainers", []) if isinstance(spec, dict) else []
    return [str(c.get("name")) for c in inits if isinstance(c, dict)]


def _json_label(container: LiveContainer, key: str) -> Any:
    try:
        return json.loads(container.labels.get(key, ""))
    except ValueError:
        return None


def _init_status(pod: LivePod) -> str:
    """kubectl's init statuses: ``Init:1/2`` while they run, ``Init:Error`` (or
    ``Init:CrashLoopBackOff`` while a restart is held) when one failed, then
    ``PodInitializing`` until the app containers exist; "" once initialized."""
    names = init_names(pod)
    if not names or pod.apps:
        return ""
    found = {c.labels.get(L.CONTAINER, ""): c for c in pod.inits}
    for done, name in enumerate(names):
        container = found.get(name)
        if container is None or container.state in ("running", "restarting"):
            return f"Init:{done}/{len(names)}"
        if _held(container):
            return "Init:CrashLoopBackOff"
        if container.state == "created":
            return f"Init:{done}/{len(names)}"
        if _exit_code(container) != 0:
            return "Init:Error"
    return "PodInitializing"


def pod_labels(containers: Iterable[LiveContainer]) -> dict[str, str]:
    for c in containers:
        raw = c.labels.get(L.POD_LABELS)
        if raw:
            try:
                value = json.loads(raw)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {}


def live_pods(
    states: Mapping[str, HostState],
    selector: Selector | None = None,
    *,
    forwarders: bool = False,
) -> list[LivePod]:
    """Every pod on every reachable host, optionally filtered by a label selector.

    Service forwarders are pods of their own (owned by the Service, labelled like it);
    they are left out unless ``forwarders`` is set, as ``get pods`` shows workloads only.
    """
    pods = []
    for host in sorted(states):
        for (namespace, name), containers in group_pods(states[host].containers).items():
            is_forwarder = any(c.labels.get(L.ROLE) == L.ROLE_FORWARDER for c in containers)
            if is_forwarder and not forwarders:
                continue
            labels = pod_labels(containers)
            if selector is not None and not selector.matches(labels):
                continue
            infra = next((c for c in containers if c.labels.get(L.ROLE) in _INFRA_ROLES), None)
            inits = _in_order(c for c in containers if c.labels.get(L.ROLE) == L.ROLE_INIT)
            apps = tuple(
                c
                for c in containers
                if c.labels.get(L.ROLE) not in _INFRA_ROLES and c.labels.get(L.ROLE) != L.ROLE_INIT
            )
            first = containers[0].labels
            owner = ObjectRef(
                first.get(L.OWNER_KIND, "Pod"),
                first.get(L.OWNER_NAMESPACE, namespace),
                first.get(L.OWNER_NAME, name),
            )
            pods.append(LivePod(host, namespace, name, owner, labels, infra, apps, inits))
    return sorted(pods, key=lambda p: (p.namespace, p.name, p.host))


_INFRA_ROLES = (L.ROLE_INFRA, L.ROLE_FORWARDER)


def _in_order(inits: Iterable[LiveContainer]) -> tuple[LiveContainer, ...]:
    """Init containers in the order they ran (created one after the other)."""
    return tuple(sorted(inits, key=lambda c: (c.created, c.labels.get(L.CONTAINER, ""))))


def age(created: int, now: float) -> str:
    """kubectl's compact age: 45s, 12m, 5h, 3d."""
    seconds = max(0, int(now - created))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def pod_rows(
    pods: Sequence[LivePod], now: float, restarts: Mapping[str, int], wide: bool
) -> list[dict[str, Any]]:
    rows = []
    for pod in pods:
        ready, total = pod.ready
        row: dict[str, Any] = {
            "NAME": pod.name if pod.namespace == "default" else f"{pod.namespace}/{pod.name}",
            "READY": f"{ready}/{total}",
            "STATUS": pod.status,
            "RESTARTS": sum(restarts.get(c.id, 0) for c in pod.apps) + pod.restarts,
            "AGE": age(pod.created, now),
            "HOST": pod.host,
        }
        if wide:
            row["IP"] = pod.infra.ip_address if pod.infra else ""
            row["OWNER"] = f"{pod.owner.kind}/{pod.owner.name}"
            row["IMAGES"] = ",".join(c.image for c in pod.apps)
        rows.append(row)
    return rows


def rc_rows(
    pods: Sequence[LivePod], manifests: Sequence[Manifest], now: float, wide: bool
) -> list[dict[str, Any]]:
    """ReplicationControllers: DESIRED comes from the manifests when a source is given."""
    wanted: dict[ObjectRef, Manifest] = {
        m.ref: m for m in manifests if m.kind == "ReplicationController"
    }
    owners: dict[ObjectRef, list[LivePod]] = {}
    for pod in pods:
        if pod.owner.kind == "ReplicationController":
            owners.setdefault(pod.owner, []).append(pod)
    rows = []
    for ref in sorted(set(owners) | set(wanted)):
        members = owners.get(ref, [])
        manifest = wanted.get(ref)
        spec = manifest.body.get("spec", {}) if manifest else {}
        row: dict[str, Any] = {
            "NAME": ref.name if ref.namespace == "default" else f"{ref.namespace}/{ref.name}",
            "DESIRED": spec.get("replicas", 1) if manifest else "?",
            "CURRENT": len(members),
            "READY": sum(1 for p in members if p.is_ready),
            "AGE": age(min(p.created for p in members), now) if members else "-",
            "HOSTS": ",".join(sorted({p.host for p in members})),
        }
        if wide:
            row["CONTAINERS"] = ",".join(
                sorted({c.labels.get(L.CONTAINER, "") for p in members for c in p.apps})
            )
            row["IMAGES"] = ",".join(sorted({c.image for p in members for c in p.apps}))
            selector = spec.get("selector") or {}
            row["SELECTOR"] = ",".join(f"{k}={v}" for k, v in selector.items())
        rows.append(row)
    return rows


@dataclass(frozen=True, slots=True)
class ServiceView:
    """What the forwarders of one Service say: its address and, per host, its endpoints."""

    cluster_ip: str
    endpoints: Mapping[str, tuple[str, ...]]  # host -> address:port of each backend
    published: tuple[str, ...]


def forwarder_views(states: Mapping[str, HostState]) -> dict[ObjectRef, ServiceView]:
    """Read every Service's forwarders (their spec label) from the live state."""
    found: dict[ObjectRef, dict[str, Any]] = {}
    for host in sorted(states):
        for c in states[host].containers:
            if c.labels.get(L.ROLE) != L.ROLE_FORWARDER:
                continue
            ref = ObjectRef(
                "Service", c.labels.get(L.OWNER_NAMESPACE, ""), c.labels.get(L.OWNER_NAME, "")
            )
            try:
                spec = json.loads(c.labels.get(L.SPEC, "{}")).get("spec", {})
            except (ValueError, AttributeError):
                spec = {}
            entry = found.setdefault(
                ref, {"ip": c.labels.get(L.CLUSTER_IP, ""), "endpoints": {}, "published": []}
            )
            ports = spec.get("ports", []) if isinstance(spec, dict) else []
            # what it routes to now: its newest reload's record, else what it was made with
            routes = live_endpoints(c, states[host].markers)
            entry["endpoints"][host] = tuple(e for _, _, eps in routes for e in eps)
            entry["published"].extend(
                e for p in ports if isinstance(p, dict) for e in p.get("published", [])
            )
    return {
        ref: ServiceView(e["ip"], e["endpoints"], tuple(dict.fromkeys(e["published"])))
        for ref, e in found.items()
    }


def service_rows(
    manifests: Sequence[Manifest],
    pods: Sequence[LivePod],
    wide: bool,
    forwarders: Mapping[ObjectRef, ServiceView] | None = None,
) -> list[dict[str, Any]]:
    """Services from the manifests, with the live pods they select and their forwarders."""
    rows = []
    forwarders = forwarders or {}
    for m in sorted((m for m in manifests if m.kind == "Service"), key=lambda m: m.ref):
        spec = m.body.get("spec", {})
        selector = spec.get("selector") or {}
        endpoints = [
            p
            for p in pods
            if p.namespace == m.namespace
            and selector
            and all(p.labels.get(k) == v for k, v in selector.items())
            and p.is_ready
        ]
        ports = ",".join(
            f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
            f"{p.get('protocol', 'TCP')}"
            for p in spec.get("ports", [])
        )
        view = forwarders.get(m.ref)
        row: dict[str, Any] = {
            "NAME": m.name if m.namespace == "default" else f"{m.namespace}/{m.name}",
            "TYPE": spec.get("type", "ClusterIP"),
            "CLUSTER-IP": view.cluster_ip if view else "<none>",
            "PORTS": ports,
            "ENDPOINTS": len(endpoints),
            "FORWARDERS": len(view.endpoints) if view else 0,
            "SELECTOR": ",".join(f"{k}={v}" for k, v in selector.items()),
        }
        if wide:
            row["PODS"] = ",".join(f"{p.name}@{p.host}" for p in endpoints)
            row["ROUTES"] = (
                ";".join(f"{h}->{','.join(e) or '-'}" for h, e in sorted(view.endpoints.items()))
                if view
                else ""
            )
            row["PUBLISHED"] = ",".join(view.published) if view else ""
            row["EXTERNAL-IP"] = ",".join(spec.get("externalIPs", []) + spec.get("publicIPs", []))
        rows.append(row)
    return rows


def _format_cpu(nano: int) -> str:
    return f"{nano / 1e9:g}"


def _format_memory(size: int) -> str:
    for unit, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.3g}{unit}"
    return str(size)


def pod_requests(containers: Iterable[LiveContainer]) -> tuple[int, int]:
    """CPU (nano) and memory (bytes) a live pod requests, from the spec its infra carries."""
    from reconciler.desire.pods import spec_requests

    for c in containers:
        if c.labels.get(L.ROLE) == L.ROLE_INFRA and c.labels.get(L.SPEC):
            try:
                spec = json.loads(c.labels[L.SPEC]).get("spec", {})
                return spec_requests(spec)
            except (ValueError, AttributeError, TypeError, ArithmeticError):
                return 0, 0
    return 0, 0


def host_rows(
    states: Mapping[str, HostState],
    hosts: Sequence[Host],
    versions: Mapping[str, str],
    wide: bool = False,
) -> list[dict[str, Any]]:
    """One row per configured host: reachable, engine, pods, forwarders, capacity used."""
    by_name = {h.name: h for h in hosts}
    rows = []
    for name in sorted(set(states) | set(by_name)):
        state = states.get(name, HostState(name, False, error="not observed"))
        host = by_name.get(name)
        pods = group_pods(state.containers)
        workload = {
            key: cs
            for key, cs in pods.items()
            if not any(c.labels.get(L.ROLE) == L.ROLE_FORWARDER for c in cs)
        }
        cpu = memory = 0
        for containers in workload.values():
            pod_cpu, pod_memory = pod_requests(containers)
            cpu, memory = cpu + pod_cpu, memory + pod_memory
        cpu_cap = host.cpu_nano if host else None
        mem_cap = host.memory_bytes if host else None
        row: dict[str, Any] = {
            "NAME": name,
            "ADDRESS": host.address if host else "",
            "REACHABLE": "yes" if state.reachable else "no",
            "ENGINE": versions.get(name, ""),
            "PODS": len(workload),
            "FORWARDERS": len(pods) - len(workload),
            "CPU": _format_cpu(cpu) + (f"/{_format_cpu(cpu_cap)}" if cpu_cap else ""),
            "MEMORY": _format_memory(memory) + (f"/{_format_memory(mem_cap)}" if mem_cap else ""),
            "ERROR": state.error,
        }
        if wide:
            row["URL"] = host.url if host else ""
            row["LABELS"] = ",".join(
                f"{k}={v}" for k, v in sorted((host.labels if host else {}).items())
            )
            row["CONTAINERS"] = len(state.containers)
        rows.append(row)
    return rows


def claim_volumes(
    states: Mapping[str, HostState], pods: Sequence[LivePod] | None = None
) -> list[LiveVolume]:
    """The claims' volumes on every host: all of them, or those ``pods`` mount (read from
    the spec their infra containers keep)."""
    wanted: set[tuple[str, str, str]] | None = None
    if pods is not None:
        wanted = set()
        for pod in pods:
            spec_text = pod.infra.labels.get(L.SPEC, "{}") if pod.infra else "{}"
            try:
                spec = json.loads(spec_text).get("spec", {})
            except (ValueError, AttributeError):
                continue
            for volume in spec.get("volumes", []) if isinstance(spec, dict) else []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:
                    wanted.add((pod.host, pod.namespace, str(claim)))
    return [
        volume
        for host in sorted(states)
        for volume in states[host].volumes
        if volume.labels.get(L.CLAIM)
        and (
            wanted is None
            or (host, volume.labels.get(L.CLAIM_NAMESPACE, ""), volume.labels[L.CLAIM]) in wanted
        )
    ]
