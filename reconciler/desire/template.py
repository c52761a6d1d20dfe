"""A ReplicationController's replicas stamped from one template: normalised, hashed and
built once per controller (and host), not once per replica. Pure.

Why: the replicas of a controller share their template, so a pass over 10,000 pods of 100
controllers should cost 100 templates, plus what really differs per replica (its name, its
hostname, its Docker names), not 10,000 normalisations. The pods made here are equal, field
for field and spec hash included, to those ``desire.pods.pod`` makes one by one (a test
pins it): the hash text is the template's canonical JSON with the hostname spliced in.

Templates that take values per pod (Secrets, ConfigMaps, the downward API) or mount
claims (whose volumes follow the host) are still made one pod at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from reconciler.core import labels as L
from reconciler.core.model import (
    DesiredContainer,
    DesiredPod,
    Manifest,
    ObjectRef,
    PortBinding,
    VolumeSpec,
)
from reconciler.desire import pods as P
from reconciler.desire.claims import pod_claims
from reconciler.desire.config import uses_config
from reconciler.desire.settings import PodContext, docker_name

#: stands for the replica's name (and so its hostname) in the shared parts; a name no pod
#: can have, found exactly once in the hash text or the template is not shared
_PLACEHOLDER = "\x00replica\x00"


_PLAIN = re.compile(r"[A-Za-z0-9.\-]*")  # a hostname needs no JSON escape


def _quoted(text: str) -> str:
    """``text`` as canonical JSON writes it (quoted directly when nothing needs escaping)."""
    return f'"{text}"' if _PLAIN.fullmatch(text) else L.canonical_json(text)


class ReplicaTemplate:
    """The pods of one controller: ``pod(name, host, replica)`` for each replica."""

    def __init__(
        self,
        ctx: PodContext,
        manifest: Manifest,
        owner: ObjectRef,
        pod_labels: Mapping[str, str],
        raw_spec: Mapping[str, Any],
        spec_path: tuple[str | int, ...],
    ) -> None:
        self.ctx = ctx
        self.manifest = manifest
        self.owner = owner
        self.pod_labels = pod_labels
        self.raw_spec = raw_spec
        self.spec_path = spec_path
        self.fixed_hostname = bool(raw_spec.get("hostname"))
        self.spec: dict[str, Any] | None = None
        #: per host: what every replica there shares (None: made one by one)
        self.by_host: dict[str, Shared | None] = {}
        if uses_config(raw_spec) or pod_claims(raw_spec):
            return  # per-pod values or per-host volumes: one pod at a time
        self.spec = P.normalise_pod_spec(raw_spec, P.pod_hostname(raw_spec, _PLACEHOLDER))

    def pod(self, name: str, host: str, replica: int | None) -> DesiredPod:
        if host not in self.by_host:
            self.by_host[host] = self._shared(host)
        shared = self.by_host[host]
        if shared is None:
            return P.pod(
                self.ctx,
                self.manifest,
                self.owner,
                name,
                self.pod_labels,
                self.raw_spec,
                self.spec_path,
                host,
                replica,
            )
        if self.fixed_hostname:
            hostname = str(shared.shape.spec["hostname"])
            spec_hash = shared.shape.spec_hash
        else:
            hostname = P.pod_hostname(self.raw_spec, name)
            text = shared.head + _quoted(hostname) + shared.tail
            spec_hash = hashlib.sha256(text.encode()).hexdigest()[:16]
        return StampedPod.stamp(shared, name, hostname, spec_hash, replica)

    def _shared(self, host: str) -> Shared | None:
        """What every replica on ``host`` shares, or None: make them one by one."""
        if self.spec is None:
            return None
        shape = P.pod_from_spec(
            self.ctx,
            self.manifest,
            self.owner,
            _PLACEHOLDER,
            self.pod_labels,
            self.raw_spec,
            self.spec,
            self.spec_path,
            host,
            None,
        )
        publish_on = self.ctx.addresses.get(host, "") if self.ctx.multi_host else ""
        hashed = P.hash_input(self.ctx, self.owner, self.pod_labels, self.spec, publish_on)
        parts = L.canonical_json(hashed).split(_quoted(_PLACEHOLDER))
        if len(parts) != (1 if self.fixed_hostname else 2):
            return None  # the placeholder is elsewhere too (or missing): not shared
        names = tuple(c.container for c in shape.containers)
        instance = self.ctx.settings.instance
        return Shared(shape, parts[0], parts[-1] if len(parts) == 2 else "", names, instance)


@dataclasses.dataclass(frozen=True, slots=True)
class Shared:
    """What the replicas of a controller on one host share: the pod made with a
    placeholder name, the hash text around the hostname, the containers' names."""

    shape: DesiredPod
    head: str
    tail: str
    names: tuple[str, ...]
    instance: str


