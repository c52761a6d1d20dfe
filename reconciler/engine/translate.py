"""Between desired pods and the Docker Engine API, as plain values: the labels every object
carries, the arguments that create a pod's containers, volumes and network, and the live
state read back from one ``GET /containers/json``. Pure: no ``docker`` import.

Why apart from the engine: these decide ownership and drift (the labels, the spec hash, the
spec kept on the infra container), so they are tested with plain values, and a simulated
engine (tests, benchmarks) can build exactly the live state the real one would list.
``engine.host`` only turns these values into API calls.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import (
    DesiredContainer,
    DesiredPod,
    NetworkSpec,
    Restart,
    SecuritySpec,
    VolumeSpec,
)
from reconciler.engine import probes as P
from reconciler.engine.live import (  # the live state: its names stay importable from here
    host_state as host_state,
)
from reconciler.engine.live import (
    live_container as live_container,
)
from reconciler.engine.live import (
    live_volumes as live_volumes,
)
from reconciler.engine.live import (
    mounts_claims as mounts_claims,
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


def pull_credentials(
    repository: str, auth: Sequence[tuple[str, str, str]]
) -> dict[str, str] | None:
    """The ``auth_config`` of a pull: the imagePullSecrets entry for the image's registry
    (the first part of its name when it has a dot or a port, else Docker Hub)."""
    first, _, rest = repository.partition("/")
    registry = first if rest and ("." in first or ":" in first or first == "localhost") else ""
    names = (
        {registry} if registry else {"docker.io", "index.docker.io", "https://index.docker.io/v1/"}
    )
    for server, username, password in auth:
        bare = server.removeprefix("https://").removeprefix("http://").rstrip("/")
        if server in names or bare in names or bare.split("/")[0] in names:
            return {"username": username, "password": password, "serveraddress": server}
    return None


def ownership_labels(instance: str) -> dict[str, str]:
    """The two labels that make an object ours (see ``core.labels``)."""
    return {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTANCE: instance}


def marker_name(instance: str) -> str:
    """The never-started container that records the last applied revision on a host."""
    return f"{instance}_reconciler_state"


def marker_labels(instance: str, revision: str) -> dict[str, str]:
    return {**ownership_labels(instance), L.ROLE: L.ROLE_STATE, L.REVISION: revision}


def container_labels(
    pod: DesiredPod,
    container: DesiredContainer,
    instance: str,
    revision: str,
    restart: Restart | None = None,
) -> dict[str, str]:
    """Every label of one container of a pod: ownership, identity, the spec hash (drift), the
    revision and source line (for people), and on the pod's first container the spec itself
    (field-level diffs when it changes). A probed container also says what its health check
    carries; a container the reconciler restarted, how often and with which back-off (labels
    survive a restart of the reconciler; Docker keeps its own restart count only in inspect)."""
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
    if container.probes:
        result[L.PROBES] = ",".join(p.kind for p in container.probes)
    health = P.app_health_kinds(container)
    if container.role == L.ROLE_INFRA and P.pod_checked(pod):
        health = ("readiness",)
    if health:
        result[L.HEALTH] = ",".join(health)
    if restart is not None:
        result[L.RESTARTS] = str(restart.count)
        result[L.BACKOFF] = str(restart.backoff)
        if restart.start_after:
            result[L.START_AFTER] = f"{restart.start_after:.3f}"
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
    healthcheck: P.HealthcheckArgs | None = None  # probes (engine.probes)
    # how the container is confined (a pod's securityContext and host namespaces, as the
    # operator's policy allowed them); the defaults are Docker's
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    user: str | None = None
    group_add: tuple[str, ...] = ()
    read_only: bool = False
    security_opt: tuple[str, ...] = ()
    pid_mode: str | None = None
    uts_mode: str | None = None
    sysctls: Mapping[str, str] = field(default_factory=dict)


#: where a pod's infra container mounts its files volumes, to fill them before the pod's
#: containers start (``files_archive``); the app containers mount them read-only
FILES_ROOT = "/.reconciler"


def volume_args(pod: DesiredPod, instance: str) -> list[VolumeArgs]:
    """The pod's Docker volumes: emptyDirs (on disk, or tmpfs for ``medium: Memory``) and
    files volumes (always tmpfs: Secrets live in memory), labelled with the pod and removed
    with it; and the claims' volumes, labelled with their claim and never with the pod."""
    result = []
    for volume in pod.volumes:
        if volume.source == "claim":
            result.append(
                VolumeArgs(
                    volume.docker_name,
                    volume.driver,
                    dict(volume.driver_opts) or None,
                    dict(volume.claim_labels),
                )
            )
            continue
        if volume.source not in ("emptyDir", "files"):
            continue
        options: dict[str, str] = {}
        if volume.medium == "Memory":
            options = {"type": "tmpfs", "device": "tmpfs"}
            if volume.size_bytes:
                options["o"] = f"size={volume.size_bytes}"
        if volume.source == "files":  # room for its files, and never writable by others
            size = sum(len(f.data) for f in volume.files) + (1 << 20)
            options["o"] = f"size={size},mode=0755"
        labels = {**ownership_labels(instance), L.POD: pod.name, L.POD_NAMESPACE: pod.namespace}
        result.append(VolumeArgs(volume.docker_name, "local", options or None, labels))
    return result


