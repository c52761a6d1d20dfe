"""The probe tools volume of one host: a static busybox that every health check runs.

Health checks run inside their containers, whose images may hold no shell, curl or wget
(docs/health.md). So each host gets one read-only volume per instance holding the
reconciler machine's static busybox, mounted at ``/.reconciler-probe`` in every checked
container. It is filled by Docker's own copy-up: an empty named volume mounted where an
image has files receives them when the container is created. The image is imported once
from the local busybox (no registry); a never-started helper container mounts the volume
and is removed at once. Filling is idempotent (copy-up only fills an empty volume), so it
is simply done once per connection, before the first probed pod.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.core import labels as L
from reconciler.core.errors import ApplyError, NotFound
from reconciler.engine import probes as P
from reconciler.engine import translate as T
from reconciler.engine.images import find_static_busybox, probe_tools_rootfs

if TYPE_CHECKING:
    import docker

#: ``call(what, function, *args, **kwargs)``: a Docker call with our errors (engine.client).
Call = Callable[..., Any]


class HostProbeTools:
    """Makes sure the probe tools volume of ``instance`` is on the host, once."""

    def __init__(self, call: Call, api: Callable[[], docker.APIClient], instance: str) -> None:
        self._call = call
        self._api = api
        self._instance = instance
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            busybox = find_static_busybox()
            # named by what it holds and where: another busybox or layout, another image
            digest = hashlib.sha256(busybox + P.TOOLS_MOUNT.encode()).hexdigest()[:12]
            image = f"reconciler/probe-tools:{digest}"
            self._ensure_image(image, busybox)
            self._fill(image)
            self._ready = True

    def _ensure_image(self, image: str, busybox: bytes) -> None:
        api = self._api()
        try:
            self._call("inspect image", api.inspect_image, image)
            return
        except NotFound:
            pass
        repository, tag = T.image_reference(image)
        self._call(
            "import image",
            api.import_image_from_data,
            probe_tools_rootfs(busybox, P.TOOLS_MOUNT),
            repository=repository,
            tag=tag,
            changes=[f"CMD {json.dumps([P.BUSYBOX, 'true'])}"],
        )

    def _fill(self, image: str) -> None:
        from docker import types as docker_types  # the client is docker-py's already

        api = self._api()
        volume = P.tools_volume(self._instance)
        owned = T.ownership_labels(self._instance)
        self._call("create volume", api.create_volume, name=volume, labels=owned)
        name = f"{self._instance}_reconciler_probe_fill"
        self._remove_helper(name)
        host_config = api.create_host_config(
            network_mode="none",
            mounts=[docker_types.Mount(P.TOOLS_MOUNT, volume, type="volume")],
        )
        created = self._call(
            "fill probe tools",
            api.create_container,
            image,
            name=name,
            labels={**owned, L.ROLE: L.ROLE_TOOLS},
            host_config=host_config,
        )
        with contextlib.suppress(NotFound):
            self._call("remove helper", api.remove_container, created["Id"], force=True)

    def _remove_helper(self, name: str) -> None:
        """A helper left by an interrupted fill (only ever ours: checked by its labels)."""
        try:
            info = self._call("inspect helper", self._api().inspect_container, name)
        except NotFound:
            return
        if L.is_owned((info.get("Config") or {}).get("Labels"), self._instance):
            with contextlib.suppress(NotFound):
                self._call("remove helper", self._api().remove_container, info["Id"], force=True)

    def remove(self) -> None:
        """The volume goes with the instance's last pod (``down``); in use, it stays."""
        api = self._api()
        volume = P.tools_volume(self._instance)
        try:
            info = self._call("inspect volume", api.inspect_volume, volume)
        except NotFound:
            return
        if L.is_owned(info.get("Labels"), self._instance):
            with contextlib.suppress(ApplyError):  # in use: the next down tries again
                self._call("remove volume", api.remove_volume, volume)
        self._ready = False