class StampedPod(DesiredPod):
    """A replica made from its controller's shared pod: its name, hash and replica are its
    own; its spec, containers and volumes (which only differ by names) are made when first
    read. A steady pass plans in-sync pods without reading them (``container_names``,
    ``infra_ports``), so 10,000 replicas do not cost 30,000 values. Equal to the
    ``DesiredPod`` ``desire.pods.pod`` makes, field for field."""

    __slots__ = ("_hostname", "_shared")
    _shared: Shared
    _hostname: str

    @classmethod
    def stamp(
        cls, shared: Shared, name: str, hostname: str, spec_hash: str, replica: int | None
    ) -> StampedPod:
        made = object.__new__(cls)
        shape = shared.shape
        for setter, value in zip(
            _SETTERS,
            (
                shape.namespace,
                name,
                shape.owner,
                shape.host,
                shape.labels,
                spec_hash,
                shape.restart_policy,
                shape.source,
                replica,
                shape.network,
                shape.host_namespaces,
                shape.sysctls,
                shape.template_hash,
                shared,
                hostname,
            ),
            strict=True,
        ):
            setter(made, value)
        return made

    def __getattr__(self, name: str) -> Any:
        """Only reached for a slot never set: the parts made on first read."""
        if name not in _LAZY:
            raise AttributeError(name)
        shape, instance, hostname = self._shared.shape, self._shared.instance, self._hostname
        spec = (
            shape.spec
            if shape.spec.get("hostname") == hostname
            else {**shape.spec, "hostname": hostname}
        )
        containers = tuple(
            _replaced(
                c,
                docker_name=docker_name(instance, self.namespace, self.name, c.container),
                **({"hostname": hostname} if c.role == L.ROLE_INFRA else {}),
            )
            for c in shape.containers
        )
        volumes = tuple(
            _replaced(v, docker_name=docker_name(instance, self.namespace, self.name, v.name))
            if v.source in ("emptyDir", "files")  # named after the pod
            else v
            for v in shape.volumes
        )
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "containers", containers)
        object.__setattr__(self, "volumes", volumes)
        return getattr(self, name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DesiredPod):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _fields(DesiredPod))

    __hash__ = DesiredPod.__hash__


_LAZY = frozenset(("spec", "containers", "volumes"))
#: the slots a stamp sets, in the order ``StampedPod.stamp`` gives their values
_SETTERS = tuple(
    getattr(StampedPod, slot).__set__
    for slot in (
        "namespace",
        "name",
        "owner",
        "host",
        "labels",
        "spec_hash",
        "restart_policy",
        "source",
        "replica",
        "network",
        "host_namespaces",
        "sysctls",
        "template_hash",
        "_shared",
        "_hostname",
    )
)


def container_names(pod: DesiredPod) -> tuple[str, ...]:
    """The names of the pod's containers (infra first), without making a stamped pod's."""
    shared: Shared | None = getattr(pod, "_shared", None)  # None: made whole
    return shared.names if shared is not None else tuple(c.container for c in pod.containers)


def infra_ports(pod: DesiredPod) -> tuple[PortBinding, ...]:
    """What the pod's infra container publishes (the same for every replica on a host)."""
    shared: Shared | None = getattr(pod, "_shared", None)
    return (shared.shape if shared is not None else pod).containers[0].ports


_Value = TypeVar("_Value", DesiredContainer, VolumeSpec)


def _fields(kind: type) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def _replaced(shared: _Value, **changes: Any) -> _Value:
    """``dataclasses.replace``, positional: a few times faster."""
    names = _fields(type(shared))
    values = [getattr(shared, n) for n in names]
    for key, value in changes.items():
        values[names.index(key)] = value
    return type(shared)(*values)


_FIELDS: dict[type, tuple[str, ...]] = {}
