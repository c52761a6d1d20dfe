"""Services: cluster addresses, discovery env vars, and the forwarders that carry traffic. Pure.

The mechanism (docs/services.md explains the choice and its cost):

- Every host gets the instance's own Docker network, with the same subnet everywhere
  (``cluster_network``). Pods' infra containers join it.
- Every Service with a selector gets a cluster IP from the upper half of that subnet
  (``allocate``): stable while the Service lives, the same on every host.
- On every reachable host, a *forwarder* — a one-container pod owned by the Service — sits
  on the network at the cluster IP, with the DNS aliases ``<svc>``, ``<svc>.<namespace>`` and
  ``<svc>.<namespace>.svc.cluster.local`` (Docker's embedded DNS answers them). It runs
  the reconciler's static forwarder (``forwarder/forwarder.c``), which sends each TCP
  connection and each UDP client to a randomly chosen ready backend: the pod's address on
  that host's network, or, for a pod on another host, that host's address and the port
  Docker published for the pod.
- NodePort, LoadBalancer, externalIPs and publicIPs publish the forwarder's port on the
  host's address (every host, or those whose address is listed).

The forwarder's endpoints are not part of its spec hash: a backend change reloads it in place
(``plan.reload``, ``engine.reload``), keeping the connections it carries; the plan shows it
as a ``reload`` with the endpoints that changed, and ``apply`` runs it after the pods.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.core import labels as L
from reconciler.core.health import pod_ready
from reconciler.core.model import (
    Diagnostic,
    HostState,
    LiveContainer,
    Location,
    Manifest,
    NetworkSpec,
    ObjectRef,
    Severity,
    as_list,
    as_map,
)

DEFAULT_CIDR_BASE = 64  # default subnets: /20s of 10.64.0.0/10, one per instance
NODE_PORT_RANGE = (30000, 32767)
FORWARDER_CONNECT_TIMEOUT = 3  # seconds a forwarder waits for one backend before the next
FORWARDER_UDP_IDLE = 60  # seconds a UDP client keeps its backend without traffic
FORWARDED_PROTOCOLS = ("TCP", "UDP")
#: where a forwarder reads new endpoints when it gets SIGHUP (``forwarder -e``)
FORWARDER_ENDPOINTS = "/etc/forwarder-endpoints"


def cluster_network(instance: str, cidr: str = "") -> NetworkSpec:
    """The instance's network: ``cidr`` if given, else a /20 in 10.64/10 chosen by name.

    Two instances on one host need disjoint subnets (Docker refuses overlaps); deriving it
    from the name keeps that likely without any coordination, and ``--cluster-cidr`` (or
    ``RECONCILER_CLUSTER_CIDR``) settles a collision.
    """
    if cidr:
        net = ipaddress.ip_network(cidr, strict=False)
    else:  # one of the 1,024 /20s of 10.64.0.0/10: 2,046 pod and 2,046 service addresses
        slot = zlib.crc32(instance.encode()) % 1024
        net = ipaddress.ip_network(f"10.{DEFAULT_CIDR_BASE + slot // 16}.{(slot % 16) * 16}.0/20")
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 24:
        raise ValueError(f"cluster CIDR {cidr!r} must be an IPv4 network of /24 or larger")
    lower, _ = net.subnets(prefixlen_diff=1)
    return NetworkSpec(
        name=f"reconciler-{instance}",
        subnet=str(net),
        pod_range=str(lower),
        gateway=str(net.network_address + 1),
    )


def service_range(network: NetworkSpec) -> ipaddress.IPv4Network:
    """The upper half of the subnet: cluster IPs, never handed to pods by Docker."""
    net = ipaddress.IPv4Network(network.subnet)
    return list(net.subnets(prefixlen_diff=1))[1]


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    target: int | str  # a number, or a container port's name
    protocol: str
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class DesiredService:
    """A Service with its address decided."""

    ref: ObjectRef
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    ports: tuple[ServicePort, ...]
    type: str
    cluster_ip: str  # "" for a headless Service (clusterIP: None)
    external_ips: tuple[str, ...]
    source: Location

    @property
    def env_prefix(self) -> str:
        return env_name(self.ref.name)

    def aliases(self) -> tuple[str, ...]:
        name, namespace = self.ref.name, self.ref.namespace
        return (name, f"{name}.{namespace}", f"{name}.{namespace}.svc.cluster.local")


def env_name(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _offset(key: str, size: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size


def live_cluster_ips(live: Mapping[str, HostState]) -> dict[tuple[str, str], str]:
    """The cluster IP each existing forwarder holds, by (namespace, service)."""
    found: dict[tuple[str, str], str] = {}
    for state in live.values():
        for c in state.containers:
            if c.labels.get(L.ROLE) == L.ROLE_FORWARDER and c.labels.get(L.CLUSTER_IP):
                key = (c.labels.get(L.OWNER_NAMESPACE, ""), c.labels.get(L.OWNER_NAME, ""))
                found.setdefault(key, c.labels[L.CLUSTER_IP])
    return found


def allocate(
    manifests: Iterable[Manifest], network: NetworkSpec, live: Mapping[str, HostState]
) -> tuple[list[DesiredService], list[Diagnostic]]:
    """Every Service with its cluster IP and node ports; deterministic for equal inputs.

    Order of preference for an address: ``spec.clusterIP`` when it lies in the service
    range; the address the Service's forwarders already hold; a slot chosen by hashing the
    name, probing upwards on collisions. Node ports likewise: as written, else hashed.
    """
    services = sorted((m for m in manifests if m.kind == "Service"), key=lambda m: m.ref)
    problems: list[Diagnostic] = []
    pool = service_range(network)
    first, size = int(pool.network_address) + 1, pool.num_addresses - 2
    taken: set[str] = set()
    chosen: dict[ObjectRef, str] = {}
    held = live_cluster_ips(live)
    node_ports_taken = {
        port
        for m in services
        for p in map(as_map, as_list(as_map(m.body.get("spec")).get("ports")))
        if (port := _int(p.get("nodePort")))  # 0 means unset, as in Kubernetes
    }

    def warn(manifest: Manifest, path: tuple[str | int, ...], message: str) -> None:
        problems.append(
            Diagnostic(
                Severity.WARNING,
                manifest.locate(path),
                message,
                kind=manifest.kind,
                name=manifest.name,
            )
        )

    # explicit addresses first, then addresses already held, then hashed slots
    for m in services:
        wanted = as_map(m.body.get("spec")).get("clusterIP")
        if not isinstance(wanted, str) or wanted in ("", "None"):
            continue
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            warn(m, ("spec", "clusterIP"), f"clusterIP {wanted!r} is not an IPv4 address")
            continue
        if address not in pool or int(address) < first or int(address) >= first + size:
            warn(
                m,
                ("spec", "clusterIP"),
                f"clusterIP {wanted} is outside this instance's service range {pool}: "
                "another address is used",
            )
        elif wanted in taken:
            warn(m, ("spec", "clusterIP"), f"clusterIP {wanted} is already used")
        else:
            chosen[m.ref] = wanted
            taken.add(wanted)
    for m in services:
        address_held = held.get((m.namespace, m.name))
        if m.ref not in chosen and address_held and address_held not in taken:
            try:
                inside = ipaddress.IPv4Address(address_held) in pool
            except ValueError:
                inside = False
            if inside:
                chosen[m.ref] = address_held
                taken.add(address_held)
    result = []
    for m in services:
        spec = as_map(m.body.get("spec"))
        headless = spec.get("clusterIP") == "None"
        if headless:
            warn(
                m,
                ("spec", "clusterIP"),
                "headless Services (clusterIP: None) get no address, forwarder or env vars",
            )
        elif m.ref not in chosen:
            start = _offset(f"{m.namespace}/{m.name}", size)
            for step in range(size):
                candidate = str(ipaddress.IPv4Address(first + (start + step) % size))
                if candidate not in taken:
                    chosen[m.ref] = candidate
                    taken.add(candidate)
                    break
        service_type = str(spec.get("type", "ClusterIP"))
        ports = []
        for index, p in enumerate(map(as_map, as_list(spec.get("ports")))):
            port = _int(p.get("port")) or 0
            protocol = str(p.get("protocol", "TCP"))
            target = p.get("targetPort", port)
            node_port = _int(p.get("nodePort")) or None  # 0: unset, allocated like a missing one
            if node_port is None and service_type in ("NodePort", "LoadBalancer"):
                node_port = _free_node_port(f"{m.namespace}/{m.name}/{index}", node_ports_taken)
                node_ports_taken.add(node_port)
            if protocol not in FORWARDED_PROTOCOLS:
                warn(
                    m,
                    ("spec", "ports", index, "protocol"),
                    f"{protocol} service ports are not forwarded (the forwarder carries TCP "
                    "and UDP)",
                )
            ports.append(
                ServicePort(
                    name=str(p.get("name", "")),
                    port=port,
                    target=target if isinstance(target, int | str) else port,
                    protocol=protocol,
                    node_port=node_port,
                )
            )
        written = as_list(spec.get("externalIPs")) + as_list(spec.get("publicIPs"))
        external = tuple(str(ip) for ip in written)
        result.append(
            DesiredService(
                ref=m.ref,
                labels={str(k): str(v) for k, v in m.labels.items()},
                selector={str(k): str(v) for k, v in as_map(spec.get("selector")).items()},
                ports=tuple(ports),
                type=service_type,
                cluster_ip="" if headless else chosen.get(m.ref, ""),
                external_ips=tuple(dict.fromkeys(external)),
                source=m.source,
            )
        )
    return result, problems


def _free_node_port(key: str, taken: set[int]) -> int:
    low, high = NODE_PORT_RANGE
    size = high - low + 1
    start = _offset(key, size)
    for step in range(size):
        candidate = low + (start + step) % size
        if candidate not in taken:
            return candidate
    raise ValueError("no free nodePort left in 30000-32767")


def service_env(
    services: Sequence[DesiredService], namespace: str, defined: Iterable[str] = ()
) -> tuple[tuple[str, str], ...]:
    """Kubernetes' discovery variables for the Services of ``namespace`` (docker-links form).

    For ``db`` on 10.96.0.11, port 3306/TCP: ``DB_SERVICE_HOST``, ``DB_SERVICE_PORT``,
    ``DB_PORT=tcp://10.96.0.11:3306``, ``DB_PORT_3306_TCP`` (same), ``…_PROTO``, ``…_PORT``
    and ``…_ADDR``; ``DB_SERVICE_PORT_<NAME>`` per named port. Variables the container
    defines itself win.
    """
    skip = set(defined)
    out: list[tuple[str, str]] = []
    for service in sorted(services, key=lambda s: s.ref.name):
        if service.ref.namespace != namespace or not service.cluster_ip or not service.ports:
            continue
        prefix, address = service.env_prefix, service.cluster_ip
        first = service.ports[0]
        values = [
            (f"{prefix}_SERVICE_HOST", address),
            (f"{prefix}_SERVICE_PORT", str(first.port)),
        ]
        for p in service.ports:
            if p.name:
                values.append((f"{prefix}_SERVICE_PORT_{env_name(p.name)}", str(p.port)))
        values.append((f"{prefix}_PORT", f"{first.protocol.lower()}://{address}:{first.port}"))
        for p in service.ports:
            proto = p.protocol.lower()
            base = f"{prefix}_PORT_{p.port}_{p.protocol.upper()}"
            values += [
                (base, f"{proto}://{address}:{p.port}"),
                (f"{base}_PROTO", proto),
                (f"{base}_PORT", str(p.port)),
                (f"{base}_ADDR", address),
            ]
        out.extend((k, v) for k, v in values if k not in skip)
    return tuple(out)


# -- endpoints --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Backend:
    """A ready pod as a Service sees it: where it runs and which ports it declares."""

    namespace: str
    name: str
    host: str
    labels: Mapping[str, str]
    ip: str
    ports: Mapping[tuple[str, str], int]  # (port name, protocol) -> containerPort
    declared: frozenset[tuple[int, str]]  # (containerPort, protocol)
    published: Mapping[tuple[int, str], int]  # (containerPort, protocol lower) -> host port


def _json_label(container: LiveContainer, key: str) -> object:
    raw = container.labels.get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def ready_backends(live: Mapping[str, HostState]) -> list[Backend]:
    """Ready pods on reachable hosts, in a stable order: infra and app containers running,
    and ready as their probes say (``core.health.pod_ready``; docs/health.md)."""
    pods: dict[tuple[str, str, str], list[LiveContainer]] = {}
    for host, state in live.items():
        if not state.reachable:
            continue
        for c in state.containers:
            if c.labels.get(L.ROLE) == L.ROLE_FORWARDER or not c.labels.get(L.POD):
                continue
            key = (host, c.labels.get(L.POD_NAMESPACE, ""), c.labels[L.POD])
            pods.setdefault(key, []).append(c)
    result = []
    for (host, namespace, name), containers in sorted(pods.items()):
        infra = next((c for c in containers if c.labels.get(L.ROLE) == L.ROLE_INFRA), None)
        if infra is None or not pod_ready(containers):
            continue
        spec = as_map(as_map(_json_label(infra, L.SPEC)).get("spec"))
        named: dict[tuple[str, str], int] = {}
        declared: set[tuple[int, str]] = set()
        for container in map(as_map, as_list(spec.get("containers"))):
            for port in map(as_map, as_list(container.get("ports"))):
                number = _int(port.get("containerPort"))
                if number is None:
                    continue
                protocol = str(port.get("protocol", "TCP"))
                declared.add((number, protocol))
                if port.get("name"):
                    named[(str(port["name"]), protocol)] = number
        labels = as_map(_json_label(infra, L.POD_LABELS))
        result.append(
            Backend(
                namespace=namespace,
                name=name,
                host=host,
                labels={str(k): str(v) for k, v in labels.items()},
                ip=infra.ip_address,
                ports=named,
                declared=frozenset(declared),
                published={(p, proto): hp for p, proto, hp in infra.ports},
            )
        )
    return result


def selects(service: DesiredService, backend: Backend) -> bool:
    return (
        bool(service.selector)
        and backend.namespace == service.ref.namespace
        and all(backend.labels.get(k) == v for k, v in service.selector.items())
    )


def endpoints_for(
    service: DesiredService,
    port: ServicePort,
    backends: Sequence[Backend],
    on_host: str,
    addresses: Mapping[str, str],
) -> list[str]:
    """``address:port`` of each ready backend, as seen from a forwarder on ``on_host``."""
    found = []
    for backend in backends:
        if not selects(service, backend):
            continue
        if isinstance(port.target, str) and not port.target.isdigit():
            target = backend.ports.get((port.target, port.protocol))
            if target is None:
                continue  # this pod does not define the named port
        else:
            target = int(port.target)
        if backend.host == on_host:
            if backend.ip:
                found.append(f"{backend.ip}:{target}")
            continue
        published = backend.published.get((target, port.protocol.lower()))
        address = addresses.get(backend.host, "")
        if published and address:
            found.append(f"{address}:{published}")
    return sorted(found)


# -- the forwarder's program ------------------------------------------------------------------
def forwarder_args(listeners: Sequence[tuple[str, int, Sequence[str]]]) -> tuple[str, ...]:
    """The forwarder's command line: ``PROTO:PORT=EP,EP`` per listener (forwarder.c).

    Each TCP connection and each UDP client starts at a random endpoint and falls through
    to the next one that refuses; no endpoint means connections are closed at once and
    datagrams dropped. Later endpoints come through ``FORWARDER_ENDPOINTS`` and SIGHUP.
    """
    specs = [
        f"{protocol.lower()}:{port}={','.join(endpoints)}"
        for protocol, port, endpoints in listeners
        if protocol in FORWARDED_PROTOCOLS
    ]
    return (
        "-t",
        str(FORWARDER_CONNECT_TIMEOUT),
        "-u",
        str(FORWARDER_UDP_IDLE),
        "-e",
        FORWARDER_ENDPOINTS,
        *specs,
    )
