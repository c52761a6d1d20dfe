"""A Service's forwarder on every reachable host: a one-container pod at the cluster IP whose
command line lists the ready endpoints of each port. Pure.

Endpoints come from the live state (pods that are ready now): ``apply`` re-observes after
changing pods, so a forwarder follows its backends within the same apply. They are not part
of the forwarder's spec hash: a forwarder is made with the endpoints of the moment on its
command line, and later changes reload it in place (``plan.reload``), keeping connections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.core import labels as L
from reconciler.core.model import DesiredContainer, DesiredPod, HostState, PortBinding
from reconciler.desire.services import (
    FORWARDED_PROTOCOLS,
    DesiredService,
    endpoints_for,
    forwarder_args,
    ready_backends,
)
from reconciler.desire.settings import FORWARDER_PATH, PodContext, docker_name
from reconciler.source.hosts import Host


def forwarder_pod_name(service: str) -> str:
    """A name no Pod can have ('_' is not allowed in pod names): no collision with pods."""
    return f"svc_{service}"


def forwarders(
    ctx: PodContext, hosts: Sequence[Host], live: Mapping[str, HostState]
) -> list[DesiredPod]:
    """One forwarder per Service with an address, on every host not known to be down.

    Endpoints come from the live state: pods that run now. ``apply`` re-observes after
    changing pods, so a forwarder follows its backends within the same apply.
    """
    result: list[DesiredPod] = []
    if not any(service.cluster_ip for service in ctx.services):
        return result  # no forwarder: no need to read every live pod's labels
    backends = ready_backends(live)
    for host in hosts:
        state = live.get(host.name)
        if state is not None and not state.reachable:
            continue
        for service in ctx.services:
            if service.cluster_ip:
                result.append(_forwarder(ctx, service, host, backends))
    return result


def _forwarder(
    ctx: PodContext, service: DesiredService, host: Host, backends: Sequence[Any]
) -> DesiredPod:
    settings = ctx.settings
    ports: list[dict[str, Any]] = []
    listeners: list[tuple[str, int, list[str]]] = []
    bindings: list[PortBinding] = []
    for port in service.ports:
        if port.protocol not in FORWARDED_PROTOCOLS:
            continue
        endpoints = endpoints_for(service, port, backends, host.name, ctx.addresses)
        published: list[int] = []
        if service.type in ("NodePort", "LoadBalancer") and port.node_port:
            published.append(port.node_port)
        if service.type == "LoadBalancer" or host.address in service.external_ips:
            published.append(port.port)
        for host_port in dict.fromkeys(published):
            bindings.append(PortBinding(port.port, port.protocol, host_port, host.address))
        listeners.append((port.protocol, port.port, endpoints))
        ports.append(
            {
                "port": port.port,
                "protocol": port.protocol,
                "targetPort": port.target,
                "published": [f"{host.address}:{p}" for p in dict.fromkeys(published)],
                "endpoints": endpoints,
            }
        )
    name = forwarder_pod_name(service.ref.name)
    spec = {"clusterIP": service.cluster_ip, "ports": ports}
    hashed = {
        # endpoints are not hashed: a change reloads the forwarder in place (plan.reload)
        "forwarder": {**spec, "ports": [{**p, "endpoints": None} for p in ports]},
        "aliases": list(service.aliases()),
        "labels": dict(service.labels),
        "image": settings.forwarder_image,
        "network": [ctx.network.name, ctx.network.subnet],
    }
    container = DesiredContainer(
        docker_name=docker_name(settings.instance, service.ref.namespace, name, L.INFRA_CONTAINER),
        container=L.INFRA_CONTAINER,
        role=L.ROLE_FORWARDER,
        image=settings.forwarder_image,
        pull_policy="IfNotPresent",
        entrypoint=(FORWARDER_PATH,),
        cmd=forwarder_args(listeners),
        ports=tuple(bindings),
        restart_policy="Always",
        source=service.source,
        ipv4_address=service.cluster_ip,
        aliases=service.aliases(),
    )
    return DesiredPod(
        namespace=service.ref.namespace,
        name=name,
        owner=service.ref,
        host=host.name,
        labels=dict(service.labels),
        spec=spec,
        spec_hash=L.spec_hash(hashed),
        containers=(container,),
        volumes=(),
        restart_policy="Always",
        source=service.source,
        network=ctx.network,
    )


def forwarder_endpoints(spec: Mapping[str, Any]) -> list[list[Any]]:
    """``[protocol, port, [endpoint...]]`` per listener of a forwarder's spec (desired, or
    as the spec label of a live one holds it)."""
    return [
        [str(p.get("protocol", "TCP")), p.get("port"), list(p.get("endpoints") or [])]
        for p in spec.get("ports") or []
        if isinstance(p, dict)
    ]
