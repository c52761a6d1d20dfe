"""What a host must have before a pod can start on it: its images and the instance network.

Both are made at most once per connection: a set remembers what is known present, and a
lock per image (or network) keeps concurrent pod creations from pulling or importing the
same thing twice. Images follow Kubernetes' ``imagePullPolicy``; the pause and forwarder
images are imported from the local static busybox (no registry), see ``engine.images``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.core import labels as L
from reconciler.core.errors import (
    ApplyError,
    ImagePullError,
    NotFound,
    OwnershipError,
    ReconcilerError,
)
from reconciler.core.model import NetworkSpec
from reconciler.engine import translate as T
from reconciler.engine.images import PAUSE_COMMAND, busybox_rootfs, find_static_busybox

if TYPE_CHECKING:
    import docker

#: ``call(what, function, *args, **kwargs)``: a Docker call with our errors (engine.client).
Call = Callable[..., Any]


class _Once:
    """A set of names known present, and a lock per name to make each one only once."""

    def __init__(self) -> None:
        self.present: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


class HostImages:
    """The images of one host: present, pulled per policy, or imported from busybox."""

    def __init__(
        self,
        call: Call,
        api: Callable[[], docker.APIClient],
        host_name: str,
        programs: Callable[[], Mapping[str, bytes]] | None,
    ) -> None:
        self._call = call
        self._api = api
        self._host = host_name
        self._programs = programs
        self._once = _Once()

    def has(self, image: str) -> bool:
        try:
            self._call("inspect image", self._api().inspect_image, image)
            return True
        except NotFound:
            return False

    def ensure(self, image: str, policy: str, auth: Sequence[tuple[str, str, str]] = ()) -> None:
        """Make ``image`` present per Kubernetes' imagePullPolicy, or raise ImagePullError.
        ``auth``: (registry, username, password) from the pod's imagePullSecrets."""
        present = self._once.present
        if image in present and policy != "Always":
            return
        with self._once.lock(image):
            if image in present and policy != "Always":
                return
            if policy != "Always" and self.has(image):
                present.add(image)
                return
            if policy == "Never":
                raise ImagePullError(
                    "ErrImageNeverPull",
                    f"image {image} is not on host {self._host} and imagePullPolicy is Never",
                )
            repository, tag = T.image_reference(image)
            credentials = T.pull_credentials(repository, auth)
            try:
                self._call(
                    "pull",
                    self._api().pull,
                    repository,
                    tag=tag or "latest",
                    auth_config=credentials,
                )
            except ApplyError as exc:  # NotFound included
                raise ImagePullError(
                    "ErrImagePull", f"cannot pull {image} on host {self._host}: {exc}"
                ) from exc
            present.add(image)

    def import_busybox(self, image: str, with_forwarder: bool = False) -> None:
        """Create ``image`` on this host from the local static busybox (no registry).

        ``with_forwarder`` adds the Service forwarder program (made on first use by the
        ``programs`` the host was given).
        """
        repository, tag = T.image_reference(image)
        programs: Mapping[str, bytes] = {}
        if with_forwarder:
            if self._programs is None:
                raise ApplyError(f"cannot make image {image} on host {self._host}: no forwarder")
            try:
                programs = self._programs()
            except ReconcilerError as exc:  # a ForwarderBuildError: the action's failure
                raise ApplyError(f"cannot make image {image} on host {self._host}: {exc}") from exc
        rootfs = busybox_rootfs(find_static_busybox(), programs)
        self._call(
            "import image",
            self._api().import_image_from_data,
            rootfs,
            repository=repository,
            tag=tag,
            changes=[f"CMD {json.dumps(list(PAUSE_COMMAND))}", "ENV PATH=/bin"],
        )
        self._once.present.add(image)

    def ensure_infra(self, image: str, with_forwarder: bool = False) -> None:
        """The pause (or forwarder) image: imported on first use when the host lacks it."""
        present = self._once.present
        if image in present:
            return
        with self._once.lock(image):
            if image in present or self.has(image):
                present.add(image)
                return
            self.import_busybox(image, with_forwarder)


class HostNetworks:
    """The instance's network on one host: created once, removed only when ours and idle."""

    def __init__(
        self, call: Call, api: Callable[[], docker.APIClient], instance: str, host_name: str = ""
    ) -> None:
        self._call = call
        self._api = api
        self._instance = instance
        self._host = host_name
        self._once = _Once()

    def ensure(self, network: NetworkSpec) -> None:
        """Create the instance's network on this host unless it is there (once per run)."""
        if network.name in self._once.present:
            return
        with self._once.lock(network.name):
            if network.name in self._once.present:
                return
            api = self._api()
            found = self._call("list networks", api.networks, filters={"name": network.name})
            same = [n for n in found or [] if n.get("Name") == network.name]
            if not same:
                self._create(T.network_args(network, self._instance))
            elif not any(L.is_owned(n.get("Labels"), self._instance) for n in same):
                # a name proves nothing: pods must never join someone else's network
                raise OwnershipError(
                    f"network {network.name} on host {self._host} does not carry this "
                    "instance's labels: left alone (remove or rename it, or choose another "
                    "--instance)"
                )
            self._once.present.add(network.name)

    def _create(self, args: T.NetworkArgs) -> None:
        from docker import types as docker_types  # the client is docker-py's already

        ipam = docker_types.IPAMConfig(
            pool_configs=[
                docker_types.IPAMPool(
                    subnet=args.subnet, iprange=args.ip_range, gateway=args.gateway
                )
            ]
        )
        try:
            self._call(
                f"create network {args.name}",
                self._api().create_network,
                args.name,
                driver="bridge",
                ipam=ipam,
                check_duplicate=True,
                labels=dict(args.labels),
            )
        except ApplyError as exc:
            if "already exists" not in str(exc):
                raise ApplyError(
                    f"{exc} (another network overlaps {args.subnet}: choose another with "
                    "--cluster-cidr)"
                    if "overlap" in str(exc)
                    else str(exc)
                ) from exc

    def remove(self, network: NetworkSpec) -> bool:
        """Remove the instance's network if it is ours and nothing uses it any more."""
        api = self._api()
        found = self._call("list networks", api.networks, filters={"name": network.name})
        for item in found or []:
            if item.get("Name") != network.name or not L.is_owned(
                item.get("Labels"), self._instance
            ):
                continue
            try:
                self._call("remove network", api.remove_network, item["Id"])
            except ApplyError:  # still in use (or gone): the next removal tries again
                return False
            self._once.present.discard(network.name)
            return True
        return False
