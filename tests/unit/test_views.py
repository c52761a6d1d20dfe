"""kubectl-style rows for ``reconciler get``, from plain LiveContainer values."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from reconciler.core import labels as L
from reconciler.core.model import HostState, LiveContainer, Manifest, ObjectRef
from reconciler.core.selectors import parse_selector
from reconciler.engine.translate import live_container
from reconciler.render.views import (
    LivePod,
    age,
    host_rows,
    live_pods,
    pod_rows,
    rc_rows,
    service_rows,
    table_lines,
)
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

NOW = 1_700_010_000.0
CREATED = 1_700_000_000  # NOW - 10000 s: "2h"


def lc(
    pod: str,
    container: str,
    state: str = "running",
    status: str = "",
    *,
    host: str = "h1",
    namespace: str = "default",
    owner: str = "",
    pod_labels: dict[str, str] | None = None,
    created: int = CREATED,
    image: str = "example/app:1",
    ip: str = "",
) -> LiveContainer:
    kind, _, owner_name = (owner or f"Pod/{pod}").partition("/")
    labels = {
        L.MANAGED_BY: L.MANAGED_BY_VALUE,
        L.INSTANCE: L.DEFAULT_INSTANCE,
        L.POD: pod,
        L.POD_NAMESPACE: namespace,
        L.OWNER_KIND: kind,
        L.OWNER_NAMESPACE: namespace,
        L.OWNER_NAME: owner_name,
        L.CONTAINER: container,
        L.ROLE: L.ROLE_INFRA if container == L.INFRA_CONTAINER else L.ROLE_APP,
        L.POD_LABELS: L.canonical_json(pod_labels or {}),
    }
    return LiveContainer(
        id=f"{host}-{namespace}-{pod}-{container}",
        name=f"default_{namespace}_{pod}_{container}",
        host=host,
        labels=labels,
        state=state,
        status=status or {"running": "Up 2 hours", "created": "Created"}.get(state, state),
        created=created,
        image=image,
        ip_address=ip,
    )


def running_pod(pod: str, *apps: str, **kwargs: Any) -> list[LiveContainer]:
    return [lc(pod, L.INFRA_CONTAINER, **kwargs)] + [lc(pod, a, **kwargs) for a in apps or ("app",)]


def one_pod(containers: list[LiveContainer]) -> LivePod:
    (pod,) = live_pods({"h1": HostState("h1", True, tuple(containers))})
    return pod


def manifests(text: str) -> list[Manifest]:
    loaded = parse_text(text, "m.yaml")
    assert loaded.diagnostics == []
    return loaded.manifests


def printed(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Rows as the ``get`` table prints them, read back at the header's column offsets."""
    header, *lines = table_lines(rows)
    columns = header.split()
    assert columns == list(rows[0]), header
    starts, position = [], 0
    for column in columns:  # each header starts where the previous column's width ends
        position = header.index(column, position)
        starts.append(position)
        position += len(column)
    ends = [*starts[1:], None]
    return [
        {c: line[a:b].strip() for c, a, b in zip(columns, starts, ends, strict=True)}
        for line in lines
    ]


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as ``get -o json`` writes them."""
    return list(json.loads(json.dumps(rows, indent=2)))


def assert_awkable(rows: list[dict[str, Any]]) -> None:
    """Every printed cell is one whitespace-free word: awk's $N is column N."""
    for row in printed(rows):
        for column, text in row.items():
            assert text and text.split() == [text], (column, text, row)


# -- status and readiness -----------------------------------------------------------------
def with_apps(*apps: tuple[str, str]) -> LivePod:
    containers = [lc("web", L.INFRA_CONTAINER)]
    containers += [lc("web", f"c{i}", state, status) for i, (state, status) in enumerate(apps)]
    return one_pod(containers)


