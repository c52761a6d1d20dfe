"""From validated manifests to the pods that should run, and where. Pure.

A Pod becomes one DesiredPod; a ReplicationController becomes ``replicas`` pods named
``<rc>-<ordinal>``. Ordinals are stable identities: a rerun, a crash mid-apply or a restart
of the tool computes the same names, so it can never duplicate or lose a replica.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import (
    DesiredContainer,
    DesiredPod,
    Diagnostic,
    HostState,
    Location,
    Manifest,
    MountSpec,
    NetworkSpec,
    ObjectRef,
    PortBinding,
    Severity,
    VolumeSpec,
)
from reconciler.core.quantity import cpu_to_nano, memory_to_bytes, parse_quantity
from reconciler.desire.hostmemory import HostRecord, within_grace
from reconciler.desire.services import (
    FORWARDED_PROTOCOLS,
    DesiredService,
    allocate,
    cluster_network,
    endpoints_for,
    forwarder_args,
    ready_backends,
    service_env,
)
from reconciler.forwarder.build import FORWARDER_PATH, default_forwarder_image
from reconciler.source.hosts import Host

DEFAULT_INFRA_IMAGE = "reconciler/pause:1"


@dataclass(frozen=True, slots=True)
class Settings:
    """What the desired state depends on besides the manifests."""

    instance: str = L.DEFAULT_INSTANCE
    infra_image: str = DEFAULT_INFRA_IMAGE
    forwarder_image: str = field(default_factory=default_forwarder_image)
    cluster_cidr: str = ""  # the instance network's subnet; "" derives one from the name
    host_grace: float = 60.0  # seconds an unreachable host keeps its replicas

    @property
    def network(self) -> NetworkSpec:
        return cluster_network(self.instance, self.cluster_cidr)


@dataclass
class DesiredState:
    """Every pod that should run, by host, and the problems that kept some from placement."""

    pods: list[DesiredPod] = field(default_factory=list)  # workload pods and forwarders
    problems: list[Diagnostic] = field(default_factory=list)
    replicas: dict[ObjectRef, int] = field(default_factory=dict)  # RC -> wanted replicas
    services: list[DesiredService] = field(default_factory=list)
    host_notes: dict[str, str] = field(default_factory=dict)  # unreachable host -> what waits

    def by_host(self) -> dict[str, dict[tuple[str, str], DesiredPod]]:
        result: dict[str, dict[tuple[str, str], DesiredPod]] = {}
        for pod in self.pods:
            result.setdefault(pod.host, {})[pod.key] = pod
        return result


def docker_name(instance: str, namespace: str, pod: str, part: str) -> str:
    """The Docker name of a pod's container or volume: unique per host and instance."""
    return f"{instance}_{namespace}_{pod}_{part}"


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for ``:latest`` or untagged images, else IfNotPresent."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def normalise_pod_spec(spec: Mapping[str, Any], hostname: str) -> dict[str, Any]:
    """The pod spec with Kubernetes' defaults filled in and unhonoured fields dropped.

    This is what the spec hash covers, so a change to an ignored field (a livenessProbe)
    never recreates a pod, while a change to anything we act on always does.
    """
    containers = []
    for c in _l(spec.get("containers")):
        c = _m(c)
        image = str(c.get("image", ""))
        resources = _m(c.get("resources"))
        containers.append(
            {
                "name": c.get("name"),
                "image": image,
                "imagePullPolicy": c.get("imagePullPolicy") or default_pull_policy(image),
                "command": list(c["command"]) if "command" in c else None,
                "args": list(c["args"]) if "args" in c else None,
                "env": [
                    {"name": e.get("name"), "value": str(e.get("value", ""))}
                    for e in map(_m, _l(c.get("env")))
                    if "valueFrom" not in e
                ],
                "ports": [
                    {
                        "containerPort": p.get("containerPort"),
                        "protocol": p.get("protocol", "TCP"),
                        "hostPort": p.get("hostPort"),
                        "hostIP": p.get("hostIP", ""),
                        "name": p.get("name", ""),
                    }
                    for p in map(_m, _l(c.get("ports")))
                ],
                "workingDir": c.get("workingDir", ""),
                "resources": {
                    kind: {
                        r: str(v)
                        for r, v in _m(resources.get(kind)).items()
                        if r in ("cpu", "memory")
                    }
                    for kind in ("limits", "requests")
                },
                "volumeMounts": [
                    {
                        "name": m.get("name"),
                        "mountPath": m.get("mountPath"),
                        "readOnly": bool(m.get("readOnly", False)),
                    }
                    for m in map(_m, _l(c.get("volumeMounts")))
                ],
            }
        )
    volumes = []
    for v in map(_m, _l(spec.get("volumes"))):
        if "emptyDir" in v:
            empty = _m(v["emptyDir"])
            volumes.append(
                {
                    "name": v.get("name"),
                    "emptyDir": {
                        "medium": empty.get("medium", ""),
                        "sizeLimit": str(empty["sizeLimit"]) if "sizeLimit" in empty else None,
                    },
                }
            )
        elif "hostPath" in v:
            volumes.append(
                {"name": v.get("name"), "hostPath": {"path": _m(v["hostPath"]).get("path")}}
            )
    return {
        "containers": containers,
        "volumes": volumes,
        "restartPolicy": spec.get("restartPolicy", "Always"),
        "hostname": hostname,
        "nodeSelector": dict(_m(spec.get("nodeSelector"))),
    }


