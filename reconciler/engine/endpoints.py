"""A Service forwarder's endpoints as files and records, for reloading it in place. Pure.

``engine.reload`` writes :func:`endpoints_file` into a running forwarder and replaces the
record :func:`endpoints_record_args` describes; ``host_state`` (``engine.translate``) reads
the records back as ``HostState.markers``. Apart from ``translate`` so that both stay small.
"""

from __future__ import annotations

from reconciler.core import labels as L
from reconciler.core.model import DesiredPod
from reconciler.desire.forwarders import forwarder_endpoints
from reconciler.desire.services import FORWARDER_ENDPOINTS
from reconciler.engine.translate import ContainerArgs, ownership_labels

#: where a forwarder reads its endpoints when it gets SIGHUP (``forwarder -e``)
ENDPOINTS_FILE = FORWARDER_ENDPOINTS


def endpoints_file(pod: DesiredPod) -> bytes:
    """The forwarder's endpoints file: ``proto:port=ip:port,ip:port`` per listener."""
    lines = [
        f"{protocol.lower()}:{port}={','.join(endpoints)}"
        for protocol, port, endpoints in forwarder_endpoints(pod.spec)
    ]
    return ("\n".join(lines) + "\n").encode()


def endpoints_record_name(pod: DesiredPod) -> str:
    """The never-started container recording what a forwarder was last given."""
    return pod.containers[0].docker_name.removesuffix(L.INFRA_CONTAINER) + "endpoints"


def endpoints_record_args(
    pod: DesiredPod, forwarder_id: str, instance: str, revision: str
) -> ContainerArgs:
    """Labels cannot change, so what a forwarder was given after it was made is kept by a
    record beside it, replaced on each reload, and listed by the same one list call as
    everything else: a restarted reconciler knows what every forwarder routes to without
    reading any of them."""
    forwarder = pod.containers[0]
    labels = {
        **ownership_labels(instance),
        L.ROLE: L.ROLE_ENDPOINTS,
        L.OWNER_KIND: pod.owner.kind,
        L.OWNER_NAMESPACE: pod.owner.namespace,
        L.OWNER_NAME: pod.owner.name,
        L.POD: pod.name,
        L.POD_NAMESPACE: pod.namespace,
        L.FORWARDER: forwarder_id,
        L.ENDPOINTS: L.canonical_json(forwarder_endpoints(pod.spec)),
        L.REVISION: revision,
    }
    return ContainerArgs(
        image=forwarder.image,
        name=endpoints_record_name(pod),
        labels=labels,
        entrypoint=("true",),
        init=False,
        network_mode="none",
        restart_policy="no",
    )
