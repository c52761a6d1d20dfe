"""Between desired pods and the Docker Engine API, as plain values: the labels every object
carries, the arguments that create a pod's containers, volumes and network, and the live
state read back from one ``GET /containers/json``. Pure: no ``docker`` import.

Why apart from the engine: these decide ownership and drift (the labels, the spec hash, the
spec kept on the infra container), so they are tested with plain values, and a simulated
engine (tests, benchmarks) can build exactly the live state the real one would list.
``engine.host`` only turns these values into API calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import (
    DesiredContainer,
    DesiredPod,
    HostState,
    LiveContainer,
    NetworkSpec,
    ObjectRef,
)

DOCKER_RESTART_POLICY = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}


# -- names and labels ----------------------------------------------------------------------------
def image_reference(image: str) -> tuple[str, str]:
    """``(repository, tag)`` of an image name; the tag is "" when none is written (a colon in
    a registry's ``host:port`` is not a tag)."""
    if ":" in image.rsplit("/", 1)[-1]:
        repository, _, tag = image.rpartition(":")
        return repository, tag
    return image, ""


def ownership_labels(instance: str) -> dict[str, str]:
    """The two labels that make an object ours (see ``core.labels``)."""
    return {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTANCE: instance}


def marker_name(instance: str) -> str:
    """The never-started container that records the last applied revision on a host."""
    return f"{instance}_reconciler_state"


def marker_labels(instance: str, revision: str) -> dict[str, str]:
    return {**ownership_labels(instance), L.ROLE: L.ROLE_STATE, L.REVISION: revision}


def rollout_marker_name(instance: str, deployment: ObjectRef, generation: int) -> str:
    """The never-started container holding one generation of a Deployment's rollout memory
    (``plan.rollout_memory``). ``deploy_<name>`` cannot be a pod's name (pods have no
    ``_``), so it never collides with a pod's containers."""
    return f"{instance}_{deployment.namespace}_deploy_{deployment.name}_rollout-{generation}"


def rollout_marker_labels(
    instance: str, deployment: ObjectRef, memory: str, generation: int
) -> dict[str, str]:
    return {
        **ownership_labels(instance),
        L.ROLE: L.ROLE_ROLLOUT,
        L.OWNER_KIND: deployment.kind,
        L.OWNER_NAMESPACE: deployment.namespace,
        L.OWNER_NAME: deployment.name,
        L.ROLLOUT: memory,
        L.GENERATION: str(generation),
    }


def rollout_marker_filters(instance: str, deployment: ObjectRef) -> list[str]:
    """Docker ``label`` filters selecting every rollout marker of one Deployment."""
    return [
        *L.ownership_filters(instance),
        f"{L.ROLE}={L.ROLE_ROLLOUT}",
        f"{L.OWNER_NAMESPACE}={deployment.namespace}",
        f"{L.OWNER_NAME}={deployment.name}",
    ]


def container_labels(
    pod: DesiredPod, container: DesiredContainer, instance: str, revision: str
) -> dict[str, str]:
    """Every label of one container of a pod: ownership, identity, the spec hash (drift), the
    revision and source line (for people), and on the pod's first container the spec itself
    (field-level diffs when it changes)."""
    result = {
        **ownership_labels(instance),
        L.OWNER_KIND: pod.owner.kind,
        L.OWNER_NAMESPACE: pod.owner.namespace,
        L.OWNER_NAME: pod.owner.name,
        L.POD: pod.name,
        L.POD_NAMESPACE: pod.namespace,
        L.POD_LABELS: L.canonical_json(dict(pod.labels)),
        L.CONTAINER: container.container,
        L.ROLE: container.role,
        L.SPEC_HASH: pod.spec_hash,
        L.REVISION: revision,
        L.SOURCE: str(container.source or pod.source),
    }
    if pod.replica is not None:
        result[L.REPLICA] = str(pod.replica)
    if pod.template_hash:
        result[L.TEMPLATE_HASH] = pod.template_hash
    if container.role in (L.ROLE_INFRA, L.ROLE_FORWARDER):
        result[L.SPEC] = L.canonical_json({"spec": pod.spec})
    if container.ipv4_address:
        result[L.CLUSTER_IP] = container.ipv4_address
    return result


# -- create arguments ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VolumeArgs:
    """A Docker named volume owned by one pod (an emptyDir)."""

    name: str
    driver: str
    driver_opts: Mapping[str, str] | None
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class EndpointArgs:
    """Where a container joins the instance network, and as what."""

    network: str
    ipv4_address: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VolumeMount:
    target: str
    source: str  # the Docker volume's name
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerArgs:
    """Everything ``POST /containers/create`` needs for one container, as plain values."""

    image: str
    name: str
    labels: Mapping[str, str]
    hostname: str | None = None
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    environment: tuple[str, ...] = ()
    working_dir: str | None = None
    exposed: tuple[tuple[int, str], ...] = ()  # (container port, protocol lower-case)
    #: "port/proto" -> host bindings: a port, (address, port) or None (a port Docker picks)
    port_bindings: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    init: bool = True
    ipc_mode: str | None = None
    network_mode: str | None = None
    restart_policy: str = "always"
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    mem_limit: int | None = None
    mem_reservation: int | None = None
    binds: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # host path -> bind
    volume_mounts: tuple[VolumeMount, ...] = ()
    endpoint: EndpointArgs | None = None


def volume_args(pod: DesiredPod, instance: str) -> list[VolumeArgs]:
    """The pod's emptyDir volumes: on disk, or tmpfs for ``medium: Memory``."""
    result = []
    for volume in pod.volumes:
        if volume.source != "emptyDir":
            continue
        options: dict[str, str] = {}
        if volume.medium == "Memory":
            options = {"type": "tmpfs", "device": "tmpfs"}
            if volume.size_bytes:
                options["o"] = f"size={volume.size_bytes}"
        labels = {**ownership_labels(instance), L.POD: pod.name, L.POD_NAMESPACE: pod.namespace}
        result.append(VolumeArgs(volume.docker_name, "local", options or None, labels))
    return result


def infra_args(pod: DesiredPod, instance: str, revision: str) -> ContainerArgs:
    """A pod's infra container (its network and IPC namespaces, hostname and published
    ports), or a Service's forwarder, which has the same shape and its own program."""
    infra = pod.containers[0]
    port_bindings: dict[str, list[Any]] = {}
    exposed: list[tuple[int, str]] = []
    for binding in infra.ports:
        key = f"{binding.container_port}/{binding.protocol.lower()}"
        if key not in port_bindings:
            exposed.append((binding.container_port, binding.protocol.lower()))
        host_port = binding.host_port or None  # 0: a port Docker picks
        target = (binding.host_ip, host_port) if binding.host_ip else host_port
        port_bindings.setdefault(key, []).append(target)
    endpoint = None
    if pod.network is not None:
        endpoint = EndpointArgs(pod.network.name, infra.ipv4_address or None, infra.aliases)
    return ContainerArgs(
        image=infra.image,
        name=infra.docker_name,
        labels=container_labels(pod, infra, instance, revision),
        hostname=infra.hostname or None,
        entrypoint=infra.entrypoint,
        command=infra.cmd,
        exposed=tuple(exposed),
        port_bindings=port_bindings,
        ipc_mode="shareable" if infra.role == L.ROLE_INFRA else None,
        network_mode=pod.network.name if pod.network is not None else None,
        restart_policy="always",
        endpoint=endpoint,
    )


def app_args(
    pod: DesiredPod, container: DesiredContainer, infra_id: str, instance: str, revision: str
) -> ContainerArgs:
    """An app container joined to its pod's infra container (network and IPC namespaces)."""
    binds: dict[str, dict[str, str]] = {}
    mounts: list[VolumeMount] = []
    volumes = {v.name: v for v in pod.volumes}
    for mount in container.mounts:
        volume = volumes[mount.volume]
        if volume.source == "hostPath":
            binds[volume.host_path] = {
                "bind": mount.path,
                "mode": "ro" if mount.read_only else "rw",
            }
        else:
            mounts.append(VolumeMount(mount.path, volume.docker_name, mount.read_only))
    return ContainerArgs(
        image=container.image,
        name=container.docker_name,
        labels=container_labels(pod, container, instance, revision),
        entrypoint=container.entrypoint,
        command=container.cmd,
        environment=tuple(f"{k}={v}" for k, v in container.env),
        working_dir=container.working_dir or None,
        ipc_mode=f"container:{infra_id}",
        network_mode=f"container:{infra_id}",
        restart_policy=DOCKER_RESTART_POLICY[container.restart_policy],
        nano_cpus=container.nano_cpus,
        cpu_shares=container.cpu_shares,
        mem_limit=container.memory_bytes,
        mem_reservation=container.memory_reservation,
        binds=binds,
        volume_mounts=tuple(mounts),
    )


@dataclass(frozen=True, slots=True)
class NetworkArgs:
    """The instance's bridge network: the same subnet on every host."""

    name: str
    subnet: str
    ip_range: str
    gateway: str
    labels: Mapping[str, str]


def network_args(network: NetworkSpec, instance: str) -> NetworkArgs:
    return NetworkArgs(
        network.name, network.subnet, network.pod_range, network.gateway, ownership_labels(instance)
    )


# -- live state --------------------------------------------------------------------------------
def live_container(host: str, item: Mapping[str, Any]) -> LiveContainer:
    """Turn one entry of ``GET /containers/json`` into a LiveContainer."""
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
        labels=dict(item.get("Labels") or {}),
        state=str(item.get("State", "")),
        status=str(item.get("Status", "")),
        created=int(item.get("Created", 0)),
        image=str(item.get("Image", "")),
        ip_address=address or "",
        ports=published,
    )