def _quantity_or_none(value: Any, convert: Any) -> int | None:
    return None if value in (None, "") else int(convert(value))


def _containers(
    settings: Settings,
    namespace: str,
    pod_name: str,
    spec: Mapping[str, Any],
    manifest: Manifest,
    spec_path: tuple[str | int, ...],
    services: Sequence[DesiredService] = (),
    publish_on: str = "",
) -> tuple[DesiredContainer, ...]:
    """The infra container and the app containers of one pod.

    ``publish_on``: with several hosts, every declared port without a hostPort is
    published on that address at a port Docker picks, so that Service forwarders on other
    hosts reach the pod. Service env vars are added here, outside the spec hash: adding a
    Service never recreates running pods (as in Kubernetes, only new containers see it).
    """
    hostname = spec["hostname"]
    published: list[PortBinding] = []
    apps: list[DesiredContainer] = []
    volumes = {v["name"]: v for v in spec["volumes"]}
    for index, c in enumerate(spec["containers"]):
        for p in c["ports"]:
            if p["hostPort"] is not None:
                published.append(
                    PortBinding(p["containerPort"], p["protocol"], p["hostPort"], p["hostIP"])
                )
            elif publish_on and p["protocol"] != "SCTP":
                published.append(PortBinding(p["containerPort"], p["protocol"], 0, publish_on))
        limits, requests = c["resources"]["limits"], c["resources"]["requests"]
        cpu_request = requests.get("cpu")
        mounts = tuple(
            MountSpec(m["name"], m["mountPath"], m["readOnly"])
            for m in c["volumeMounts"]
            if m["name"] in volumes
        )
        apps.append(
            DesiredContainer(
                docker_name=docker_name(settings.instance, namespace, pod_name, c["name"]),
                container=c["name"],
                role=L.ROLE_APP,
                image=c["image"],
                pull_policy=c["imagePullPolicy"],
                entrypoint=tuple(c["command"]) if c["command"] is not None else None,
                cmd=tuple(c["args"]) if c["args"] is not None else None,
                env=service_env(services, namespace, (e["name"] for e in c["env"]))
                + tuple((e["name"], e["value"]) for e in c["env"]),
                working_dir=c["workingDir"],
                nano_cpus=_quantity_or_none(limits.get("cpu"), cpu_to_nano),
                cpu_shares=(
                    max(2, int(parse_quantity(cpu_request) * 1024)) if cpu_request else None
                ),
                memory_bytes=_quantity_or_none(limits.get("memory"), memory_to_bytes),
                memory_reservation=_quantity_or_none(requests.get("memory"), memory_to_bytes),
                mounts=mounts,
                restart_policy=spec["restartPolicy"],
                source=manifest.locate(spec_path + ("containers", index)),
            )
        )
    infra = DesiredContainer(
        docker_name=docker_name(settings.instance, namespace, pod_name, L.INFRA_CONTAINER),
        container=L.INFRA_CONTAINER,
        role=L.ROLE_INFRA,
        image=settings.infra_image,
        pull_policy="IfNotPresent",
        ports=tuple(published),
        hostname=hostname,
        restart_policy="Always",
        source=manifest.locate(spec_path),
    )
    return (infra, *apps)


