"""An in-memory host: a real implementation of the project's own ``Runtime`` protocols.

Not a mock of the Docker SDK: nothing here pretends to be ``docker``. It keeps containers as
the entries ``GET /containers/json`` lists (``Id``, ``Names``, ``Labels``, ``State``,
``Status``, ``Ports``, ``NetworkSettings``...), built from the same pure translation the real
engine edge uses (``engine.translate``), and reads them back with the same
``translate.host_state``. So a pass over ``MemoryHost``s sees exactly the labels, hashes and
states a pass over real engines would, and apply, converge, prune and rollout can run in a
unit test.

What it simulates on purpose: images (a missing image fails the create like a failed pull),
hosts that stop answering, containers that exit or are killed, foreign containers (not ours,
never listed to us), the event stream of ``die``/``destroy`` events, images whose containers
crash at once (``crashing``: a template whose pods never become ready), and the
Deployments' rollout markers. And health: a
container made with a health check lists ``(health: starting)`` until the test says what
its check found (``set_health``, which emits ``health_status`` as Docker does); init
containers run to completion at once, with the exit code ``init_exit`` gives (``init_running``
keeps one running); restarts, stops and forwarder reloads are recorded as a real engine
would show them (new instances with their labels; the forwarder's endpoints records).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from reconciler.core import labels as L
from reconciler.core.errors import (
    ApplyError,
    HostUnavailable,
    ImagePullError,
    InitError,
    NotFound,
    OwnershipError,
)
from reconciler.core.model import (
    DesiredContainer,
    DesiredPod,
    HostState,
    LiveContainer,
    LiveVolume,
    ObjectRef,
    Restart,
)
from reconciler.engine import endpoints as E
from reconciler.engine import rollout_markers
from reconciler.engine import translate as T
from reconciler.plan.live import pod_ready

_ids = itertools.count(1)


class MemoryEvents:
    """A closable, blocking stream of event dicts, as ``DockerHost.container_events``."""

    def __init__(self) -> None:
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def put(self, event: dict[str, Any]) -> None:
        self._queue.put(event)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        self._queue.put(None)


class MemoryHost:
    """One host's containers in memory, driven through the ``ServiceRuntime`` protocol."""

    def __init__(
        self,
        name: str,
        *,
        instance: str = L.DEFAULT_INSTANCE,
        revision: str = "",
        images: Sequence[str] = (),
        address: str = "",
    ) -> None:
        self.name = name
        self.instance = instance
        self.revision = revision
        self.address = address
        self.images: set[str] = set(images)  # pullable or present; anything else fails
        self.reachable = True
        self.containers: dict[str, dict[str, Any]] = {}  # id -> list entry
        self.volumes: dict[str, dict[str, str]] = {}  # name -> labels
        #: files volume name -> {path: (bytes, mode)}, as the archive API would extract them
        self.files: dict[str, dict[str, tuple[bytes, int]]] = {}
        self.calls: list[str] = []  # every operation, in order ("create web-0/POD", ...)
        self.environments: dict[str, dict[str, str]] = {}  # docker name -> its env, as created
        self.fail_create: set[str] = set()  # docker names whose create the engine refuses
        #: images whose containers exit at once (code 3) and are restarted by the engine:
        #: they never run long enough to be ready
        self.crashing: set[str] = set()
        self.closed = False
        self.init_exit: dict[str, int] = {}  # docker name -> exit code of an init container
        self.init_running: set[str] = set()  # init containers that do not finish (yet)
        self.endpoints: dict[str, bytes] = {}  # forwarder id -> the endpoints file it was given
        self.signals: list[tuple[str, str]] = []  # (container name, signal) sent by reloads
        self.clock: Callable[[], float] = time.time
        self._lock = threading.Lock()
        self._ips = itertools.count(2)
        self._ports = itertools.count(32768)
        self._streams: list[MemoryEvents] = []

    # -- the simulation's own controls ------------------------------------------------------------
    def _check(self, what: str) -> None:
        if not self.reachable:
            raise HostUnavailable(f"host {self.name} (memory): {what}: connection refused")

    def by_name(self, name: str) -> dict[str, Any]:
        for item in self.containers.values():
            if item["Names"] == [f"/{name}"]:
                return item
        raise NotFound(f"no container {name}")

    def exit(self, name: str, code: int = 137) -> None:
        """The container stops (crash, kill, OOM): what a pass must notice and heal."""
        item = self.by_name(name)
        item["State"], item["Status"] = "exited", f"Exited ({code}) 1 second ago"
        self._emit("die", item)

    def set_health(self, name: str, health: str) -> None:
        """What the container's Docker health check found: healthy, unhealthy or starting."""
        item = self.by_name(name)
        base = item["Status"].split(" (", 1)[0]
        item["Status"] = (
            f"{base} (health: starting)" if health == "starting" else f"{base} ({health})"
        )
        self._emit(f"health_status: {health}", item)

    def finish(self, name: str, code: int = 0) -> None:
        """An init container still running (``init_running``) exits."""
        item = self.by_name(name)
        item["State"], item["Status"] = "exited", f"Exited ({code}) Less than a second ago"
        self._emit("die", item)

    def remove_by_hand(self, name: str) -> None:
        item = self.by_name(name)
        del self.containers[item["Id"]]
        self._emit("destroy", item)

    def add_foreign(self, name: str, labels: dict[str, str] | None = None) -> str:
        """A container someone else made: the reconciler must never list or touch it."""
        return self._add(name, "busybox", dict(labels or {}), ())

    def running(self) -> dict[str, str]:
        """docker name -> state, of every container (ours or not)."""
        return {i["Names"][0].lstrip("/"): i["State"] for i in self.containers.values()}

    def _emit(self, action: str, item: dict[str, Any]) -> None:
        if not L.is_owned(item["Labels"], self.instance):
            return
        event = {
            "id": item["Id"],
            "Action": action,
            "Actor": {"ID": item["Id"], "Attributes": {**item["Labels"], "name": item["Names"][0]}},
        }
        for stream in self._streams:
            stream.put(event)

    def _add(
        self,
        name: str,
        image: str,
        labels: dict[str, str],
        ports: Sequence[dict[str, Any]],
        checked: bool = False,
    ) -> str:
        with self._lock:
            if any(i["Names"] == [f"/{name}"] for i in self.containers.values()):
                raise ApplyError(f"create {name}: Conflict. The container name is already in use")
            container_id = f"{next(_ids):064x}"
            self.containers[container_id] = {
                "Id": container_id,
                "Names": [f"/{name}"],
                "Image": image,
                "Labels": labels,
                "State": "running",
                "Status": "Up Less than a second" + (" (health: starting)" if checked else ""),
                "Created": int(self.clock()),
                "Ports": list(ports),
                "NetworkSettings": {"Networks": {}},
            }
            return container_id

    # -- Runtime -----------------------------------------------------------------------------------
    def create_pod(self, pod: DesiredPod) -> None:
        self._check("create")
        for container in pod.app_containers:
            if container.image not in self.images:
                raise ImagePullError(
                    "ErrImagePull", f"cannot pull {container.image} on host {self.name}"
                )
        for volume in T.volume_args(pod, self.instance):
            self.volumes[volume.name] = dict(volume.labels)
        infra = T.infra_args(pod, self.instance, self.revision)
        made: list[str] = []
        try:
            infra_id = self._create(infra)
            made.append(infra_id)
            for spec in pod.volumes:
                if spec.source == "files":
                    self.files[spec.docker_name] = {f.path: (f.data, f.mode) for f in spec.files}
            networks = self.containers[infra_id]["NetworkSettings"]["Networks"]
            pod_ip = next((n["IPAddress"] for n in networks.values()), "")
            for container in pod.init_containers:  # one at a time, each to completion
                args = T.app_args(pod, container, infra_id, self.instance, self.revision, pod_ip)
                made.append(self._create(args))
                if not self._run_init(container):
                    self.calls.append(f"create {pod.name} (initializing)")
                    return
            for container in pod.app_containers:
                args = T.app_args(pod, container, infra_id, self.instance, self.revision, pod_ip)
                made.append(self._create(args))
        except InitError:
            self.calls.append(f"create {pod.name} (init failed)")
            raise
        except ApplyError:
            for container_id in made:  # all or nothing, as DockerHost.create_pod
                self.containers.pop(container_id, None)
            raise
        self.calls.append(f"create {pod.name}")

    def _run_init(self, container: DesiredContainer) -> bool:
        """True when the init container completed; False while it runs; InitError."""
        if container.docker_name in self.init_running:
            return False
        code = self.init_exit.get(container.docker_name, 0)
        self.finish(container.docker_name, code)
        if code:
            raise InitError(f"init container {container.container} exited {code}")
        return True

    def _create(self, args: T.ContainerArgs) -> str:
        if args.name in self.fail_create:
            raise ApplyError(f"create {args.name}: refused by the engine")
        ports = []
        for key, bindings in args.port_bindings.items():
            port, _, proto = key.partition("/")
            for binding in bindings:
                public = binding[1] if isinstance(binding, tuple) else binding
                ports.append(
                    {
                        "PrivatePort": int(port),
                        "PublicPort": int(public or next(self._ports)),
                        "Type": proto,
                    }
                )
        checked = args.healthcheck is not None
        container_id = self._add(args.name, args.image, dict(args.labels), ports, checked)
        self.environments[args.name] = dict(e.split("=", 1) for e in args.environment)
        self.containers[container_id]["Mounts"] = [
            {"Type": "volume", "Name": m.source, "Destination": m.target}
            for m in args.volume_mounts
        ]
        if args.image in self.crashing:
            item = self.containers[container_id]
            item["State"], item["Status"] = "restarting", "Restarting (3) Less than a second ago"
        if args.endpoint is not None:
            address = args.endpoint.ipv4_address or f"10.99.0.{next(self._ips)}"
            self.containers[container_id]["NetworkSettings"] = {
                "Networks": {args.endpoint.network: {"IPAddress": address}}
            }
        return container_id

    def create_container(self, pod: DesiredPod, name: str) -> None:
        self._check("create")
        infra = self.by_name(pod.containers[0].docker_name)
        container = next(c for c in pod.containers[1:] if c.container == name)
        if container.image not in self.images:
            raise ImagePullError("ErrImagePull", f"cannot pull {container.image}")
        self._create(T.app_args(pod, container, infra["Id"], self.instance, self.revision))
        self.calls.append(f"create {pod.name}/{name}")
        if container.role == L.ROLE_INIT:
            self._run_init(container)

    def restart_container(
        self, pod: DesiredPod, name: str, live: Sequence[LiveContainer], restart: Restart
    ) -> None:
        self._check("restart")
        infra = self.by_name(pod.containers[0].docker_name)
        container = next(c for c in pod.containers[1:] if c.container == name)
        self.remove(live)
        args = T.app_args(
            pod, container, infra["Id"], self.instance, self.revision, restart=restart
        )
        container_id = self._create(args)
        item = self.containers[container_id]
        if restart.start_after > self.clock():
            item["State"], item["Status"] = "created", "Created"
        elif container.role == L.ROLE_INIT and container.docker_name not in self.init_running:
            code = self.init_exit.get(container.docker_name, 0)
            item["State"], item["Status"] = "exited", f"Exited ({code}) Less than a second ago"
        self.calls.append(f"restart {pod.name}/{name} #{restart.count}")

    def stop(self, container: LiveContainer) -> None:
        self._check("stop")
        item = self.containers.get(container.id)
        if item is None:
            raise NotFound(f"stop {container.name}: no such container")
        item["State"], item["Status"] = "exited", "Exited (137) Less than a second ago"
        self.calls.append(f"stop {container.name}")
        self._emit("die", item)

    def reload_forwarder(self, pod: DesiredPod, live: Sequence[LiveContainer]) -> None:
        self._check("reload")
        forwarder = next(c for c in live if c.labels.get(L.ROLE) == L.ROLE_FORWARDER)
        if forwarder.id not in self.containers:
            raise NotFound(f"reload {forwarder.name}: no such container")
        self.endpoints[forwarder.id] = E.endpoints_file(pod)
        self.signals.append((forwarder.name, "SIGHUP"))
        self._remove_record(E.endpoints_record_name(pod))
        for record in live:
            if record is not forwarder:
                self.containers.pop(record.id, None)
        args = E.endpoints_record_args(pod, forwarder.id, self.instance, self.revision)
        container_id = self._add(args.name, args.image, dict(args.labels), ())
        self.containers[container_id]["State"] = "created"
        self.containers[container_id]["Status"] = "Created"
        self.calls.append(f"reload {pod.name}")

    def _remove_record(self, name: str) -> None:
        for container_id, item in list(self.containers.items()):
            if item["Names"] == [f"/{name}"] and L.is_owned(item["Labels"], self.instance):
                del self.containers[container_id]
                self._emit("destroy", item)

    def start(self, container: LiveContainer) -> None:
        self._check("start")
        item = self.containers.get(container.id)
        if item is None:
            raise NotFound(f"start {container.name}: no such container")
        item["State"], item["Status"] = "running", "Up Less than a second"
        if item["Image"] in self.crashing:
            item["State"], item["Status"] = "restarting", "Restarting (3) Less than a second ago"
        self.calls.append(f"start {container.name}")

    def remove(self, containers: Sequence[LiveContainer]) -> None:
        self._check("remove")
        for container in containers:  # as DockerHost.remove: labels first, whatever listed it
            if not L.is_owned(container.labels, self.instance):
                raise OwnershipError(f"container {container.name} is not ours: left alone")
        for container in containers:
            item = self.containers.pop(container.id, None)
            if item is not None:
                self._emit("destroy", item)
                self.calls.append(f"remove {container.name}")

    def remove_pod(self, containers: Sequence[LiveContainer]) -> None:
        for container in containers:
            if container.labels.get(L.ROLE) == L.ROLE_FORWARDER:
                self._remove_record(container.name.removesuffix(L.INFRA_CONTAINER) + "endpoints")
        self.remove(containers)
        for container in containers:
            pod, namespace = container.labels.get(L.POD), container.labels.get(L.POD_NAMESPACE)
            for name, labels in list(self.volumes.items()):
                if labels.get(L.POD) == pod and labels.get(L.POD_NAMESPACE) == namespace:
                    del self.volumes[name]
                    self.files.pop(name, None)

    def remove_volume(self, volume: LiveVolume) -> None:
        self._check("remove volume")
        if not L.is_owned(self.volumes.get(volume.name), self.instance):
            raise ApplyError(f"volume {volume.name} is not ours")
        del self.volumes[volume.name]
        self.calls.append(f"remove volume {volume.name}")

    def wait_ready(self, pod: DesiredPod, timeout: float = 30.0, settle: float = 0.5) -> None:
        """No clock here: the pod is ready now, or it never will be (an image that crashes)."""
        names = {c.docker_name for c in pod.containers if c.role != L.ROLE_INIT}
        found = [c for c in self.observe().containers if c.name in names]
        if len(found) != len(names) or not pod_ready(found):
            raise ApplyError(f"pod {pod.name} is not ready after {timeout:.0f}s")

    # -- HostRuntime / ServiceRuntime ------------------------------------------------------
    def observe(self, volumes: bool | None = None) -> HostState:
        if not self.reachable:
            return HostState(self.name, reachable=False, error=f"host {self.name}: unreachable")
        with self._lock:  # the engine's label filter: only this instance's objects
            listed = [
                dict(i) for i in self.containers.values() if L.is_owned(i["Labels"], self.instance)
            ]
            wanted = volumes or (volumes is None and T.mounts_claims(self.instance, listed))
            found = [
                {"Name": name, "Labels": dict(labels), "Driver": "local"}
                for name, labels in self.volumes.items()
                if L.is_owned(labels, self.instance) and wanted
            ]
        return T.host_state(self.name, self.instance, listed, found)

    def close(self) -> None:
        self.closed = True
        for stream in self._streams:
            stream.close()

    def container_events(self, actions: Sequence[str]) -> MemoryEvents:
        self._check("events")
        stream = MemoryEvents()
        self._streams.append(stream)
        return stream

    def engine_version(self) -> str:
        self._check("version")
        return "memory-1.0"

    def record_revision(self, revision: str, image: str) -> None:
        self._check("record revision")
        name = T.marker_name(self.instance)
        for container_id, item in list(self.containers.items()):
            if item["Names"] == [f"/{name}"] and L.is_owned(item["Labels"], self.instance):
                del self.containers[container_id]
        container_id = self._add(name, image, T.marker_labels(self.instance, revision), ())
        self.containers[container_id]["State"] = "created"

    # -- rollout markers -------------------------------------------------------------------------
    def markers(self, deployment: ObjectRef) -> list[dict[str, Any]]:
        """The rollout markers of one Deployment on this host, as listed."""
        wanted = {
            label.partition("=")[0]: label.partition("=")[2]
            for label in rollout_markers.rollout_marker_filters(self.instance, deployment)
        }
        return [
            item
            for item in self.containers.values()
            if all(item["Labels"].get(k) == v for k, v in wanted.items())
        ]

    def record_rollout(
        self, deployment: ObjectRef, memory: str, generation: int, image: str
    ) -> None:
        self._check("record rollout")
        name = rollout_markers.rollout_marker_name(self.instance, deployment, generation)
        before = self.markers(deployment)
        for item in before:
            if item["Names"] == [f"/{name}"]:
                del self.containers[item["Id"]]
        labels = rollout_markers.rollout_marker_labels(
            self.instance, deployment, memory, generation
        )
        container_id = self._add(name, image, labels, ())
        self.containers[container_id]["State"] = "created"
        for item in before:
            if int(item["Labels"][L.GENERATION]) < generation:
                self.containers.pop(item["Id"], None)
                self._emit("destroy", item)  # as the engine reports any removal
        self.calls.append(f"record rollout {deployment.name} {generation}")

    def forget_rollout(self, deployment: ObjectRef) -> None:
        self._check("forget rollout")
        for item in self.markers(deployment):
            del self.containers[item["Id"]]
        self.calls.append(f"forget rollout {deployment.name}")

    def failure_details(self, containers: Sequence[LiveContainer]) -> dict[str, str]:
        self._check("inspect")
        details = {}
        for container in containers:
            item = self.containers.get(container.id)
            if item is not None:
                name = item["Labels"].get(L.CONTAINER, "")
                code = " exit code 3," if item["State"] == "restarting" else ""
                details[container.id] = f"container {name} {item['State']},{code} (memory)"
        return details
