"""One Docker engine, driven: observe it, create, start, stop and remove pods on it.

This module executes; it decides nothing. What to create comes as desired pods, how they
map onto the API comes from ``engine.translate`` (pure), and every call goes through
``engine.client.call``, which turns Docker's errors into ours: ``HostUnavailable`` when
the engine cannot be reached, ``NotFound``, ``ApplyError`` when it refused an action,
``ImagePullError`` for images that cannot be had (the pod's status becomes ErrImagePull and
the run goes on).

Observation is one ``GET /containers/json`` per host filtered by our labels: the list
already carries labels, state and status, so a no-op pass inspects nothing. It is made with
``engine.listing`` (no docker-py); the docker-py client (``engine.sdk``) is opened, and
docker-py imported, on the first other call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.core import labels as L
from reconciler.core.errors import ApplyError, HostUnavailable, NotFound, OwnershipError
from reconciler.core.model import (
    DesiredContainer,
    DesiredPod,
    HostState,
    LiveContainer,
    LiveVolume,
)
from reconciler.engine import translate as T
from reconciler.engine.client import Unchanged, call, list_containers, list_volumes
from reconciler.engine.lifecycle import PodLifecycle
from reconciler.engine.listing import EngineLister
from reconciler.engine.probetools import HostProbeTools
from reconciler.engine.reload import ForwarderReload
from reconciler.engine.resources import HostImages, HostNetworks
from reconciler.engine.rollouts import RolloutSupport
from reconciler.source.hosts import Host

if TYPE_CHECKING:
    import docker

#: What the forwarder image holds besides busybox (path -> program), made on first use.
Programs = Callable[[], Mapping[str, bytes]]


class DockerHost(RolloutSupport, PodLifecycle):
    """A connection to one engine, counting the API calls it makes.

    ``programs`` supplies the Service forwarder's program when a host lacks the forwarder
    image: the engine builds images, it does not know how the program is made.
    """

    def __init__(
        self,
        host: Host,
        *,
        instance: str,
        revision: str = "",
        grace_seconds: int = 10,
        timeout: float = 60.0,
        programs: Programs | None = None,
    ) -> None:
        self.host = host
        self.instance = instance
        self.revision = revision
        self.grace_seconds = grace_seconds
        self.timeout = timeout
        self.calls = 0  # every Docker API request
        self.writes = 0  # requests that change something (anything but GET/HEAD)
        self._api: docker.APIClient | None = None
        self._lock = threading.Lock()
        self.lister = EngineLister(host, timeout, self._count)  # observe's list calls
        #: the last list answer and its state: an identical answer is not decoded again
        self._unchanged: Unchanged[tuple[HostState, bool]] = Unchanged()
        self.images = HostImages(self._call, lambda: self.api, host.name, programs)
        self.networks = HostNetworks(self._call, lambda: self.api, instance, host.name)
        self.probe_tools = HostProbeTools(self._call, lambda: self.api, instance)
        self.forwarder_records = ForwarderReload(self._call, lambda: self.api, instance)

    # -- connection ------------------------------------------------------------------------
    @property
    def api(self) -> docker.APIClient:
        """docker-py's client, opened (and docker-py imported) on the first call that is
        not a list call of observing."""
        with self._lock:
            if self._api is None:
                from reconciler.engine.sdk import open_client

                self._api = open_client(self.host, self.timeout, self._count)
            return self._api

    def _count(self, method: str) -> None:
        self.calls += 1
        if method not in ("GET", "HEAD"):
            self.writes += 1

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        return call(self.host, what, function, *args, **kwargs)

    def close(self) -> None:
        self.lister.close()
        if self._api is not None:
            self._api.close()

    # -- observe -----------------------------------------------------------------------------
    def observe(self, volumes: bool | None = None) -> HostState:
        """Our containers on this host, from a single list call; and our volumes, from a
        second one, when ``volumes`` says so (claims in the manifests, ``get volumes``,
        ``--prune-volumes``) or, by default, when a container mounts a claim's volume: a
        pass with no claims stays one list call. Both go through ``self.lister`` (the
        standard library's HTTP client, ``engine.listing``): observing imports no docker-py."""
        filters = {"label": L.ownership_filters(self.instance)}

        def translated(entries: Iterable[Any]) -> tuple[HostState, bool]:  # under DECODING
            claims: list[bool] = []  # whether a container mounts a claim's volume

            def watched() -> Iterator[Any]:
                for item in entries:
                    if not claims and T.mounts_claims(self.instance, [item]):
                        claims.append(True)
                    yield item

            state = T.host_state(self.host.name, self.instance, watched())
            return state, bool(claims)

        try:
            state, claims = list_containers(self.lister, filters, translated, self._unchanged)
            if volumes or (volumes is None and claims):
                listed = list_volumes(self.lister, filters)
                found = T.live_volumes(self.host.name, self.instance, listed)
                state = dataclasses.replace(state, volumes=found)
        except (HostUnavailable, ApplyError) as exc:
            return HostState(self.host.name, reachable=False, error=str(exc))
        return state

    def container_events(self, actions: Sequence[str]) -> Any:
        """A blocking, closable stream of Docker events about this instance's containers
        (``die``, ``destroy``...): how the service notices a dead container in seconds."""
        return self._call(
            "events",
            self.api.events,
            decode=True,
            filters={
                "type": "container",
                "event": list(actions),
                "label": L.ownership_filters(self.instance),
            },
        )

    def engine_version(self) -> str:
        info = self._call("version", self.api.version)
        return str(info.get("Version", ""))

    # -- the revision marker -------------------------------------------------------------------
    def remove_state_marker(self) -> None:
        """Forget the recorded revision (``down`` of everything).

        The marker is found by name, and a name proves nothing: a container someone else
        called ``<instance>_reconciler_state`` is refused (``OwnershipError``), never removed.
        """
        name = T.marker_name(self.instance)
        try:
            info = self._call("inspect state marker", self.api.inspect_container, name)
        except NotFound:
            return
        labels = (info.get("Config") or {}).get("Labels") or {}
        if not L.is_owned(labels, self.instance):
            raise OwnershipError(
                f"container {name} on host {self.host.name} does not carry this instance's "
                "labels: left alone (remove or rename it to let the reconciler record revisions)"
            )
        with contextlib.suppress(NotFound):
            self._call("remove state marker", self.api.remove_container, info["Id"], force=True)

    def record_revision(self, revision: str, image: str) -> None:
        """Remember on the host which revision was applied last: a container that is never
        started, labelled with it (Docker labels cannot change, so it is replaced). A
        restarted service reads it back from the same list call as everything else."""
        self.remove_state_marker()
        self.ensure_infra_image(image)
        self._call(
            "record revision",
            self.api.create_container,
            image,
            command=["true"],
            name=T.marker_name(self.instance),
            labels=T.marker_labels(self.instance, revision),
            host_config=self.api.create_host_config(network_mode="none"),
        )

    # -- images (see engine.resources) ----------------------------------------------------------
    def has_image(self, image: str) -> bool:
        return self.images.has(image)

    def ensure_image(self, image: str, policy: str) -> None:
        self.images.ensure(image, policy)

    def import_busybox_image(self, image: str, with_forwarder: bool = False) -> None:
        self.images.import_busybox(image, with_forwarder)

    def ensure_infra_image(self, image: str, with_forwarder: bool = False) -> None:
        self.images.ensure_infra(image, with_forwarder)

    def remove_network(self, network: Any) -> bool:
        return self.networks.remove(network)

    # -- create ------------------------------------------------------------------------------
    def _create(self, args: T.ContainerArgs, start: bool = True) -> str:
        """Create and (unless ``start`` is false) start one container from its translated
        arguments; its id."""
        from docker import types as docker_types  # self.api imported docker-py

        api = self.api
        networking = None
        if args.endpoint is not None:
            endpoint = args.endpoint
            networking = api.create_networking_config(
                {
                    endpoint.network: api.create_endpoint_config(
                        ipv4_address=endpoint.ipv4_address, aliases=list(endpoint.aliases) or None
                    )
                }
            )
        mounts = [
            docker_types.Mount(m.target, m.source, type="volume", read_only=m.read_only)
            for m in args.volume_mounts
        ]
        host_config = api.create_host_config(
            init=args.init,
            ipc_mode=args.ipc_mode,
            port_bindings=dict(args.port_bindings) or None,
            restart_policy={"Name": args.restart_policy},
            network_mode=args.network_mode,
            nano_cpus=args.nano_cpus,
            cpu_shares=args.cpu_shares,
            mem_limit=args.mem_limit,
            mem_reservation=args.mem_reservation,
            binds={k: dict(v) for k, v in args.binds.items()} or None,
            mounts=mounts or None,
            privileged=args.privileged,
            cap_add=list(args.cap_add) or None,
            cap_drop=list(args.cap_drop) or None,
            group_add=list(args.group_add) or None,
            read_only=args.read_only or None,
            security_opt=list(args.security_opt) or None,
            pid_mode=args.pid_mode,
            uts_mode=args.uts_mode,
            sysctls=dict(args.sysctls) or None,
        )
        created = self._create_named(
            api.create_container,
            args.image,
            name=args.name,
            hostname=args.hostname,
            entrypoint=list(args.entrypoint) if args.entrypoint is not None else None,
            command=list(args.command) if args.command is not None else None,
            environment=list(args.environment) or None,
            working_dir=args.working_dir,
            user=args.user,
            labels=dict(args.labels),
            ports=list(args.exposed) or None,
            host_config=host_config,
            networking_config=networking,
            healthcheck=args.healthcheck.as_docker() if args.healthcheck else None,
        )
        container_id = str(created["Id"])
        if start:
            self._call(f"start {args.name}", api.start, container_id)
        return container_id

    def _create_named(self, function: Any, *args: Any, name: str, **kwargs: Any) -> Any:
        """A create call; when the name is taken by a container that is not ours, an
        ``OwnershipError`` that names it (it is left alone), else Docker's own error."""
        kwargs["name"] = name
        try:
            return self._call(f"create {name}", function, *args, **kwargs)
        except ApplyError as exc:
            if "Conflict" not in str(exc) and "already in use" not in str(exc):
                raise
            self._refuse_foreign("container", name)
            raise

    def _refuse_foreign(self, kind: str, name: str) -> None:
        """Raise ``OwnershipError`` when the container called ``name`` is not ours."""
        try:
            info = self._call(f"inspect {name}", self.api.inspect_container, name)
        except NotFound:
            return
        if not L.is_owned((info.get("Config") or {}).get("Labels"), self.instance):
            raise OwnershipError(
                f"{kind} {name} on host {self.host.name} exists and does not carry this "
                "instance's labels: left alone (remove or rename it, or choose another "
                "--instance)"
            )

    def _create_volumes(self, pod: DesiredPod) -> None:
        for volume in T.volume_args(pod, self.instance):
            made = self._call(
                f"create volume {volume.name}",
                self.api.create_volume,
                name=volume.name,
                driver=volume.driver,
                driver_opts=dict(volume.driver_opts) if volume.driver_opts else None,
                labels=dict(volume.labels),
            )
            # Docker answers a create of an existing name with that volume, labels and all:
            # someone else's data must never be mounted into our pod
            if not L.is_owned((made or {}).get("Labels"), self.instance):
                raise OwnershipError(
                    f"volume {volume.name} on host {self.host.name} exists and does not carry "
                    "this instance's labels: left alone (remove or rename it, or choose another "
                    "--instance)"
                )

    def _create_infra(self, pod: DesiredPod) -> str:
        """A pod's infra container, or a Service's forwarder, on the instance network."""
        if pod.network is not None:
            self.networks.ensure(pod.network)
        return self._create(T.infra_args(pod, self.instance, self.revision))

    def _create_app(
        self, pod: DesiredPod, container: DesiredContainer, infra_id: str, pod_ip: str = ""
    ) -> str:
        return self._create(
            T.app_args(pod, container, infra_id, self.instance, self.revision, pod_ip)
        )

    def _fill_files(self, pod: DesiredPod, infra_id: str) -> None:
        """Write each files volume's files (Secrets, ConfigMaps, the downward API) through
        the running infra container into its tmpfs volume, before any app container starts:
        the bytes go from memory to memory, never to a file on either machine."""
        for volume in pod.volumes:
            if volume.source == "files" and volume.files:
                self._call(
                    f"write files of volume {volume.name}",
                    self.api.put_archive,
                    infra_id,
                    T.files_target(volume),
                    T.files_archive(volume),
                )

    def _pod_ip(self, pod: DesiredPod, infra_id: str) -> str:
        """The pod's address, when a container asks for it (fieldRef status.podIP)."""
        if not any(c.pod_ip_env for c in pod.app_containers):
            return ""
        info = self._call("inspect infra", self.api.inspect_container, infra_id)
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        return next((str(n.get("IPAddress")) for n in networks.values() if n.get("IPAddress")), "")

    def remove_volume(self, volume: LiveVolume) -> None:
        """Remove one of our volumes (a claim's, asked for by ``down --volumes`` or
        ``--prune-volumes``); refused when it does not carry our labels, or is in use."""
        if not L.is_owned(volume.labels, self.instance):
            raise OwnershipError(f"volume {volume.name} is not ours: left alone")
        self._call(f"remove volume {volume.name}", self.api.remove_volume, volume.name)

    def _infra_id(self, pod: DesiredPod) -> str:
        name = pod.containers[0].docker_name
        try:
            info = self._call("inspect infra", self.api.inspect_container, name)
        except NotFound as exc:
            raise ApplyError(f"infra container of pod {pod.name} is gone") from exc
        if not L.is_owned((info.get("Config") or {}).get("Labels"), self.instance):
            raise OwnershipError(
                f"container {name} on host {self.host.name} does not carry this instance's "
                "labels: left alone, and no container of ours joins it"
            )
        return str(info["Id"])

    def _check_non_root(self, container: DesiredContainer) -> None:
        """``runAsNonRoot`` without a ``runAsUser``: the image's own user must be a non-zero
        number, as Kubernetes checks before it starts a container."""
        security = container.security
        if security is None or not security.run_as_non_root or security.user:
            return
        info = self._call("inspect image", self.api.inspect_image, container.image)
        user = str((info.get("Config") or {}).get("User") or "")
        if T.runs_as_root(user):
            shown = repr(user) if user else "root (no USER)"
            raise ApplyError(
                f"CreateContainerConfigError: container {container.container} has "
                f"runAsNonRoot and image {container.image} runs as {shown}: set runAsUser"
            )

    def _discard(self, container_ids: Sequence[str], pod: DesiredPod) -> None:
        for container_id in reversed(container_ids):
            # best effort: whatever stays is labelled, and the next pass removes it
            with contextlib.suppress(Exception):
                self.api.remove_container(container_id, force=True)
        self._remove_volumes(pod.namespace, pod.name)

    # -- start, stop, remove -----------------------------------------------------------------
    def start(self, container: LiveContainer) -> None:
        self._call(f"start {container.name}", self.api.start, container.id)

    def remove(self, containers: Sequence[LiveContainer]) -> None:
        """Stop app containers first, then the infra container; then remove all of them.

        Each one's labels are checked first, whatever listed it: only ours are touched.
        """
        for container in containers:
            if not L.is_owned(container.labels, self.instance):
                raise OwnershipError(
                    f"container {container.name} on host {self.host.name} does not carry this "
                    "instance's labels: left alone"
                )
        ordered = sorted(containers, key=lambda c: c.labels.get(L.ROLE) == L.ROLE_INFRA)
        for container in ordered:
            if container.state in ("running", "restarting", "paused"):
                with contextlib.suppress(NotFound):
                    self._call(
                        f"stop {container.name}",
                        self.api.stop,
                        container.id,
                        timeout=self.grace_seconds,
                    )
        for container in ordered:
            with contextlib.suppress(NotFound):
                self._call(
                    f"remove {container.name}", self.api.remove_container, container.id, force=True
                )

    def remove_pod(self, containers: Sequence[LiveContainer]) -> None:
        for container in containers:  # first: a forwarder never outlives its record
            if container.labels.get(L.ROLE) == L.ROLE_FORWARDER:
                self.forwarder_records.remove_of(container)
        self.remove(containers)
        for container in containers:  # every container of a pod carries its pod labels
            if container.labels.get(L.POD):
                self._remove_volumes(
                    container.labels.get(L.POD_NAMESPACE, ""), container.labels.get(L.POD, "")
                )
                break

    def _remove_volumes(self, namespace: str, pod: str) -> None:
        filters = {
            "label": [
                *L.ownership_filters(self.instance),
                f"{L.POD}={pod}",
                f"{L.POD_NAMESPACE}={namespace}",
            ]
        }
        found = self._call("list volumes", self.api.volumes, filters=filters)
        for volume in (found or {}).get("Volumes") or []:
            if L.is_owned(volume.get("Labels"), self.instance):
                with contextlib.suppress(NotFound):
                    self._call("remove volume", self.api.remove_volume, volume["Name"], force=True)

    # -- reading for `get` -------------------------------------------------------------------
    def restart_counts(self, containers: Sequence[LiveContainer]) -> dict[str, int]:
        """RestartCount per container id (one inspect each: only `get` needs it)."""
        counts = {}
        for container in containers:
            try:
                info = self._call("inspect", self.api.inspect_container, container.id)
            except ApplyError:  # NotFound included: it went away meanwhile
                continue
            counts[container.id] = int(info.get("RestartCount", 0))
        return counts
