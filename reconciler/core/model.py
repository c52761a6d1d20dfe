"""Plain values shared by every stage: where things came from, and what was loaded.

Only the standard library is imported here, so that every pure stage (loading, validation,
desired state, planning, reporting) can depend on it without pulling in Docker or git.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.core.text import TEXT_LIMIT, bounded

#: A path into a document: mapping keys and sequence indexes, outermost first.
FieldPath = tuple[str | int, ...]

SUPPORTED_KINDS: tuple[str, ...] = (
    "Pod",
    "ReplicationController",
    "Service",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Deployment",
)
#: The apiVersion each kind is read in (every other kind: ``v1``).
API_VERSIONS: Mapping[str, str] = {"Deployment": "apps/v1"}
DEFAULT_NAMESPACE = "default"


def as_map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one: reading manifests, where a missing
    optional field and an empty one mean the same (and a wrong type is the schema's to
    report)."""
    if type(value) is dict:  # the loader makes dicts: skip the slower ABC check (hot path)
        return value
    if value is None:  # a field not written
        return {}
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a list, else an empty one (see :func:`as_map`)."""
    return value if isinstance(value, list) else []


def pod_containers(spec: Mapping[str, Any]) -> list[tuple[FieldPath, Mapping[str, Any]]]:
    """Every container of a pod spec, init containers first, each with its place in the spec
    (``("initContainers", 0)``): the checks that hold for both kinds alike walk this."""
    return [
        ((field, index), as_map(container))
        for field in ("initContainers", "containers")
        for index, container in enumerate(as_list(spec.get(field)))
    ]


def format_path(path: FieldPath) -> str:
    """Render a field path the way kubectl does: ``spec.containers[0].ports[1].name``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            if out:
                out.append(".")
            out.append(part)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Location:
    """A position in a source file; line and column count from 1, as editors show them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def locate_path(
    file: str,
    positions: Mapping[FieldPath, tuple[int, int]],
    path: FieldPath,
    default: Location,
) -> Location:
    """Where ``path`` was written in ``file``, or its closest written ancestor, or
    ``default`` (the document) when none of them was."""
    for end in range(len(path), 0, -1):
        found = positions.get(path[:end])
        if found is not None:
            return Location(file, *found)
    return default


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about the input, always pointing at a file and line.

    ``kind`` and ``name`` are empty when the problem sits outside any object (a YAML syntax
    error, an unreadable file); ``path`` is empty when it concerns the whole object.
    """

    severity: Severity
    location: Location
    message: str
    kind: str = ""
    name: str = ""
    path: str = ""

    def __post_init__(self) -> None:
        # A message quotes manifest text, and a name or path is manifest text: a hostile
        # 10 MB value must not be repeated whole into every output (core.text).
        for name in ("message", "kind", "name", "path"):
            value = getattr(self, name)
            if len(value) > TEXT_LIMIT:
                object.__setattr__(self, name, bounded(value))

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        loc = self.location
        return (loc.file, loc.line, loc.column, self.message)