def _volume_specs(
    settings: Settings, namespace: str, pod_name: str, spec: Mapping[str, Any]
) -> tuple[VolumeSpec, ...]:
    result = []
    for v in spec["volumes"]:
        if "emptyDir" in v:
            size = v["emptyDir"]["sizeLimit"]
            result.append(
                VolumeSpec(
                    name=v["name"],
                    source="emptyDir",
                    docker_name=docker_name(settings.instance, namespace, pod_name, v["name"]),
                    medium=v["emptyDir"]["medium"],
                    size_bytes=memory_to_bytes(size) if size else None,
                )
            )
        else:
            result.append(VolumeSpec(v["name"], "hostPath", host_path=v["hostPath"]["path"]))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class _Context:
    """What every pod of one computation shares."""

    settings: Settings
    network: NetworkSpec
    services: Sequence[DesiredService]
    addresses: Mapping[str, str]  # host -> address
    multi_host: bool


def _pod(
    ctx: _Context,
    manifest: Manifest,
    owner: ObjectRef,
    name: str,
    pod_labels: Mapping[str, str],
    raw_spec: Mapping[str, Any],
    spec_path: tuple[str | int, ...],
    host: str,
    replica: int | None,
) -> DesiredPod:
    settings = ctx.settings
    hostname = str(raw_spec.get("hostname") or name)[:63].rstrip("-.")
    spec = normalise_pod_spec(raw_spec, hostname)
    publish_on = ctx.addresses.get(host, "") if ctx.multi_host else ""
    hashed = {
        "spec": spec,
        "owner": [owner.kind, owner.namespace, owner.name],
        "labels": dict(pod_labels),
        "infraImage": settings.infra_image,
        "network": [ctx.network.name, ctx.network.subnet],
        "publishPorts": bool(publish_on),  # not the address: the hash stays host-independent
    }
    return DesiredPod(
        namespace=owner.namespace,
        name=name,
        owner=owner,
        host=host,
        labels=dict(pod_labels),
        spec=spec,
        spec_hash=L.spec_hash(hashed),
        containers=_containers(
            settings,
            owner.namespace,
            name,
            spec,
            manifest,
            spec_path,
            ctx.services,
            publish_on,
        ),
        volumes=_volume_specs(settings, owner.namespace, name, spec),
        restart_policy=spec["restartPolicy"],
        source=manifest.source,
        replica=replica,
        network=ctx.network,
    )


def spec_requests(spec: Mapping[str, Any]) -> tuple[int, int]:
    """Total cpu (nano) and memory (bytes) requested by a pod, for capacity placement."""
    cpu = memory = 0
    for c in map(_m, _l(spec.get("containers"))):
        requests = _m(_m(c.get("resources")).get("requests"))
        limits = _m(_m(c.get("resources")).get("limits"))
        cpu_value = requests.get("cpu", limits.get("cpu"))
        memory_value = requests.get("memory", limits.get("memory"))
        if cpu_value is not None:
            cpu += cpu_to_nano(cpu_value)
        if memory_value is not None:
            memory += memory_to_bytes(memory_value)
    return cpu, memory


