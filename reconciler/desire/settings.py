"""What every desired pod shares: the settings besides the manifests, the result's shape,
and the Docker names of a pod's parts. Pure.

``Settings`` carries plain values only. The forwarder image's default name is a constant here:
its real, digest-tagged name comes from ``forwarder.build`` (which reads the C source), and
the CLI and the service pass it in, so that computing a desired state never touches a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import DesiredPod, Diagnostic, NetworkSpec, ObjectRef
from reconciler.desire.services import DesiredService, cluster_network
from reconciler.source.hosts import Host

DEFAULT_INFRA_IMAGE = "reconciler/pause:1"
#: A name for when none is given; ``forwarder.build.default_forwarder_image`` names the image
#: of the packaged forwarder by its source digest, which is what the commands use.
DEFAULT_FORWARDER_IMAGE = "reconciler/forwarder:latest"
FORWARDER_PATH = "/bin/forwarder"  # where the forwarder image holds the program


@dataclass(frozen=True, slots=True)
class Settings:
    """What the desired state depends on besides the manifests."""

    instance: str = L.DEFAULT_INSTANCE
    infra_image: str = DEFAULT_INFRA_IMAGE
    forwarder_image: str = DEFAULT_FORWARDER_IMAGE
    cluster_cidr: str = ""  # the instance network's subnet; "" derives one from the name
    host_grace: float = 60.0  # seconds an unreachable host keeps its replicas

    @property
    def network(self) -> NetworkSpec:
        return cluster_network(self.instance, self.cluster_cidr)


@dataclass
class DesiredState:
    """Every pod that should run, by host, and the problems that kept some from placement."""

    pods: list[DesiredPod] = field(default_factory=list)  # workload pods and forwarders
    problems: list[Diagnostic] = field(default_factory=list)
    replicas: dict[ObjectRef, int] = field(default_factory=dict)  # RC -> wanted replicas
    services: list[DesiredService] = field(default_factory=list)
    host_notes: dict[str, str] = field(default_factory=dict)  # unreachable host -> what waits
    claims: set[tuple[str, str]] = field(default_factory=set)  # (namespace, claim) in the manifests
    deployments: dict[ObjectRef, int] = field(default_factory=dict)  # Deployment -> replicas
    #: (namespace, pod) -> why a rollout makes the pod, or why it removes it
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    removal_reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    #: (namespace, pod) a rollout keeps exactly as it runs: its template is no longer known
    kept: set[tuple[str, str]] = field(default_factory=set)

    def by_host(self) -> dict[str, dict[tuple[str, str], DesiredPod]]:
        result: dict[str, dict[tuple[str, str], DesiredPod]] = {}
        for pod in self.pods:
            result.setdefault(pod.host, {})[pod.key] = pod
        return result


def docker_name(instance: str, namespace: str, pod: str, part: str) -> str:
    """The Docker name of a pod's container or volume: unique per host and instance."""
    return f"{instance}_{namespace}_{pod}_{part}"


@dataclass(frozen=True, slots=True)
class PodContext:
    """What every pod of one computation shares."""

    settings: Settings
    network: NetworkSpec
    services: Sequence[DesiredService]
    addresses: Mapping[str, str]  # host -> address
    multi_host: bool
    #: Secrets and ConfigMaps by (kind, namespace, name) (``desire.config.config_index``)
    configs: Mapping[tuple[str, str, str], Any] = field(default_factory=dict)
    #: PersistentVolumeClaims by (namespace, name) (``desire.claims.claims_of``)
    claims: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    hosts: Mapping[str, Host] = field(default_factory=dict)  # by name