@pytest.mark.parametrize(
    ("apps", "status", "ready"),
    [
        ([("running", "Up 1 minute")], "Running", (1, 1)),
        ([("running", "Up"), ("running", "Up")], "Running", (2, 2)),
        ([("exited", "Exited (0) 1 minute ago")], "Completed", (0, 1)),
        ([("exited", "Exited (0) 1 s ago"), ("exited", "Exited (0) 1 s ago")], "Completed", (0, 2)),
        ([("exited", "Exited (1) 1 minute ago")], "Error", (0, 1)),
        ([("exited", "Exited (0) 1 s ago"), ("exited", "Exited (137) 1 s ago")], "Error", (0, 2)),
        (
            [("running", "Up"), ("restarting", "Restarting (1) 2 seconds ago")],
            "CrashLoopBackOff",
            (1, 2),
        ),
        (
            [("restarting", "Restarting (1) 2 s ago"), ("created", "Created")],
            "CrashLoopBackOff",
            (0, 2),
        ),
        ([("running", "Up"), ("created", "Created")], "ContainerCreating", (1, 2)),
        ([], "Pending", (0, 0)),
    ],
)
def test_status_and_ready(apps: list[tuple[str, str]], status: str, ready: tuple[int, int]) -> None:
    pod = with_apps(*apps)
    assert pod.status == status
    assert pod.ready == ready


def test_stopped_infra_container_is_an_error_whatever_the_apps_do() -> None:
    pod = one_pod(
        [lc("web", L.INFRA_CONTAINER, "exited", "Exited (137) 1 s ago"), lc("web", "app")]
    )
    assert pod.status == "Error"
    assert pod.ready == (1, 1)  # READY counts app containers only


def test_infra_is_not_counted_as_a_container_in_ready() -> None:
    pod = one_pod(running_pod("web", "a", "b", "c"))
    assert pod.ready == (3, 3)
    assert pod.infra is not None and pod.infra.labels[L.CONTAINER] == L.INFRA_CONTAINER
    assert [c.labels[L.CONTAINER] for c in pod.apps] == ["a", "b", "c"]


# -- grouping -------------------------------------------------------------------------------
def test_live_pods_group_sort_and_carry_owner_and_labels() -> None:
    states = {
        "h2": HostState(
            "h2",
            True,
            tuple(
                running_pod("fe-1", "web", host="h2", owner="ReplicationController/fe")
                + running_pod("api", host="h2", namespace="shop", pod_labels={"app": "api"})
            ),
        ),
        "h1": HostState(
            "h1", True, tuple(running_pod("fe-0", "web", owner="ReplicationController/fe"))
        ),
        "h3": HostState("h3", False, error="down"),
    }
    pods = live_pods(states)
    assert [(p.namespace, p.name, p.host) for p in pods] == [
        ("default", "fe-0", "h1"),
        ("default", "fe-1", "h2"),
        ("shop", "api", "h2"),
    ]
    assert pods[0].owner == ObjectRef("ReplicationController", "default", "fe")
    assert pods[2].owner == ObjectRef("Pod", "shop", "api")
    assert pods[2].labels == {"app": "api"}


def test_live_pods_filtered_by_selector_on_pod_labels() -> None:
    containers = running_pod("a", pod_labels={"app": "web", "tier": "front"})
    containers += running_pod("b", pod_labels={"app": "db"})
    containers += running_pod("c")
    states = {"h1": HostState("h1", True, tuple(containers))}
    assert [p.name for p in live_pods(states, parse_selector("app=web"))] == ["a"]
    assert [p.name for p in live_pods(states, parse_selector("app"))] == ["a", "b"]
    assert [p.name for p in live_pods(states, parse_selector("!app"))] == ["c"]
    assert [p.name for p in live_pods(states, parse_selector(""))] == ["a", "b", "c"]


# -- age ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (12 * 60 + 59, "12m"),
        (7199, "119m"),
        (7200, "2h"),
        (47 * 3600 + 3599, "47h"),
        (48 * 3600, "2d"),
        (400 * 86400, "400d"),
        (-30, "0s"),  # a clock skewed into the future
    ],
)
def test_age(seconds: int, text: str) -> None:
    assert age(int(NOW) - seconds, NOW) == text


# -- pod rows -------------------------------------------------------------------------------
def test_pod_rows() -> None:
    containers = running_pod("web", "app", "side", ip="172.17.0.5")
    containers[1] = lc("web", "app", created=CREATED - 200_000, image="example/web:2")
    containers += running_pod("api", namespace="shop", image="example/api:1")
    states = {"h1": HostState("h1", True, tuple(containers))}
    pods = live_pods(states)
    restarts = {"h1-default-web-app": 2, "h1-default-web-side": 1, "h1-default-web-POD": 7}
    rows = pod_rows(pods, NOW, restarts, wide=False)
    assert rows == [
        {
            "NAME": "web",
            "READY": "2/2",
            "STATUS": "Running",
            "RESTARTS": 3,  # app containers only
            "AGE": "2d",  # the oldest container
            "HOST": "h1",
        },
        {
            "NAME": "shop/api",
            "READY": "1/1",
            "STATUS": "Running",
            "RESTARTS": 0,
            "AGE": "2h",
            "HOST": "h1",
        },
    ]
    wide = pod_rows(pods, NOW, restarts, wide=True)
    assert wide[0]["IP"] == "172.17.0.5"
    assert wide[0]["OWNER"] == "Pod/web"
    assert wide[0]["IMAGES"] == "example/web:2,example/app:1"
    assert wide[1]["IMAGES"] == "example/api:1"