@dataclass(frozen=True, slots=True)
class Manifest:
    """One object as written by the user, with the position of every field it holds.

    ``body`` is the JSON-like value of the document (dicts, lists, str, int, float, bool,
    None). ``positions`` maps each field path to the (line, column) where that field (its
    key, for mapping entries) starts, so that any later stage can point back at the line
    that caused it.
    """

    body: Mapping[str, Any]
    file: str
    position: tuple[int, int]
    positions: Mapping[FieldPath, tuple[int, int]] = field(repr=False, compare=False)

    @property
    def source(self) -> Location:
        """Where the object starts."""
        return Location(self.file, *self.position)

    @property
    def kind(self) -> str:
        value = self.body.get("kind")
        return value if isinstance(value, str) else ""

    @property
    def api_version(self) -> str:
        value = self.body.get("apiVersion")
        return value if isinstance(value, str) else ""

    @property
    def metadata(self) -> Mapping[str, Any]:
        value = self.body.get("metadata")
        return value if isinstance(value, dict) else {}

    @property
    def name(self) -> str:
        value = self.metadata.get("name")
        return value if isinstance(value, str) else ""

    @property
    def namespace(self) -> str:
        value = self.metadata.get("namespace")
        return value if isinstance(value, str) and value else DEFAULT_NAMESPACE

    @property
    def labels(self) -> Mapping[str, Any]:
        value = self.metadata.get("labels")
        return value if isinstance(value, dict) else {}

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.namespace, self.name)

    def locate(self, path: FieldPath) -> Location:
        """Where ``path`` was written, or its closest written ancestor."""
        return locate_path(self.file, self.positions, path, self.source)


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """The identity of an object: unique across the whole tree of manifests."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return (
            f"{self.kind}/{self.name}"
            if self.namespace == DEFAULT_NAMESPACE
            else (f"{self.kind}/{self.namespace}/{self.name}")
        )


# -- desired and live state ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PortBinding:
    """A container port, and where it is published on the host (hostPort), if anywhere."""

    container_port: int
    protocol: str = "TCP"
    host_port: int | None = None  # 0: a port Docker picks (pod ports reachable from other hosts)
    host_ip: str = ""


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """The instance's Docker network on every host: pods and Service forwarders join it.

    The same subnet on every host, so that a Service's cluster IP means the same everywhere;
    pods get addresses from ``pod_range``, forwarders fixed ones from the rest.
    """

    name: str
    subnet: str
    pod_range: str
    gateway: str


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One file of a Secret, ConfigMap, downwardAPI or projected volume. ``data`` may be a
    secret: it is kept out of ``repr`` and only ever written into a tmpfs volume."""

    path: str  # relative to the volume's root, may hold '/'
    data: bytes = field(repr=False)
    mode: int = 0o444


@dataclass(frozen=True, slots=True)
class VolumeSpec:
    """A pod volume: an emptyDir (a Docker volume or tmpfs owned by the pod), a hostPath,
    files (Secret, ConfigMap, downwardAPI, projected: a tmpfs volume owned by the pod, filled
    before its containers start) or a claim (a PersistentVolumeClaim's Docker volume, which
    outlives the pod)."""

    name: str
    source: str  # "emptyDir", "hostPath", "files" or "claim"
    docker_name: str = ""  # emptyDir, files, claim: the Docker volume's name
    host_path: str = ""
    medium: str = ""  # emptyDir: "" (disk) or "Memory" (tmpfs)
    size_bytes: int | None = None
    files: tuple[FileSpec, ...] = field(default=(), repr=False)
    claim: str = ""  # claim: the PersistentVolumeClaim's name
    driver: str = "local"  # claim: the volume driver its storage class maps to
    driver_opts: tuple[tuple[str, str], ...] = ()
    claim_labels: tuple[tuple[str, str], ...] = ()  # claim: what marks the volume as its own


@dataclass(frozen=True, slots=True)
class MountSpec:
    volume: str
    path: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Probe:
    """One liveness, readiness or startup probe, with Kubernetes' defaults filled in and a
    named port resolved to its number (docs/health.md says where and how it runs)."""

    kind: str  # "liveness", "readiness" or "startup"
    handler: str  # "exec", "http" or "tcp"
    command: tuple[str, ...] = ()  # exec
    port: int = 0  # http, tcp
    host: str = ""  # http, tcp: "" is the pod itself
    path: str = "/"  # http
    scheme: str = "HTTP"  # http: HTTP or HTTPS (certificates are not verified, as kubelet)
    headers: tuple[tuple[str, str], ...] = ()  # http
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @property
    def network(self) -> bool:
        """An HTTP or TCP probe: it can run from anywhere in the pod's network namespace."""
        return self.handler != "exec"


@dataclass(frozen=True, slots=True)
class Restart:
    """A restart the reconciler makes of one container: the count and back-off the new
    instance carries in its labels, and when it may start (0: at once)."""

    count: int
    backoff: int
    start_after: float = 0.0


