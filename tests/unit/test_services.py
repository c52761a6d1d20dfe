"""Services, pure: cluster IPs, discovery env vars, endpoints and forwarders. No mocks."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from typing import Any

import pytest
import yaml

from reconciler.check.validate import validate
from reconciler.core import labels as L
from reconciler.core.model import DesiredPod, HostState, LiveContainer, PortBinding
from reconciler.desire.compute import compute_desired
from reconciler.desire.forwarders import forwarder_pod_name
from reconciler.desire.services import cluster_network, forwarder_args, service_env, service_range
from reconciler.desire.settings import DesiredState, Settings
from reconciler.plan.model import Verb
from reconciler.plan.planner import plan
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

H1 = Host(name="h1", url="tcp://10.231.0.11:2375", address="10.231.0.11")
H2 = Host(name="h2", url="tcp://10.231.0.12:2375", address="10.231.0.12")
H3 = Host(name="h3", url="tcp://10.231.0.13:2375", address="10.231.0.13")

DB = """\
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {name: db}}
spec:
  containers:
    - name: db
      image: example/db:1.0
      ports: [{containerPort: 3306, name: mysql}]
---
apiVersion: v1
kind: Service
metadata: {name: db, labels: {app: db}}
spec:
  selector: {name: db}
  ports: [{port: 3306, targetPort: mysql}]
"""

WEB = """\
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: example/web:1.0
          env: [{name: WEB_PORT, value: mine}]
          ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-public}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 5000, targetPort: http, nodePort: 30500}]