def test_pod_row_without_infra_has_no_ip() -> None:
    pods = live_pods({"h1": HostState("h1", True, (lc("web", "app"),))})
    rows = pod_rows(pods, NOW, {}, wide=True)
    assert rows[0]["IP"] == ""
    assert printed(rows)[0]["IP"] == "<none>"  # kubectl's empty cell
    assert as_json(rows)[0]["IP"] == ""  # data stays empty
    assert_awkable(rows)


def test_table_lines_align_columns_and_say_when_there_is_nothing() -> None:
    assert table_lines([]) == ["No resources found."]
    rows = [{"NAME": "a", "IP": "", "N": 3}, {"NAME": "longer", "IP": "10.0.0.1", "N": 10}]
    assert table_lines(rows) == [
        "NAME     IP         N",
        "a        <none>     3",
        "longer   10.0.0.1   10",
    ]


# -- replication controllers ----------------------------------------------------------------
RC = """\
apiVersion: v1
kind: ReplicationController
metadata: {name: fe}
spec:
  replicas: 3
  selector: {app: fe, tier: web}
  template:
    metadata: {labels: {app: fe, tier: web}}
    spec:
      containers: [{name: web, image: example/fe:1}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: idle, namespace: shop}
spec:
  selector: {app: idle}
  template:
    metadata: {labels: {app: idle}}
    spec:
      containers: [{name: w, image: example/idle:1}]
"""


def rc_pods() -> list[LivePod]:
    owner = "ReplicationController/fe"
    containers = running_pod("fe-0", "web", owner=owner, image="example/fe:1")
    containers += [
        lc("fe-1", L.INFRA_CONTAINER, host="h2", owner=owner),
        lc("fe-1", "web", "exited", "Exited (1) 3 s ago", host="h2", owner=owner),
    ]
    containers += running_pod("lonely", owner="Pod/lonely")
    by_host: dict[str, list[LiveContainer]] = {}
    for c in containers:
        by_host.setdefault(c.host, []).append(c)
    return live_pods({h: HostState(h, True, tuple(cs)) for h, cs in by_host.items()})


def test_rc_rows_with_manifests() -> None:
    rows = rc_rows(rc_pods(), manifests(RC), NOW, wide=True)
    assert rows == [
        {
            "NAME": "fe",
            "DESIRED": 3,
            "CURRENT": 2,
            "READY": 1,  # fe-1's container failed
            "AGE": "2h",
            "HOSTS": "h1,h2",
            "CONTAINERS": "web",
            "IMAGES": "example/app:1,example/fe:1",
            "SELECTOR": "app=fe,tier=web",
        },
        {
            "NAME": "shop/idle",
            "DESIRED": 1,  # replicas defaults to 1
            "CURRENT": 0,
            "READY": 0,
            "AGE": "-",
            "HOSTS": "",
            "CONTAINERS": "",
            "IMAGES": "",
            "SELECTOR": "app=idle",
        },
    ]
    assert printed(rows)[1] == {
        "NAME": "shop/idle",
        "DESIRED": "1",
        "CURRENT": "0",
        "READY": "0",
        "AGE": "-",
        "HOSTS": "<none>",
        "CONTAINERS": "<none>",
        "IMAGES": "<none>",
        "SELECTOR": "app=idle",
    }
    assert as_json(rows) == rows  # -o json: empty strings, as before
    assert as_json(rows)[1]["HOSTS"] == ""
    assert_awkable(rows)


def test_rc_rows_without_manifests_do_not_know_desired() -> None:
    rows = rc_rows(rc_pods(), [], NOW, wide=False)
    assert rows == [
        {"NAME": "fe", "DESIRED": "?", "CURRENT": 2, "READY": 1, "AGE": "2h", "HOSTS": "h1,h2"}
    ]