@dataclass(frozen=True, slots=True)
class SecuritySpec:
    """How a container is confined, from its (and its pod's) securityContext, as the
    operator's policy allowed it (``check.policy``); all defaults: Docker's own."""

    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    user: str = ""  # "uid" or "uid:gid"; "" is the image's user
    group_add: tuple[str, ...] = ()  # supplementalGroups
    run_as_non_root: bool = False  # refuse an image that would run as root
    read_only_root: bool = False
    #: Docker's security options: no-new-privileges, seccomp=unconfined, apparmor=...,
    #: label=..., systempaths=unconfined
    security_opt: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DesiredContainer:
    """One Docker container to run, fully resolved from the manifest."""

    docker_name: str
    container: str  # the name in spec.containers, or the infra container's name
    role: str  # "infra" or "app"
    image: str
    pull_policy: str
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    #: resolved values, Secrets' included: for the engine only, never printed
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    working_dir: str = ""
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    memory_bytes: int | None = None
    memory_reservation: int | None = None
    mounts: tuple[MountSpec, ...] = ()
    ports: tuple[PortBinding, ...] = ()  # published on the infra container only
    hostname: str = ""  # infra container only
    restart_policy: str = "Always"
    source: Location | None = None
    ipv4_address: str = ""  # forwarders: the Service's cluster IP on the instance network
    aliases: tuple[str, ...] = ()  # forwarders: the Service's DNS names
    probes: tuple[Probe, ...] = ()  # app containers: liveness, readiness, startup
    security: SecuritySpec | None = None  # app containers with a securityContext
    #: env vars whose value is the pod's address (fieldRef status.podIP): known once the
    #: infra container has one, so the engine fills them in when it creates the container
    pod_ip_env: tuple[str, ...] = ()
    #: registry credentials from imagePullSecrets: (registry, username, password) for the pull
    pull_auth: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class DesiredPod:
    """A pod to run on one host: its infra container first, then one per spec container."""

    namespace: str
    name: str
    owner: ObjectRef
    host: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]  # canonical desired spec: what the hash and field diffs cover
    spec_hash: str
    containers: tuple[DesiredContainer, ...]
    volumes: tuple[VolumeSpec, ...]
    restart_policy: str
    source: Location
    replica: int | None = None
    network: NetworkSpec | None = None
    #: the host namespaces the pod joins ("network", "pid", "ipc"), as its policy allowed
    host_namespaces: frozenset[str] = frozenset()
    sysctls: tuple[tuple[str, str], ...] = ()  # set on the infra container (the pod's)
    template_hash: str = ""  # a Deployment's pod: the revision (pod template) it runs

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def app_containers(self) -> tuple[DesiredContainer, ...]:
        return tuple(c for c in self.containers if c.role == "app")

    @property
    def init_containers(self) -> tuple[DesiredContainer, ...]:
        """The init containers, in the order they run."""
        return tuple(c for c in self.containers if c.role == "init")


@dataclass(frozen=True, slots=True)
class LiveContainer:
    """One container as observed on a host (from a single list call)."""

    id: str
    name: str
    host: str
    labels: Mapping[str, str]
    state: str  # running, exited, created, restarting, paused, dead
    status: str  # Docker's human text: "Up 5 minutes", "Exited (137) 2 seconds ago"
    created: int
    image: str
    exit_code: int | None = None
    ip_address: str = ""
    #: published ports: (container port, protocol lower-case, host port), from the list call
    ports: tuple[tuple[int, str, int], ...] = ()

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True, slots=True)
class LiveVolume:
    """One of our Docker volumes as listed on a host (the claims' volumes are what matter:
    they outlive pods, so they are listed, placed by and reported, never removed unasked)."""

    name: str
    host: str
    labels: Mapping[str, str]
    driver: str = "local"


@dataclass(frozen=True, slots=True)
class HostState:
    """What one host looked like, or why it could not be observed."""

    host: str
    reachable: bool
    containers: tuple[LiveContainer, ...] = ()
    error: str = ""
    engine_version: str = ""
    applied_revision: str = ""  # what the last complete apply recorded on this host
    #: never-started records of what each Service forwarder was last given (its endpoints)
    markers: tuple[LiveContainer, ...] = ()
    volumes: tuple[LiveVolume, ...] = ()  # our volumes (one list call)
    #: never-started markers holding each Deployment's rollout memory (``plan.rollout_memory``)
    rollouts: tuple[LiveContainer, ...] = ()