"""


def state_of(
    *texts: str,
    hosts: list[Host] | None = None,
    live: dict[str, HostState] | None = None,
    settings: Settings | None = None,
) -> DesiredState:
    result = validate(parse_text("\n---\n".join(texts), "test.yaml"))
    assert result.errors == [], result.errors
    return compute_desired(result.manifests, hosts or [H1], live, settings or Settings())


def forwarders(state: DesiredState) -> list[DesiredPod]:
    return [p for p in state.pods if p.owner.kind == "Service"]


def workloads(state: DesiredState) -> list[DesiredPod]:
    return [p for p in state.pods if p.owner.kind != "Service"]


def env_of(pod: DesiredPod) -> dict[str, str]:
    return dict(pod.app_containers[0].env)


# -- the network ---------------------------------------------------------------------------
def test_cluster_network_is_derived_from_the_instance_and_stable() -> None:
    a, b = cluster_network("default"), cluster_network("default")
    assert a == b
    net = ipaddress.IPv4Network(a.subnet)
    assert net.prefixlen == 20 and net.subnet_of(ipaddress.IPv4Network("10.64.0.0/10"))
    assert a.name == "reconciler-default"
    lower, upper = net.subnets(1)
    assert a.pod_range == str(lower)
    assert a.gateway == str(net.network_address + 1)
    assert service_range(a) == upper
    # different instances usually get different subnets (here: they do)
    assert cluster_network("blue").subnet != cluster_network("green").subnet


def test_cluster_network_from_an_explicit_cidr() -> None:
    spec = cluster_network("x", "192.168.50.0/24")
    assert (spec.subnet, spec.pod_range) == ("192.168.50.0/24", "192.168.50.0/25")
    with pytest.raises(ValueError):
        cluster_network("x", "10.0.0.0/28")  # too small for pods and services
    with pytest.raises(ValueError):
        cluster_network("x", "not-a-network")


# -- cluster IPs ---------------------------------------------------------------------------
def test_cluster_ips_are_in_the_service_range_unique_and_deterministic() -> None:
    texts = [
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\n"
        f"spec: {{selector: {{a: b}}, ports: [{{port: 80}}]}}"
        for i in range(40)
    ]
    first = state_of(*texts).services
    again = state_of(*reversed(texts)).services
    ips = [s.cluster_ip for s in first]
    assert len(set(ips)) == 40
    pool = service_range(Settings().network)
    assert all(ipaddress.IPv4Address(ip) in pool for ip in ips)
    assert {s.ref: s.cluster_ip for s in again} == {s.ref: s.cluster_ip for s in first}


def test_explicit_cluster_ip_in_range_is_kept_and_out_of_range_is_a_warning() -> None:
    pool = service_range(Settings().network)
    inside = str(pool.network_address + 77)
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
        f"spec: {{clusterIP: {inside}, selector: {{x: y}}, ports: [{{port: 1}}]}}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n"
        "spec: {clusterIP: 10.0.0.10, selector: {x: y}, ports: [{port: 1}]}\n"
    )
    state = state_of(text)
    by_name = {s.ref.name: s.cluster_ip for s in state.services}
    assert by_name["a"] == inside
    assert ipaddress.IPv4Address(by_name["b"]) in pool
    [warning] = state.problems
    assert not warning.is_error and "outside" in warning.message
    assert (warning.location.line, warning.name) == (9, "b")  # b's spec line


def test_a_service_keeps_the_address_its_forwarders_hold() -> None:
    state = state_of(DB)
    held = str(service_range(Settings().network).network_address + 1234)
    live = {"h1": HostState("h1", True, (forwarder_container("db", held),))}
    again = state_of(DB, live=live)
    assert state.services[0].cluster_ip != held
    assert again.services[0].cluster_ip == held


def forwarder_container(service: str, ip: str, host: str = "h1") -> LiveContainer:
    return LiveContainer(
        id=f"fwd-{service}-{host}",
        name=f"default_default_svc_{service}_POD",
        host=host,
        labels={
            L.MANAGED_BY: L.MANAGED_BY_VALUE,
            L.INSTANCE: "default",
            L.ROLE: L.ROLE_FORWARDER,
            L.OWNER_KIND: "Service",
            L.OWNER_NAMESPACE: "default",
            L.OWNER_NAME: service,
            L.POD: forwarder_pod_name(service),
            L.POD_NAMESPACE: "default",
            L.CONTAINER: L.INFRA_CONTAINER,
            L.CLUSTER_IP: ip,
        },
        state="running",
        status="Up",
        created=0,
        image="reconciler/pause:1",
    )


def test_headless_service_gets_no_address_and_a_warning() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: h}\n"
        "spec: {clusterIP: None, selector: {x: y}, ports: [{port: 1}]}\n"
    )
    state = state_of(text)
    assert state.services[0].cluster_ip == ""
    assert forwarders(state) == []
    assert "headless" in state.problems[0].message


# -- env vars ------------------------------------------------------------------------------
def test_env_vars_in_the_kubernetes_docker_links_form() -> None:
    state = state_of(DB, WEB)
    db_ip = next(s.cluster_ip for s in state.services if s.ref.name == "db")
    pub_ip = next(s.cluster_ip for s in state.services if s.ref.name == "web-public")
    env = env_of(next(p for p in workloads(state) if p.name == "web-0"))
    assert {k: v for k, v in env.items() if k.startswith("DB_")} == {
        "DB_SERVICE_HOST": db_ip,
        "DB_SERVICE_PORT": "3306",
        "DB_PORT": f"tcp://{db_ip}:3306",
        "DB_PORT_3306_TCP": f"tcp://{db_ip}:3306",
        "DB_PORT_3306_TCP_PROTO": "tcp",
        "DB_PORT_3306_TCP_PORT": "3306",
        "DB_PORT_3306_TCP_ADDR": db_ip,
    }
    assert env["WEB_PUBLIC_SERVICE_HOST"] == pub_ip  # '-' becomes '_'
    assert env["WEB_PUBLIC_PORT_5000_TCP_ADDR"] == pub_ip
    assert env["WEB_PORT"] == "mine"  # a variable the container defines itself wins


def test_env_vars_only_for_services_of_the_same_namespace() -> None:
    other = DB.replace("metadata: {name: db, labels", "metadata: {name: db, namespace: x, labels")
    other = other.replace("metadata: {name: db, labels: {name: db}}", "metadata: {name: db}")
    services = state_of(other).services
    assert service_env(services, "default") == ()
    assert service_env(services, "x")[0][0] == "DB_SERVICE_HOST"


def test_a_new_service_does_not_change_running_pods_hashes() -> None:
    """Env vars are outside the spec hash: adding a Service never recreates pods."""
    web_only = WEB.split("---")[0]
    before = {p.name: p.spec_hash for p in workloads(state_of(web_only))}
    after = {p.name: p.spec_hash for p in workloads(state_of(web_only, DB))}
    assert before == {name: after[name] for name in before}
    assert "DB_SERVICE_HOST" in env_of(next(p for p in workloads(state_of(web_only, DB))))


def test_named_service_ports_get_their_own_variable() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\n"
        "spec: {selector: {a: b}, ports: [{port: 80, name: http}, {port: 443, name: https}]}\n"
    )
    env = dict(service_env(state_of(text).services, "default"))
    assert env["API_SERVICE_PORT"] == "80"
    assert env["API_SERVICE_PORT_HTTP"] == "80"
    assert env["API_SERVICE_PORT_HTTPS"] == "443"
    assert "API_PORT_443_TCP_ADDR" in env


# -- forwarders ----------------------------------------------------------------------------
def test_one_forwarder_per_service_and_reachable_host() -> None:
    live = {
        "h1": HostState("h1", True),
        "h2": HostState("h2", False, error="down"),
        "h3": HostState("h3", True),
    }
    state = state_of(DB, WEB, hosts=[H1, H2, H3], live=live)
    placed = sorted((p.name, p.host) for p in forwarders(state))
    assert placed == [
        ("svc_db", "h1"),
        ("svc_db", "h3"),
        ("svc_web-public", "h1"),
        ("svc_web-public", "h3"),
    ]


def test_forwarder_sits_at_the_cluster_ip_with_dns_aliases() -> None:
    state = state_of(DB)
    [fwd] = forwarders(state)
    [box] = fwd.containers
    assert box.role == L.ROLE_FORWARDER
    assert box.ipv4_address == state.services[0].cluster_ip
    assert box.aliases == ("db", "db.default", "db.default.svc.cluster.local")
    assert fwd.network == Settings().network
    assert box.entrypoint == ("/bin/forwarder",)
    assert box.image == Settings().forwarder_image
    assert box.image.startswith("reconciler/forwarder:")
    assert fwd.labels == {"app": "db"}  # the Service's labels: down -l app=db removes it


def test_published_ports_for_nodeport_loadbalancer_and_external_ips() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: np}\n"
        "spec: {type: NodePort, selector: {a: b}, ports: [{port: 80, nodePort: 30080}]}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
        "spec: {selector: {a: b}, ports: [{port: 8443}], externalIPs: [10.231.0.12]}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: lb}\n"
        "spec: {type: LoadBalancer, selector: {a: b}, ports: [{port: 5000}]}\n"
    )
    state = state_of(text, hosts=[H1, H2])
    ports = {(p.name, p.host): p.containers[0].ports for p in forwarders(state)}
    assert ports[("svc_np", "h1")] == (PortBinding(80, "TCP", 30080, "10.231.0.11"),)
    assert ports[("svc_ext", "h1")] == ()  # h1's address is not listed
    assert ports[("svc_ext", "h2")] == (PortBinding(8443, "TCP", 8443, "10.231.0.12"),)
    node_port, service_port = ports[("svc_lb", "h2")]
    assert 30000 <= node_port.host_port <= 32767  # allocated, as Kubernetes does for LB
    assert service_port == PortBinding(5000, "TCP", 5000, "10.231.0.12")


def test_udp_ports_are_forwarded_and_published_like_tcp() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: dns}\n"
        "spec: {type: NodePort, selector: {a: b}, ports: [{port: 53, protocol: UDP, "
        "name: dns, nodePort: 30053}, {port: 53, name: tcp}]}\n"
    )
    state = state_of(text)
    assert not state.problems
    [fwd] = forwarders(state)
    [box] = fwd.containers
    assert box.cmd[-2:] == ("udp:53=", "tcp:53=")
    udp, tcp = box.ports
    assert udp == PortBinding(53, "UDP", 30053, "10.231.0.11")
    assert (tcp.container_port, tcp.protocol, tcp.host_ip) == (53, "TCP", "10.231.0.11")
    assert tcp.host_port is not None and 30000 <= tcp.host_port <= 32767
    assert [p["protocol"] for p in fwd.spec["ports"]] == ["UDP", "TCP"]


def test_sctp_ports_are_a_warning_not_a_silent_drop() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: sig}\n"
        "spec: {selector: {a: b}, ports: [{port: 3868, protocol: SCTP}]}\n"
    )
    state = state_of(text)
    assert any("SCTP" in d.message and not d.is_error for d in state.problems)
    [fwd] = forwarders(state)
    assert fwd.containers[0].cmd == ("-t", "3", "-u", "60", "-e", "/etc/forwarder-endpoints")


def infra(pod: str, host: str, ip: str, *, published: tuple[Any, ...] = (), **kw: Any) -> Any:
    spec = {"containers": [{"name": "web", "ports": [{"containerPort": 8080, "name": "http"}]}]}
    return LiveContainer(
        id=f"{pod}-{host}-infra",
        name=f"default_default_{pod}_POD",
        host=host,
        labels={
            L.MANAGED_BY: L.MANAGED_BY_VALUE,
            L.INSTANCE: "default",
            L.ROLE: L.ROLE_INFRA,
            L.POD: pod,
            L.POD_NAMESPACE: "default",
            L.CONTAINER: L.INFRA_CONTAINER,
            L.POD_LABELS: json.dumps(kw.get("labels", {"app": "web"})),
            L.SPEC: json.dumps({"spec": spec}),
            L.OWNER_KIND: "ReplicationController",
            L.OWNER_NAMESPACE: "default",
            L.OWNER_NAME: "web",
        },
        state="running",
        status="Up",
        created=0,
        image="reconciler/pause:1",
        ip_address=ip,
        ports=published,
    )


def app_box(pod: str, host: str, state: str = "running") -> LiveContainer:
    return LiveContainer(
        id=f"{pod}-{host}-app",
        name=f"default_default_{pod}_web",
        host=host,
        labels={
            L.MANAGED_BY: L.MANAGED_BY_VALUE,
            L.INSTANCE: "default",
            L.ROLE: L.ROLE_APP,
            L.POD: pod,
            L.POD_NAMESPACE: "default",
            L.CONTAINER: "web",
        },
        state=state,
        status="Up" if state == "running" else "Exited (1) 1 s ago",
        created=0,
        image="example/web:1.0",
    )


def test_endpoints_local_by_pod_ip_remote_by_host_address_and_published_port() -> None:
    live = {
        "h1": HostState(
            "h1",
            True,
            (infra("web-0", "h1", "10.70.0.2", published=((8080, "tcp", 32001),)),)
            + (app_box("web-0", "h1"),),
        ),
        "h2": HostState(
            "h2",
            True,
            (infra("web-1", "h2", "10.70.0.2", published=((8080, "tcp", 32777),)),)
            + (app_box("web-1", "h2"),)
            + (infra("web-2", "h2", "10.70.0.3", published=((8080, "tcp", 32778),)),)
            + (app_box("web-2", "h2", state="exited"),),  # not ready: no endpoint
        ),
    }
    state = state_of(WEB, hosts=[H1, H2], live=live)
    spec = {p.host: p.spec for p in forwarders(state)}
    assert spec["h1"]["ports"][0]["endpoints"] == ["10.231.0.12:32777", "10.70.0.2:8080"]
    assert spec["h2"]["ports"][0]["endpoints"] == ["10.231.0.11:32001", "10.70.0.2:8080"]


def test_with_several_hosts_pods_publish_declared_ports_at_docker_chosen_ports() -> None:
    one = state_of(WEB, hosts=[H1])
    many = state_of(WEB, hosts=[H1, H2])
    assert workloads(one)[0].containers[0].ports == ()
    pod = workloads(many)[0]
    address = {"h1": H1.address, "h2": H2.address}[pod.host]
    assert pod.containers[0].ports == (PortBinding(8080, "TCP", 0, address),)


def test_an_endpoint_change_reloads_the_forwarder_in_place_and_says_why() -> None:
    empty = {"h1": HostState("h1", True)}
    before = state_of(DB, live=empty)
    [fwd] = forwarders(before)
    db_pod = next(p for p in workloads(before))
    running = (
        infra("db", "h1", "10.70.0.9", labels={"name": "db"}),
        app_box("db", "h1"),
    )
    # the forwarder made when db was not running yet, and the db pod that runs now
    held = forwarder_container("db", fwd.containers[0].ipv4_address)
    live_fwd = dataclasses.replace(
        held,
        name=fwd.containers[0].docker_name,
        labels={**held.labels, L.SPEC_HASH: fwd.spec_hash, L.SPEC: json.dumps({"spec": fwd.spec})},
    )
    db_infra = running[0]
    spec = {"containers": [{"name": "db", "ports": [{"containerPort": 3306, "name": "mysql"}]}]}
    labels = dict(db_infra.labels) | {
        L.SPEC: json.dumps({"spec": spec}),
        L.SPEC_HASH: db_pod.spec_hash,
        L.OWNER_KIND: "Pod",
        L.OWNER_NAME: "db",
    }
    db_infra = dataclasses.replace(db_infra, labels=labels)
    db_app = dataclasses.replace(
        running[1],
        labels={**running[1].labels, L.CONTAINER: "db", L.SPEC_HASH: db_pod.spec_hash},
    )
    live = {"h1": HostState("h1", True, (live_fwd, db_infra, db_app))}
    after = state_of(DB, live=live)
    result = plan(after, live)
    [action] = result.actions
    assert (action.verb, action.owner.kind, action.pod) == (Verb.RELOAD, "Service", "svc_db")
    assert "ports[0].endpoints" in action.reason
    assert action.live == (live_fwd,)  # the running forwarder: reloaded, not replaced
    [change] = action.changes
    assert (change.old, change.new) == ([], ["10.70.0.9:3306"])
    # once reloaded, its record says what it routes to: nothing more to do
    record = dataclasses.replace(
        live_fwd,
        id="record",
        state="created",
        labels={
            **live_fwd.labels,
            L.ROLE: L.ROLE_ENDPOINTS,
            L.FORWARDER: live_fwd.id,
            L.ENDPOINTS: json.dumps([["TCP", 3306, ["10.70.0.9:3306"]]]),
        },
    )
    reloaded = {"h1": HostState("h1", True, live["h1"].containers, markers=(record,))}
    assert plan(state_of(DB, live=reloaded), reloaded).actions == []
    # a record of another (older) forwarder instance counts for nothing
    stale = dataclasses.replace(record, labels={**record.labels, L.FORWARDER: "gone"})
    older = {"h1": HostState("h1", True, live["h1"].containers, markers=(stale,))}
    [again] = plan(state_of(DB, live=older), older).actions
    assert again.verb is Verb.RELOAD and again.live == (live_fwd, stale)


# -- the forwarder's program ---------------------------------------------------------------
def test_forwarder_args_name_protocol_port_and_endpoints() -> None:
    args = forwarder_args(
        [("TCP", 80, ["10.0.0.1:8080", "10.0.0.2:8080"]), ("UDP", 53, []), ("SCTP", 9, [])]
    )
    assert args == (
        "-t",
        "3",
        "-u",
        "60",
        "-e",
        "/etc/forwarder-endpoints",  # read again on SIGHUP: endpoints change in place
        "tcp:80=10.0.0.1:8080,10.0.0.2:8080",
        "udp:53=",
    )


def test_spec_of_forwarders_round_trips_through_yaml_for_field_diffs() -> None:
    [fwd] = forwarders(state_of(DB))
    assert yaml.safe_load(json.dumps(fwd.spec)) == fwd.spec