# -- services -------------------------------------------------------------------------------
SERVICES = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, nodePort: 30080}, {port: 53, protocol: UDP}]
  externalIPs: [192.0.2.1]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 3306}]
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec:
  ports: [{port: 443}]
"""


def test_service_rows_count_running_selected_pods_in_the_namespace() -> None:
    containers = running_pod("web-a", pod_labels={"app": "web", "v": "1"})
    containers += running_pod("web-b", pod_labels={"app": "web"}, host="h2")
    containers += [
        lc("web-c", L.INFRA_CONTAINER, pod_labels={"app": "web"}),
        lc("web-c", "app", "exited", "Exited (1) 1 s ago", pod_labels={"app": "web"}),
    ]
    containers += running_pod("other", pod_labels={"app": "api"})
    by_host: dict[str, list[LiveContainer]] = {}
    for c in containers:
        by_host.setdefault(c.host, []).append(c)
    pods = live_pods({h: HostState(h, True, tuple(cs)) for h, cs in by_host.items()})
    rows = service_rows(manifests(SERVICES), pods, wide=True)
    assert rows == [
        {
            "NAME": "external",
            "TYPE": "ClusterIP",
            "CLUSTER-IP": "<none>",  # no forwarder observed
            "PORTS": "443/TCP",
            "ENDPOINTS": 0,  # no selector: selects nothing
            "FORWARDERS": 0,
            "SELECTOR": "",
            "PODS": "",
            "ROUTES": "",
            "PUBLISHED": "",
            "EXTERNAL-IP": "",
        },
        {
            "NAME": "web",
            "TYPE": "NodePort",
            "CLUSTER-IP": "<none>",
            "PORTS": "80:30080/TCP,53/UDP",
            "ENDPOINTS": 2,  # web-c is not running; other does not match
            "FORWARDERS": 0,
            "SELECTOR": "app=web",
            "PODS": "web-a@h1,web-b@h2",
            "ROUTES": "",
            "PUBLISHED": "",
            "EXTERNAL-IP": "192.0.2.1",
        },
        {
            "NAME": "shop/db",
            "TYPE": "ClusterIP",
            "CLUSTER-IP": "<none>",
            "PORTS": "3306/TCP",
            "ENDPOINTS": 0,  # the web pods live in another namespace
            "FORWARDERS": 0,
            "SELECTOR": "app=web",
            "PODS": "",
            "ROUTES": "",
            "PUBLISHED": "",
            "EXTERNAL-IP": "",
        },
    ]
    assert printed(rows)[0] == {
        "NAME": "external",
        "TYPE": "ClusterIP",
        "CLUSTER-IP": "<none>",
        "PORTS": "443/TCP",
        "ENDPOINTS": "0",
        "FORWARDERS": "0",
        "SELECTOR": "<none>",
        "PODS": "<none>",
        "ROUTES": "<none>",
        "PUBLISHED": "<none>",
        "EXTERNAL-IP": "<none>",
    }
    assert printed(rows)[2]["PODS"] == printed(rows)[2]["EXTERNAL-IP"] == "<none>"
    assert as_json(rows)[0]["SELECTOR"] == as_json(rows)[0]["EXTERNAL-IP"] == ""
    assert_awkable(rows)
    narrow = service_rows(manifests(SERVICES), pods, wide=False)
    assert printed(narrow)[0]["SELECTOR"] == "<none>"
    assert_awkable(narrow)
    assert set(narrow[1]) == {
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "PORTS",
        "ENDPOINTS",
        "FORWARDERS",
        "SELECTOR",
    }


# -- hosts ----------------------------------------------------------------------------------
def test_host_rows_show_pods_forwarders_and_capacity_used() -> None:
    import dataclasses

    spec = {"containers": [{"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]}
    a = running_pod("a", "x", "y")
    a[0] = dataclasses.replace(a[0], labels={**a[0].labels, L.SPEC: json.dumps({"spec": spec})})
    forwarder = dataclasses.replace(
        lc("svc_db", L.INFRA_CONTAINER, owner="Service/db"),
        labels={
            **lc("svc_db", L.INFRA_CONTAINER).labels,
            L.ROLE: L.ROLE_FORWARDER,
            L.OWNER_KIND: "Service",
        },
    )
    states = {
        "h2": HostState("h2", False, error="connection refused"),
        "h1": HostState("h1", True, (*a, *running_pod("b"), forwarder)),
    }
    hosts = [
        Host(
            "h1",
            "tcp://h1:2375",
            "10.0.0.1",
            {"zone": "a"},
            cpu_nano=2 * 10**9,
            memory_bytes=1 << 30,
        ),
        Host("h2", "tcp://h2:2375", "10.0.0.2"),
        Host("h3", "tcp://h3:2375", "10.0.0.3"),
    ]
    rows = host_rows(states, hosts, {"h1": "24.0.7"}, wide=True)
    assert rows == [
        {
            "NAME": "h1",
            "ADDRESS": "10.0.0.1",
            "REACHABLE": "yes",
            "ENGINE": "24.0.7",
            "PODS": 2,
            "FORWARDERS": 1,
            "CPU": "0.25/2",
            "MEMORY": "64Mi/1Gi",
            "ERROR": "",
            "URL": "tcp://h1:2375",
            "LABELS": "zone=a",
            "CONTAINERS": 6,
        },
        {
            "NAME": "h2",
            "ADDRESS": "10.0.0.2",
            "REACHABLE": "no",
            "ENGINE": "",
            "PODS": 0,
            "FORWARDERS": 0,
            "CPU": "0",
            "MEMORY": "0",
            "ERROR": "connection refused",
            "URL": "tcp://h2:2375",
            "LABELS": "",
            "CONTAINERS": 0,
        },
        {
            "NAME": "h3",
            "ADDRESS": "10.0.0.3",
            "REACHABLE": "no",
            "ENGINE": "",
            "PODS": 0,
            "FORWARDERS": 0,
            "CPU": "0",
            "MEMORY": "0",
            "ERROR": "not observed",
            "URL": "tcp://h3:2375",
            "LABELS": "",
            "CONTAINERS": 0,
        },
    ]
    shown = printed(rows)
    assert [(r["ENGINE"], r["ERROR"], r["LABELS"]) for r in shown] == [
        ("24.0.7", "<none>", "zone=a"),
        ("<none>", "connection refused", "<none>"),
        ("<none>", "not observed", "<none>"),
    ]
    assert as_json(rows)[0]["ERROR"] == "" and as_json(rows)[2]["LABELS"] == ""
    narrow = host_rows({"h1": states["h1"]}, hosts[:1], {}, wide=False)
    assert printed(narrow) == [
        {
            "NAME": "h1",
            "ADDRESS": "10.0.0.1",
            "REACHABLE": "yes",
            "ENGINE": "<none>",  # the version could not be read
            "PODS": "2",
            "FORWARDERS": "1",
            "CPU": "0.25/2",
            "MEMORY": "64Mi/1Gi",
            "ERROR": "<none>",
        }
    ]
    assert_awkable(narrow)


# -- docker list entries --------------------------------------------------------------------
def test_live_container_from_a_docker_list_entry() -> None:
    item = {
        "Id": "abc123",
        "Names": ["/default_default_web_POD"],
        "Image": "reconciler/pause:1",
        "Created": CREATED,
        "State": "exited",
        "Status": "Exited (137) 5 seconds ago",
        "Labels": {L.POD: "web", L.ROLE: L.ROLE_INFRA},
        "NetworkSettings": {
            "Networks": {"none": {"IPAddress": ""}, "bridge": {"IPAddress": "172.17.0.9"}}
        },
    }
    c = live_container("h1", item)
    assert c == LiveContainer(
        id="abc123",
        name="default_default_web_POD",
        host="h1",
        labels={L.POD: "web", L.ROLE: L.ROLE_INFRA},
        state="exited",
        status="Exited (137) 5 seconds ago",
        created=CREATED,
        image="reconciler/pause:1",
        ip_address="172.17.0.9",
    )
    assert not c.running


def test_live_container_tolerates_missing_fields() -> None:
    c = live_container("h1", {"Id": "x", "Labels": None, "NetworkSettings": None})
    assert (c.name, dict(c.labels), c.state, c.status, c.created, c.ip_address) == (
        "",
        {},
        "",
        "",
        0,
        "",
    )


def test_pod_labels_that_are_not_json_are_ignored() -> None:
    good = lc("web", "app", pod_labels={"a": "b"})
    assert one_pod([good]).labels == {"a": "b"}
    broken = dataclasses.replace(good, labels={**good.labels, L.POD_LABELS: "{not json"})
    assert one_pod([broken]).labels == {}