def host_state(host: str, instance: str, listed: Iterable[Mapping[str, Any]]) -> HostState:
    """One host's state from its container list: our containers (never anyone else's, even
    if the engine's filter let one through), the revision its newest marker records, and
    the Deployments' rollout markers (apart: they are no pods)."""
    owned = [item for item in listed if L.is_owned(item.get("Labels"), instance)]
    markers = [i for i in owned if (i.get("Labels") or {}).get(L.ROLE) == L.ROLE_STATE]
    rollouts = [i for i in owned if (i.get("Labels") or {}).get(L.ROLE) == L.ROLE_ROLLOUT]
    apart = {id(item) for item in markers + rollouts}
    containers = tuple(live_container(host, item) for item in owned if id(item) not in apart)
    applied = max(markers, key=lambda i: int(i.get("Created", 0)), default=None)
    return HostState(
        host,
        reachable=True,
        containers=containers,
        applied_revision=(applied.get("Labels") or {}).get(L.REVISION, "") if applied else "",
        rollouts=tuple(live_container(host, item) for item in rollouts),
    )


def container_details(info: Mapping[str, Any]) -> str:
    """What ``GET /containers/{id}/json`` says of a container that is not ready, in one
    line: its state, exit code, OOM kill, restarts, and the last health probe's output."""
    state = info.get("State") or {}
    name = ((info.get("Config") or {}).get("Labels") or {}).get(L.CONTAINER) or str(
        info.get("Name", "")
    ).lstrip("/")
    parts = [f"container {name} {state.get('Status', '?')}"]
    if state.get("Status") in ("exited", "restarting") or state.get("ExitCode"):
        parts.append(f"exit code {state.get('ExitCode', '?')}")
    if state.get("OOMKilled"):
        parts.append("killed: out of memory")
    if state.get("Error"):
        parts.append(str(state["Error"]))
    if info.get("RestartCount"):
        parts.append(f"restarted {info['RestartCount']} time(s)")
    health = state.get("Health") or {}
    log = health.get("Log") or []
    if health.get("Status"):
        last = log[-1] if log else {}
        output = " ".join(str(last.get("Output", "")).split())[:200]
        probe = f"health {health['Status']}"
        if last:
            probe += f", last probe exit code {last.get('ExitCode', '?')}"
        parts.append(probe + (f": {output}" if output else ""))
    return ", ".join(parts)