class _Placer:
    """Deterministic placement: stay where you are if still eligible, else least loaded.

    Eligible hosts match the pod's nodeSelector, are reachable, and have capacity left for
    its requests. Ties go to the host listed first, so equal inputs give equal outputs.
    """

    def __init__(
        self,
        hosts: Sequence[Host],
        live: Mapping[str, HostState],
        pinned: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.hosts = list(hosts)
        self.live = live
        self.pinned = dict(pinned or {})  # pods held on an unreachable host
        self.load: dict[str, int] = {h.name: 0 for h in hosts}
        self.cpu: dict[str, int] = {h.name: 0 for h in hosts}
        self.memory: dict[str, int] = {h.name: 0 for h in hosts}
        self.current: dict[tuple[str, str], list[str]] = {}
        for state in live.values():
            for c in state.containers:
                if c.labels.get(L.ROLE) == L.ROLE_INFRA:
                    key = (c.labels.get(L.POD_NAMESPACE, ""), c.labels.get(L.POD, ""))
                    self.current.setdefault(key, []).append(state.host)

    def _reachable(self, host: Host) -> bool:
        state = self.live.get(host.name)
        return state is None or state.reachable

    def eligible(self, node_selector: Mapping[str, str], cpu: int, memory: int) -> list[Host]:
        result = []
        for host in self.hosts:
            if any(host.labels.get(k) != v for k, v in node_selector.items()):
                continue
            if not self._reachable(host):
                continue
            if host.cpu_nano is not None and self.cpu[host.name] + cpu > host.cpu_nano:
                continue
            if (
                host.memory_bytes is not None
                and self.memory[host.name] + memory > host.memory_bytes
            ):
                continue
            result.append(host)
        return result

    def place(
        self, key: tuple[str, str], node_selector: Mapping[str, str], cpu: int, memory: int
    ) -> str | None:
        held = self.pinned.get(key)
        if held is not None:
            self.load[held] += 1
            self.cpu[held] += cpu
            self.memory[held] += memory
            return held
        candidates = self.eligible(node_selector, cpu, memory)
        if not candidates:
            return None
        names = [h.name for h in candidates]
        chosen = next((h for h in self.current.get(key, []) if h in names), None)
        if chosen is None:
            chosen = min(names, key=lambda n: (self.load[n], names.index(n)))
        self.load[chosen] += 1
        self.cpu[chosen] += cpu
        self.memory[chosen] += memory
        return chosen


def _held_pods(
    manifests: Sequence[Manifest],
    live: Mapping[str, HostState],
    memory: Mapping[str, HostRecord],
    now: float,
    grace: float,
) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """Pods that stay placed on an unreachable host, and a note per such host.

    Within the grace period every pod it ran stays; after it, only bare Pods do (they are
    never moved), and the replicas of ReplicationControllers go to the other hosts.
    """
    bare = {(m.namespace, m.name) for m in manifests if m.kind == "Pod"}
    held: dict[tuple[str, str], str] = {}
    notes: dict[str, str] = {}
    for host, state in sorted(live.items()):
        record = memory.get(host)
        if state.reachable or record is None or record.down_since is None:
            continue
        away = max(0.0, now - record.down_since)
        if within_grace(record, now, grace):
            kept = list(record.pods)
            notes[host] = (
                f"down for {away:.0f}s; its {len(kept)} pod(s) stay placed there until the "
                f"host grace period ends in {grace - away:.0f}s"
            )
        else:
            kept = [key for key in record.pods if key in bare]
            moved = len(record.pods) - len(kept)
            notes[host] = (
                f"down for {away:.0f}s, past the host grace period ({grace:.0f}s): "
                f"{moved} replica(s) placed on other hosts"
                + (f"; bare pod(s) {', '.join(k[1] for k in kept)} wait for it" if kept else "")
            )
        for key in kept:
            held.setdefault(key, host)
    return held, notes


def compute_desired(
    manifests: Iterable[Manifest],
    hosts: Sequence[Host],
    live: Mapping[str, HostState] | None = None,
    settings: Settings | None = None,
    host_memory: Mapping[str, HostRecord] | None = None,
    now: float = 0.0,
) -> DesiredState:
    """All pods that should run, placed on hosts. Manifests must already be valid.

    ``host_memory`` (hostmemory.remember) and ``now`` decide what an unreachable host keeps.
    """
    settings = settings or Settings()
    live = live or {}
    manifests = list(manifests)
    held, notes = _held_pods(manifests, live, host_memory or {}, now, settings.host_grace)
    placer = _Placer(hosts, live, held)
    state = DesiredState(host_notes=notes)
    network = settings.network
    state.services, service_problems = allocate(manifests, network, live)
    state.problems.extend(service_problems)
    ctx = _Context(
        settings=settings,
        network=network,
        services=state.services,
        addresses={h.name: h.address for h in hosts},
        multi_host=len(hosts) > 1,
    )
    ordered = sorted(
        (m for m in manifests if m.kind in ("Pod", "ReplicationController")),
        key=lambda m: (m.namespace, m.name, m.kind),
    )
    # Bare pods first: they are pinned where they are; replicas can go anywhere.
    ordered.sort(key=lambda m: m.kind != "Pod")
    Candidate = tuple[str, Mapping[str, Any], Mapping[str, Any], tuple[str | int, ...], int | None]
    for manifest in ordered:
        owner = manifest.ref
        candidates: list[Candidate]
        if manifest.kind == "Pod":
            candidates = [
                (manifest.name, manifest.labels, _m(manifest.body["spec"]), ("spec",), None)
            ]
        else:
            spec = _m(manifest.body["spec"])
            template = _m(spec["template"])
            labels = _m(_m(template.get("metadata")).get("labels"))
            replicas = int(spec.get("replicas", 1))
            state.replicas[owner] = replicas
            candidates = [
                (
                    f"{manifest.name}-{i}",
                    labels,
                    _m(template["spec"]),
                    ("spec", "template", "spec"),
                    i,
                )
                for i in range(replicas)
            ]
        for name, pod_labels, raw_spec, spec_path, replica in candidates:
            cpu, memory = spec_requests(raw_spec)
            node_selector = {str(k): str(v) for k, v in _m(raw_spec.get("nodeSelector")).items()}
            host = placer.place((owner.namespace, name), node_selector, cpu, memory)
            if host is None:
                state.problems.append(_unplaceable(manifest, name, node_selector, spec_path))
                continue
            state.pods.append(
                _pod(ctx, manifest, owner, name, pod_labels, raw_spec, spec_path, host, replica)
            )
    state.pods.extend(_forwarders(ctx, hosts, live))
    state.problems.extend(_host_port_conflicts(state.pods))
    return state


def forwarder_pod_name(service: str) -> str:
    """A name no Pod can have ('_' is not allowed in pod names): no collision with pods."""
    return f"svc_{service}"


def _forwarders(
    ctx: _Context, hosts: Sequence[Host], live: Mapping[str, HostState]
) -> list[DesiredPod]:
    """One forwarder per Service with an address, on every host not known to be down.

    Endpoints come from the live state: pods that run now. ``apply`` re-observes after
    changing pods, so a forwarder follows its backends within the same apply.
    """
    backends = ready_backends(live)
    result = []
    for host in hosts:
        state = live.get(host.name)
        if state is not None and not state.reachable:
            continue
        for service in ctx.services:
            if service.cluster_ip:
                result.append(_forwarder(ctx, service, host, backends))
    return result


def _forwarder(
    ctx: _Context, service: DesiredService, host: Host, backends: Sequence[Any]
) -> DesiredPod:
    settings = ctx.settings
    ports: list[dict[str, Any]] = []
    listeners: list[tuple[str, int, list[str]]] = []
    bindings: list[PortBinding] = []
    for port in service.ports:
        if port.protocol not in FORWARDED_PROTOCOLS:
            continue
        endpoints = endpoints_for(service, port, backends, host.name, ctx.addresses)
        published: list[int] = []
        if service.type in ("NodePort", "LoadBalancer") and port.node_port:
            published.append(port.node_port)
        if service.type == "LoadBalancer" or host.address in service.external_ips:
            published.append(port.port)
        for host_port in dict.fromkeys(published):
            bindings.append(PortBinding(port.port, port.protocol, host_port, host.address))
        listeners.append((port.protocol, port.port, endpoints))
        ports.append(
            {
                "port": port.port,
                "protocol": port.protocol,
                "targetPort": port.target,
                "published": [f"{host.address}:{p}" for p in dict.fromkeys(published)],
                "endpoints": endpoints,
            }
        )
    name = forwarder_pod_name(service.ref.name)
    spec = {"clusterIP": service.cluster_ip, "ports": ports}
    hashed = {
        "forwarder": spec,
        "aliases": list(service.aliases()),
        "labels": dict(service.labels),
        "image": settings.forwarder_image,
        "network": [ctx.network.name, ctx.network.subnet],
    }
    container = DesiredContainer(
        docker_name=docker_name(settings.instance, service.ref.namespace, name, L.INFRA_CONTAINER),
        container=L.INFRA_CONTAINER,
        role=L.ROLE_FORWARDER,
        image=settings.forwarder_image,
        pull_policy="IfNotPresent",
        entrypoint=(FORWARDER_PATH,),
        cmd=forwarder_args(listeners),
        ports=tuple(bindings),
        restart_policy="Always",
        source=service.source,
        ipv4_address=service.cluster_ip,
        aliases=service.aliases(),
    )
    return DesiredPod(
        namespace=service.ref.namespace,
        name=name,
        owner=service.ref,
        host=host.name,
        labels=dict(service.labels),
        spec=spec,
        spec_hash=L.spec_hash(hashed),
        containers=(container,),
        volumes=(),
        restart_policy="Always",
        source=service.source,
        network=ctx.network,
    )


def _unplaceable(
    manifest: Manifest, pod: str, node_selector: Mapping[str, str], spec_path: tuple[str | int, ...]
) -> Diagnostic:
    wanted = ",".join(f"{k}={v}" for k, v in node_selector.items())
    why = (
        f"no reachable host matches nodeSelector {wanted} with capacity left"
        if wanted
        else ("no reachable host has capacity left for its requests")
    )
    return Diagnostic(
        Severity.ERROR,
        manifest.locate(spec_path),
        f"pod {pod} cannot be placed: {why}",
        kind=manifest.kind,
        name=manifest.name,
    )


def _host_port_conflicts(pods: list[DesiredPod]) -> list[Diagnostic]:
    """Two pods on one host cannot publish the same hostPort (podman #15942's trap)."""
    used: dict[tuple[str, str, int, str], DesiredPod] = {}
    problems = []
    for pod in pods:
        for binding in pod.containers[0].ports:
            if not binding.host_port:
                continue  # a port Docker picks never conflicts
            key = (pod.host, binding.host_ip, binding.host_port, binding.protocol)
            other = used.get(key)
            if other is not None:
                problems.append(
                    Diagnostic(
                        Severity.ERROR,
                        pod.containers[0].source or pod.source,
                        f"pods {other.name} and {pod.name} both publish hostPort "
                        f"{binding.host_port}/{binding.protocol} on host {pod.host}: add hosts "
                        "or drop hostPort (replicas of one pod cannot share a host port)",
                        kind=pod.owner.kind,
                        name=pod.owner.name,
                    )
                )
            else:
                used[key] = pod
    return problems


def location_of(pod: DesiredPod) -> Location:
    return pod.source
