"""A Service forwarder's endpoints, changed in place: connections through it go on.

The forwarder (``forwarder/forwarder.c``) reads its endpoints from a file when it gets
SIGHUP and keeps every connection it carries. So a reload is: write the file into the
running container (``PUT /containers/{id}/archive``), signal it (``POST .../kill``), then
replace the never-started record that says what it was given (labels cannot change; the
record is listed by the same one list call as everything else, so no pass ever has to read
a forwarder to know its routes). docs/services.md tells why and what it costs.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.core import labels as L
from reconciler.core.errors import NotFound
from reconciler.core.model import DesiredPod, LiveContainer
from reconciler.engine import endpoints as E

if TYPE_CHECKING:
    import docker

#: ``call(what, function, *args, **kwargs)``: a Docker call with our errors (engine.client).
Call = Callable[..., Any]


def endpoints_archive(pod: DesiredPod, now: float) -> bytes:
    """A tar holding the forwarder's endpoints file, as the archive API takes it."""
    data = E.endpoints_file(pod)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(E.ENDPOINTS_FILE.rsplit("/", 1)[1])
        info.size, info.mode, info.mtime = len(data), 0o644, int(now)
        tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


class ForwarderReload:
    """Reloads the forwarders of one host and keeps their records."""

    def __init__(self, call: Call, api: Callable[[], docker.APIClient], instance: str) -> None:
        self._call = call
        self._api = api
        self._instance = instance

    def reload(self, pod: DesiredPod, live: Sequence[LiveContainer], revision: str) -> None:
        api = self._api()
        forwarder = next(c for c in live if c.labels.get(L.ROLE) == L.ROLE_FORWARDER)
        directory = E.ENDPOINTS_FILE.rsplit("/", 1)[0] or "/"
        self._call(
            f"write endpoints {forwarder.name}",
            api.put_archive,
            forwarder.id,
            directory,
            endpoints_archive(pod, time.time()),
        )
        self._call(f"reload {forwarder.name}", api.kill, forwarder.id, signal="SIGHUP")
        for record in live:
            if record.labels.get(L.ROLE) == L.ROLE_ENDPOINTS:
                self._remove(record.id)
        self._remove_named(E.endpoints_record_name(pod))
        args = E.endpoints_record_args(pod, forwarder.id, self._instance, revision)
        self._call(
            f"record {args.name}",
            api.create_container,
            args.image,
            name=args.name,
            entrypoint=list(args.entrypoint or ()),
            labels=dict(args.labels),
            host_config=api.create_host_config(network_mode=args.network_mode),
        )

    def remove_of(self, forwarder: LiveContainer) -> None:
        """The record of a forwarder that is being removed (found by name; ours only)."""
        self._remove_named(forwarder.name.removesuffix(L.INFRA_CONTAINER) + "endpoints")

    def _remove(self, container_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._call("remove record", self._api().remove_container, container_id, force=True)

    def _remove_named(self, name: str) -> None:
        try:
            info = self._call("inspect record", self._api().inspect_container, name)
        except NotFound:
            return
        if L.is_owned((info.get("Config") or {}).get("Labels"), self._instance):
            self._remove(str(info["Id"]))
