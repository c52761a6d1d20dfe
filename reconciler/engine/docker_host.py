"""The only module that talks to Docker: observe a host, create/start/stop/remove.

Every Docker error is translated into ours (``raise ... from``): HostUnavailable when the
engine cannot be reached (temporary), ApplyError when it refused an action, ImagePullError
for images that cannot be had (the pod's status becomes ErrImagePull, the run goes on).

Observation is one ``GET /containers/json`` per host filtered by our labels: the list
already carries labels, state and status, so a no-op pass inspects nothing.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import docker
import docker.errors
import docker.tls
import requests

from reconciler.core import labels as L
from reconciler.core.errors import ApplyError, ForwarderBuildError, HostUnavailable, ImagePullError
from reconciler.core.model import (
    DesiredContainer,
    DesiredPod,
    HostState,
    LiveContainer,
    NetworkSpec,
)
from reconciler.engine.images import PAUSE_COMMAND, busybox_rootfs, find_static_busybox
from reconciler.forwarder.build import FORWARDER_PATH, forwarder_binary
from reconciler.source.hosts import Host

DOCKER_RESTART_POLICY = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
#: Seconds to open a TCP connection to an engine. A host that drops packets (powered off,
#: firewalled) is then reported unreachable this fast, not after the whole request timeout.
CONNECT_TIMEOUT = 5.0


class _APIClient(docker.APIClient):  # type: ignore[misc]
    """docker's client, with ``CONNECT_TIMEOUT`` on engines reached over TCP.

    docker-py takes one number for both connecting and reading (and adds to it for
    ``stop``), so the split is made here, per request, where requests accepts a
    ``(connect, read)`` pair. Unix sockets and ssh (``http+docker://`` URLs) are left as
    they are: they connect at once or fail at once.
    """

    def send(self, request: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        if isinstance(timeout, int | float) and str(request.url).startswith(
            ("http://", "https://")
        ):
            kwargs["timeout"] = (min(CONNECT_TIMEOUT, float(timeout)), timeout)
        return super().send(request, **kwargs)


def _explain(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode(errors="replace")
        return str(explanation or exc)
    return str(exc)


class DockerHost:
    """A connection to one engine, counting the API calls it makes."""

    def __init__(
        self,
        host: Host,
        *,
        instance: str,
        revision: str = "",
        grace_seconds: int = 10,
        timeout: float = 60.0,
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
        self._images_present: set[str] = set()
        self._image_locks: dict[str, threading.Lock] = {}
        self._networks_present: set[str] = set()

    # -- connection ------------------------------------------------------------------------
    @property
    def api(self) -> docker.APIClient:
        with self._lock:
            if self._api is None:
                self._api = self._connect()
            return self._api

    def _connect(self) -> docker.APIClient:
        tls: Any = False
        if self.host.tls is not None:
            cfg = self.host.tls
            tls = docker.tls.TLSConfig(
                client_cert=(cfg.cert, cfg.key) if cfg.cert and cfg.key else None,
                ca_cert=cfg.ca,
                verify=cfg.ca if cfg.verify and cfg.ca else cfg.verify,
            )
        try:
            api = _APIClient(
                base_url=self.host.url,
                version=self.host.api_version,
                timeout=int(self.timeout),
                tls=tls,
                use_ssh_client=self.host.url.startswith("ssh://"),
                max_pool_size=16,
            )
        except docker.errors.DockerException as exc:
            raise HostUnavailable(
                f"host {self.host.name} ({self.host.url}): {_explain(exc)}"
            ) from exc

        def count(response: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if response.request.method not in ("GET", "HEAD"):
                self.writes += 1
            return response

        api.hooks["response"].append(count)
        return api

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one Docker call, translating its errors into ours."""
        try:
            return function(*args, **kwargs)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise HostUnavailable(f"host {self.host.name} ({self.host.url}): {exc}") from exc
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as exc:
            raise ApplyError(f"{what}: {_explain(exc)}") from exc
        except docker.errors.DockerException as exc:
            raise HostUnavailable(f"host {self.host.name}: {_explain(exc)}") from exc

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # -- observe -----------------------------------------------------------------------------
    def observe(self) -> HostState:
        """Our containers on this host, from a single list call."""
        try:
            raw = self._call(
                "list containers",
                self.api.containers,
                all=True,
                filters={"label": L.ownership_filters(self.instance)},
            )
        except HostUnavailable as exc:
            return HostState(self.host.name, reachable=False, error=str(exc))
        except ApplyError as exc:
            return HostState(self.host.name, reachable=False, error=str(exc))
        owned = [item for item in raw if L.is_owned(item.get("Labels"), self.instance)]
        markers = [i for i in owned if (i.get("Labels") or {}).get(L.ROLE) == L.ROLE_STATE]
        containers = tuple(
            live_container(self.host.name, item) for item in owned if item not in markers
        )
        applied = max(markers, key=lambda i: int(i.get("Created", 0)), default=None)
        return HostState(
            self.host.name,
            reachable=True,
            containers=containers,
            applied_revision=(applied.get("Labels") or {}).get(L.REVISION, "") if applied else "",
        )

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

    def remove_state_marker(self) -> None:
        """Forget the recorded revision (``down`` of everything)."""
        with contextlib.suppress(docker.errors.NotFound):
            self._call(
                "remove state marker",
                self.api.remove_container,
                f"{self.instance}_reconciler_state",
                force=True,
            )

    def record_revision(self, revision: str, image: str) -> None:
        """Remember on the host which revision was applied last: a container that is never
        started, labelled with it (Docker labels cannot change, so it is replaced). A
        restarted service reads it back from the same list call as everything else."""
        name = f"{self.instance}_reconciler_state"
        self.remove_state_marker()
        self.ensure_infra_image(image)
        self._call(
            "record revision",
            self.api.create_container,
            image,
            command=["true"],
            name=name,
            labels={
                L.MANAGED_BY: L.MANAGED_BY_VALUE,
                L.INSTANCE: self.instance,
                L.ROLE: L.ROLE_STATE,
                L.REVISION: revision,
            },
            host_config=self.api.create_host_config(network_mode="none"),
        )

    def engine_version(self) -> str:
        info = self._call("version", self.api.version)
        return str(info.get("Version", ""))

    # -- images ------------------------------------------------------------------------------
    def _image_lock(self, image: str) -> threading.Lock:
        with self._lock:
            return self._image_locks.setdefault(image, threading.Lock())

    def has_image(self, image: str) -> bool:
        try:
            self._call("inspect image", self.api.inspect_image, image)
            return True
        except docker.errors.NotFound:
            return False

    def ensure_image(self, image: str, policy: str) -> None:
        """Make ``image`` present per Kubernetes' imagePullPolicy, or raise ImagePullError."""
        if image in self._images_present and policy != "Always":
            return
        with self._image_lock(image):
            if image in self._images_present and policy != "Always":
                return
            if policy != "Always" and self.has_image(image):
                self._images_present.add(image)
                return
            if policy == "Never":
                raise ImagePullError(
                    "ErrImageNeverPull",
                    f"image {image} is not on host {self.host.name} and imagePullPolicy is Never",
                )
            repository, _, tag = (
                image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
            )
            try:
                self._call("pull", self.api.pull, repository, tag=tag or "latest")
            except (ApplyError, docker.errors.NotFound) as exc:
                raise ImagePullError(
                    "ErrImagePull", f"cannot pull {image} on host {self.host.name}: {_explain(exc)}"
                ) from exc
            self._images_present.add(image)

    def import_busybox_image(self, image: str, with_forwarder: bool = False) -> None:
        """Create ``image`` on this host from the local static busybox (no registry).

        ``with_forwarder`` adds the Service forwarder program (compiled here on first use).
        """
        repository, _, tag = (
            image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        )
        programs: dict[str, bytes] = {}
        if with_forwarder:
            try:
                programs[FORWARDER_PATH] = forwarder_binary()
            except ForwarderBuildError as exc:
                raise ApplyError(
                    f"cannot make image {image} on host {self.host.name}: {exc}"
                ) from exc
        rootfs = busybox_rootfs(find_static_busybox(), programs)
        self._call(
            "import image",
            self.api.import_image_from_data,
            rootfs,
            repository=repository,
            tag=tag,
            changes=[f"CMD {json.dumps(list(PAUSE_COMMAND))}", "ENV PATH=/bin"],
        )
        self._images_present.add(image)

    def ensure_infra_image(self, image: str, with_forwarder: bool = False) -> None:
        """The pause (or forwarder) image: imported on first use when the host lacks it."""
        if image in self._images_present:
            return
        with self._image_lock(image):
            if image in self._images_present or self.has_image(image):
                self._images_present.add(image)
                return
            self.import_busybox_image(image, with_forwarder)

    # -- create ------------------------------------------------------------------------------
    def _labels(self, pod: DesiredPod, container: DesiredContainer) -> dict[str, str]:
        result = {
            L.MANAGED_BY: L.MANAGED_BY_VALUE,
            L.INSTANCE: self.instance,
            L.OWNER_KIND: pod.owner.kind,
            L.OWNER_NAMESPACE: pod.owner.namespace,
            L.OWNER_NAME: pod.owner.name,
            L.POD: pod.name,
            L.POD_NAMESPACE: pod.namespace,
            L.POD_LABELS: L.canonical_json(dict(pod.labels)),
            L.CONTAINER: container.container,
            L.ROLE: container.role,
            L.SPEC_HASH: pod.spec_hash,
            L.REVISION: self.revision,
            L.SOURCE: str(container.source or pod.source),
        }
        if pod.replica is not None:
            result[L.REPLICA] = str(pod.replica)
        if container.role in (L.ROLE_INFRA, L.ROLE_FORWARDER):
            result[L.SPEC] = L.canonical_json({"spec": pod.spec})
        if container.ipv4_address:
            result[L.CLUSTER_IP] = container.ipv4_address
        return result

    # -- the instance network ----------------------------------------------------------------
    def ensure_network(self, network: NetworkSpec) -> None:
        """Create the instance's network on this host unless it is there (once per run)."""
        if network.name in self._networks_present:
            return
        with self._image_lock("network:" + network.name):
            if network.name in self._networks_present:
                return
            found = self._call("list networks", self.api.networks, filters={"name": network.name})
            if not any(n.get("Name") == network.name for n in found or []):
                ipam = docker.types.IPAMConfig(
                    pool_configs=[
                        docker.types.IPAMPool(
                            subnet=network.subnet,
                            iprange=network.pod_range,
                            gateway=network.gateway,
                        )
                    ]
                )
                try:
                    self._call(
                        f"create network {network.name}",
                        self.api.create_network,
                        network.name,
                        driver="bridge",
                        ipam=ipam,
                        check_duplicate=True,
                        labels={L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTANCE: self.instance},
                    )
                except ApplyError as exc:
                    if "already exists" not in str(exc):
                        raise ApplyError(
                            f"{exc} (another network overlaps {network.subnet}: choose "
                            "another with --cluster-cidr)"
                            if "overlap" in str(exc)
                            else str(exc)
                        ) from exc
            self._networks_present.add(network.name)

    def remove_network(self, network: NetworkSpec) -> bool:
        """Remove the instance's network if it is ours and nothing uses it any more."""
        found = self._call("list networks", self.api.networks, filters={"name": network.name})
        for item in found or []:
            if item.get("Name") != network.name or not L.is_owned(
                item.get("Labels"), self.instance
            ):
                continue
            try:
                self._call("remove network", self.api.remove_network, item["Id"])
            except (ApplyError, docker.errors.NotFound):
                return False  # still in use: the next removal tries again
            self._networks_present.discard(network.name)
            return True
        return False

    def _create_volumes(self, pod: DesiredPod) -> None:
        for volume in pod.volumes:
            if volume.source != "emptyDir":
                continue
            options: dict[str, str] = {}
            if volume.medium == "Memory":
                options = {"type": "tmpfs", "device": "tmpfs"}
                if volume.size_bytes:
                    options["o"] = f"size={volume.size_bytes}"
            self._call(
                f"create volume {volume.docker_name}",
                self.api.create_volume,
                name=volume.docker_name,
                driver="local",
                driver_opts=options or None,
                labels={
                    L.MANAGED_BY: L.MANAGED_BY_VALUE,
                    L.INSTANCE: self.instance,
                    L.POD: pod.name,
                    L.POD_NAMESPACE: pod.namespace,
                },
            )

    def _create_infra(self, pod: DesiredPod) -> str:
        """A pod's infra container, or a Service's forwarder (same shape, its own program)."""
        infra = pod.containers[0]
        port_bindings: dict[str, list[Any]] = {}
        exposed: list[Any] = []
        for binding in infra.ports:
            key = f"{binding.container_port}/{binding.protocol.lower()}"
            if key not in port_bindings:
                exposed.append((binding.container_port, binding.protocol.lower()))
            host_port = binding.host_port or None  # 0: a port Docker picks
            target = (binding.host_ip, host_port) if binding.host_ip else host_port
            port_bindings.setdefault(key, []).append(target)
        networking = None
        if pod.network is not None:
            self.ensure_network(pod.network)
            networking = self.api.create_networking_config(
                {
                    pod.network.name: self.api.create_endpoint_config(
                        ipv4_address=infra.ipv4_address or None,
                        aliases=list(infra.aliases) or None,
                    )
                }
            )
        host_config = self.api.create_host_config(
            init=True,
            ipc_mode="shareable" if infra.role == L.ROLE_INFRA else None,
            port_bindings=port_bindings or None,
            restart_policy={"Name": "always"},
            network_mode=pod.network.name if pod.network is not None else None,
        )
        created = self._call(
            f"create {infra.docker_name}",
            self.api.create_container,
            infra.image,
            name=infra.docker_name,
            hostname=infra.hostname or None,
            entrypoint=list(infra.entrypoint) if infra.entrypoint is not None else None,
            command=list(infra.cmd) if infra.cmd is not None else None,
            labels=self._labels(pod, infra),
            ports=exposed or None,
            host_config=host_config,
            networking_config=networking,
        )
        container_id = str(created["Id"])
        self._call(f"start {infra.docker_name}", self.api.start, container_id)
        return container_id

    def _create_app(self, pod: DesiredPod, container: DesiredContainer, infra_id: str) -> str:
        binds: dict[str, dict[str, str]] = {}
        mounts: list[Any] = []
        volumes = {v.name: v for v in pod.volumes}
        for mount in container.mounts:
            volume = volumes[mount.volume]
            if volume.source == "hostPath":
                binds[volume.host_path] = {
                    "bind": mount.path,
                    "mode": "ro" if mount.read_only else "rw",
                }
            else:
                mounts.append(
                    docker.types.Mount(
                        mount.path, volume.docker_name, type="volume", read_only=mount.read_only
                    )
                )
        policy: dict[str, Any] = {"Name": DOCKER_RESTART_POLICY[container.restart_policy]}
        host_config = self.api.create_host_config(
            network_mode=f"container:{infra_id}",
            ipc_mode=f"container:{infra_id}",
            init=True,
            nano_cpus=container.nano_cpus,
            cpu_shares=container.cpu_shares,
            mem_limit=container.memory_bytes,
            mem_reservation=container.memory_reservation,
            binds=binds or None,
            mounts=mounts or None,
            restart_policy=policy,
        )
        created = self._call(
            f"create {container.docker_name}",
            self.api.create_container,
            container.image,
            name=container.docker_name,
            entrypoint=list(container.entrypoint) if container.entrypoint is not None else None,
            command=list(container.cmd) if container.cmd is not None else None,
            environment=[f"{k}={v}" for k, v in container.env] or None,
            working_dir=container.working_dir or None,
            labels=self._labels(pod, container),
            host_config=host_config,
        )
        container_id = str(created["Id"])
        self._call(f"start {container.docker_name}", self.api.start, container_id)
        return container_id

    def _infra_id(self, pod: DesiredPod) -> str:
        try:
            info = self._call(
                "inspect infra", self.api.inspect_container, pod.containers[0].docker_name
            )
        except docker.errors.NotFound as exc:
            raise ApplyError(f"infra container of pod {pod.name} is gone") from exc
        return str(info["Id"])

    def create_pod(self, pod: DesiredPod) -> None:
        """Volumes, infra container, then every app container; all or nothing."""
        for container in pod.app_containers:
            self.ensure_image(container.image, container.pull_policy)
        infra = pod.containers[0]
        self.ensure_infra_image(infra.image, with_forwarder=infra.role == L.ROLE_FORWARDER)
        created: list[str] = []
        try:
            self._create_volumes(pod)
            infra_id = self._create_infra(pod)
            created.append(infra_id)
            for container in pod.app_containers:
                created.append(self._create_app(pod, container, infra_id))
        except Exception:
            self._discard(created, pod)  # no half-made pod stays behind
            raise

    def create_container(self, pod: DesiredPod, name: str) -> None:
        container = next(c for c in pod.app_containers if c.container == name)
        self.ensure_image(container.image, container.pull_policy)
        self._create_app(pod, container, self._infra_id(pod))

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
        """Stop app containers first, then the infra container; then remove all of them."""
        ordered = sorted(containers, key=lambda c: c.labels.get(L.ROLE) == L.ROLE_INFRA)
        for container in ordered:
            if container.state in ("running", "restarting", "paused"):
                try:
                    self._call(
                        f"stop {container.name}",
                        self.api.stop,
                        container.id,
                        timeout=self.grace_seconds,
                    )
                except docker.errors.NotFound:
                    continue
        for container in ordered:
            try:
                self._call(
                    f"remove {container.name}", self.api.remove_container, container.id, force=True
                )
            except docker.errors.NotFound:
                continue

    def remove_pod(self, containers: Sequence[LiveContainer]) -> None:
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
                try:
                    self._call("remove volume", self.api.remove_volume, volume["Name"], force=True)
                except docker.errors.NotFound:
                    continue

    def wait_running(self, pod: DesiredPod, timeout: float = 30.0, settle: float = 0.5) -> None:
        """Block until every container of ``pod`` runs (and still runs after ``settle``)."""
        deadline = time.monotonic() + timeout
        names = [c.docker_name for c in pod.containers]
        stable_since: float | None = None
        while True:
            states = []
            for name in names:
                try:
                    info = self._call(f"inspect {name}", self.api.inspect_container, name)
                except docker.errors.NotFound as exc:
                    raise ApplyError(f"container {name} disappeared") from exc
                states.append(info["State"])
            if all(s.get("Running") and not s.get("Restarting") for s in states):
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= settle:
                    return
            else:
                stable_since = None
            if time.monotonic() > deadline:
                bad = [n for n, s in zip(names, states, strict=True) if not s.get("Running")]
                raise ApplyError(
                    f"pod {pod.name} is not running after {timeout:.0f}s ({', '.join(bad)})"
                )
            time.sleep(0.1)

    # -- reading for `get` -------------------------------------------------------------------
    def restart_counts(self, containers: Sequence[LiveContainer]) -> dict[str, int]:
        """RestartCount per container id (one inspect each: only `get` needs it)."""
        counts = {}
        for container in containers:
            try:
                info = self._call("inspect", self.api.inspect_container, container.id)
            except (docker.errors.NotFound, ApplyError):
                continue
            counts[container.id] = int(info.get("RestartCount", 0))
        return counts


def live_container(host: str, item: dict[str, Any]) -> LiveContainer:
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