def files_archive(volume: VolumeSpec) -> bytes:
    """A tar of a files volume's files (parent directories made), in memory: what the
    engine's archive API extracts into the volume through the infra container."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[str] = set()
        for spec in volume.files:
            parts = spec.path.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(spec.path)
            info.size, info.mode = len(spec.data), spec.mode
            tar.addfile(info, io.BytesIO(spec.data))
    return buffer.getvalue()


def files_target(volume: VolumeSpec) -> str:
    """Where the infra container mounts a files volume."""
    return f"{FILES_ROOT}/{volume.name}"


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
    healthcheck = P.pod_healthcheck(pod) if infra.role == L.ROLE_INFRA else None
    files = tuple(  # filled through the infra container before the app containers start
        VolumeMount(files_target(v), v.docker_name) for v in pod.volumes if v.source == "files"
    )
    args = ContainerArgs(
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
        healthcheck=healthcheck,
        volume_mounts=files + (_tools_mount(instance) if healthcheck else ()),
        sysctls=dict(pod.sysctls),
    )
    return _in_host_namespaces(args, pod.host_namespaces)


def _in_host_namespaces(args: ContainerArgs, namespaces: frozenset[str]) -> ContainerArgs:
    """An infra container that holds the host's network (its ports are the host's: nothing
    to publish, no instance network, the host's name) and IPC namespaces instead of its
    own, as ``hostNetwork`` and ``hostIPC`` ask."""
    if not namespaces:
        return args
    changes: dict[str, Any] = {}
    if "network" in namespaces:
        changes.update(
            network_mode="host",
            endpoint=None,
            exposed=(),
            port_bindings={},
            hostname=None,
            uts_mode="host",
        )
    if "ipc" in namespaces:
        changes["ipc_mode"] = "host"
    return replace(args, **changes)


def _tools_mount(instance: str) -> tuple[VolumeMount, ...]:
    """The probe tools volume (a static busybox), read-only, for a container with checks."""
    return (VolumeMount(P.TOOLS_MOUNT, P.tools_volume(instance), read_only=True),)


def app_args(
    pod: DesiredPod,
    container: DesiredContainer,
    infra_id: str,
    instance: str,
    revision: str,
    pod_ip: str = "",
    restart: Restart | None = None,
) -> ContainerArgs:
    """An app (or init) container joined to its pod's infra container (network and IPC
    namespaces). ``pod_ip``: the pod's address, for the env vars that ask for it
    (``status.podIP``). An init container runs once: Docker never restarts it, the
    reconciler does when ``restartPolicy`` says so (``restart``: the labels of that new
    instance)."""
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
    healthcheck = P.app_healthcheck(container)
    if healthcheck is not None:
        mounts.extend(_tools_mount(instance))
    init = container.role == L.ROLE_INIT
    security = container.security or SecuritySpec()
    return ContainerArgs(
        image=container.image,
        name=container.docker_name,
        labels=container_labels(pod, container, instance, revision, restart),
        entrypoint=container.entrypoint,
        command=container.cmd,
        environment=tuple(
            f"{k}={pod_ip if k in container.pod_ip_env else v}" for k, v in container.env
        ),
        working_dir=container.working_dir or None,
        ipc_mode="host" if "ipc" in pod.host_namespaces else f"container:{infra_id}",
        network_mode=f"container:{infra_id}",
        restart_policy="no" if init else DOCKER_RESTART_POLICY[container.restart_policy],
        nano_cpus=container.nano_cpus,
        cpu_shares=container.cpu_shares,
        mem_limit=container.memory_bytes,
        mem_reservation=container.memory_reservation,
        binds=binds,
        volume_mounts=tuple(mounts),
        healthcheck=healthcheck,
        privileged=security.privileged,
        cap_add=security.cap_add,
        cap_drop=security.cap_drop,
        user=security.user or None,
        group_add=security.group_add,
        read_only=security.read_only_root,
        security_opt=security.security_opt,
        pid_mode="host" if "pid" in pod.host_namespaces else None,
    )


def runs_as_root(user: str) -> bool:
    """Whether an image's ``User`` (``""``, ``root``, ``0``, ``1000:1000``, ``app``) cannot
    be shown to be a non-root user: Kubernetes' runAsNonRoot check. A name is refused too,
    as by Kubernetes: only a number can be checked without reading the image's passwd."""
    name = user.partition(":")[0]
    return not name.isdigit() or int(name) == 0


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
