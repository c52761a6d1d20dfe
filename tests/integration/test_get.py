"""``reconciler get`` against live containers: pods, rc, services, hosts, selectors."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from reconciler.source.hosts import DEFAULT_SOCKET

from .conftest import Rig

pytestmark = pytest.mark.docker


def table(text: str) -> list[dict[str, str]]:
    """A ``get`` table as rows (no cell holds spaces in these tests)."""
    lines = text.splitlines()
    header = lines[0].split()
    rows = []
    for line in lines[1:]:
        cells = line.split()
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def ready(pod: dict[str, Any]) -> str:
    """kubectl's READY column, from a Pod object."""
    statuses = pod["status"]["containerStatuses"]
    return f"{sum(1 for c in statuses if c['ready'])}/{len(statuses)}"


def test_get_shows_pods_controllers_services_and_hosts(applied: Rig) -> None:
    rig = applied

    result = rig.get("pods")
    assert result.exit_code == 0, result.output
    rows = table(result.output)
    assert list(rows[0]) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "HOST"]
    assert [(r["NAME"], r["READY"], r["STATUS"], r["RESTARTS"], r["HOST"]) for r in rows] == [
        ("frontend-0", "1/1", "Running", "0", "local"),
        ("frontend-1", "1/1", "Running", "0", "local"),
        ("keystone-0", "2/2", "Running", "0", "local"),
        ("keystone-1", "2/2", "Running", "0", "local"),
        ("keystone-2", "2/2", "Running", "0", "local"),
        ("keystone-db", "1/1", "Running", "0", "local"),
    ]

    result = rig.get("pods", "-o", "json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)  # a Kubernetes List of Pods, as kubectl prints
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert [(i["metadata"]["name"], ready(i), i["status"]["phase"]) for i in listed["items"]] == [
        (r["NAME"], r["READY"], r["STATUS"]) for r in rows
    ]
    keystone = next(i for i in listed["items"] if i["metadata"]["name"] == "keystone-1")
    assert keystone["spec"]["nodeName"] == "local"
    source = keystone["metadata"]["annotations"]["reconciler.io/source"]
    assert "keystone/controller.yaml:" in source
    assert [c["name"] for c in keystone["status"]["containerStatuses"]] == ["keystone", "memcached"]
    assert {c["restartCount"] for c in keystone["status"]["containerStatuses"]} == {0}
    assert rig.get("pods", "-o", "name").output.split()[:2] == ["pod/frontend-0", "pod/frontend-1"]

    result = rig.get("pods", "-o", "wide")
    wide = {r["NAME"]: r for r in table(result.output)}
    infra = rig.inspect("keystone-1", "POD")
    networks = infra["NetworkSettings"]["Networks"]
    assert wide["keystone-1"]["IP"] == networks[f"reconciler-{rig.instance}"]["IPAddress"]
    assert wide["keystone-1"]["OWNER"] == "ReplicationController/keystone"
    assert wide["keystone-1"]["IMAGES"] == "sample/keystone:1.0,sample/memcached:1.0"
    assert wide["keystone-db"]["OWNER"] == "Pod/keystone-db"

    for selector, names in (
        ("name=keystone", ["keystone-0", "keystone-1", "keystone-2"]),
        ("app in (frontend,keystone-db)", ["frontend-0", "frontend-1", "keystone-db"]),
        ("app!=keystone", ["frontend-0", "frontend-1", "keystone-db"]),
    ):
        result = rig.get("pods", "-l", selector)
        assert result.exit_code == 0, result.output
        assert [r["NAME"] for r in table(result.output)] == names, selector
    result = rig.get("pods", "-l", "app=nothing")
    assert result.output == "No resources found.\n"

    result = rig.get("rc", "--source", rig.src)
    assert result.exit_code == 0, result.output
    assert [
        (r["NAME"], r["DESIRED"], r["CURRENT"], r["READY"], r["HOSTS"])
        for r in table(result.output)
    ] == [("frontend", "2", "2", "2", "local"), ("keystone", "3", "3", "3", "local")]

    # without manifests the rc's DESIRED and SELECTOR are unknown: "?" and an empty cell
    result = rig.get("rc", "-o", "wide")
    assert result.exit_code == 0, result.output
    assert [(r["NAME"], r["DESIRED"], r["SELECTOR"]) for r in table(result.output)] == [
        ("frontend", "?", "<none>"),
        ("keystone", "?", "<none>"),
    ]
    rc_json = json.loads(rig.get("rc", "-o", "json").output)["items"]
    assert [(r["metadata"]["name"], r["spec"].get("replicas")) for r in rc_json] == [
        ("frontend", None),
        ("keystone", None),
    ]

    result = rig.get("services", "--source", rig.src)
    assert result.exit_code == 0, result.output
    assert [
        (r["NAME"], r["TYPE"], r["PORTS"], r["ENDPOINTS"], r["SELECTOR"])
        for r in table(result.output)
    ] == [
        ("db", "ClusterIP", "3306/TCP", "1", "name=keystone-db"),
        ("frontend", "NodePort", f"80:{rig.node_port}/TCP", "2", "app=frontend"),
        (
            "keystone-public",
            "LoadBalancer",
            f"{rig.lb_port}:{rig.lb_node_port}/TCP",
            "3",
            "name=keystone",
        ),
    ]

    # a pod that stops running is no endpoint and no longer READY
    rig.client.containers.get(rig.name("keystone-0", "memcached")).kill()
    pods = {r["NAME"]: r for r in table(rig.get("pods").output)}
    assert (pods["keystone-0"]["READY"], pods["keystone-0"]["STATUS"]) == ("1/2", "Error")
    services = json.loads(rig.get("services", "--source", rig.src, "-o", "json").output)
    routed = {s["metadata"]["name"]: s["metadata"]["annotations"] for s in services["items"]}
    assert routed["keystone-public"]["reconciler.io/endpoints"].count("@local") == 2
    rc = json.loads(rig.get("rc", "--source", rig.src, "-o", "json").output)["items"]
    assert {r["metadata"]["name"]: r["status"]["readyReplicas"] for r in rc}["keystone"] == 2

    result = rig.get("hosts")
    assert result.exit_code == 0, result.output
    [host_row] = table(result.output)  # an empty cell prints as <none>: one word per column
    assert list(host_row) == [
        "NAME",
        "ADDRESS",
        "REACHABLE",
        "ENGINE",
        "PODS",
        "FORWARDERS",
        "CPU",
        "MEMORY",
        "ERROR",
    ]
    assert list(host_row.values())[:3] == ["local", "127.0.0.1", "yes"]
    # 6 pods, 3 forwarders; requests (else limits): db 0.5/64Mi, frontend 2 x 0.1/16Mi,
    # keystone 3 x (0.5 + memcached 0)/(64Mi + 32Mi)
    assert list(host_row.values())[4:8] == ["6", "3", "2.2", "384Mi"], host_row
    assert host_row["ERROR"] == "<none>"
    result = rig.get("hosts", "-o", "wide")
    assert result.exit_code == 0, result.output
    [wide_host] = table(result.output)
    assert list(wide_host)[-3:] == ["URL", "LABELS", "CONTAINERS"]
    assert (wide_host["ERROR"], wide_host["LABELS"]) == ("<none>", "<none>")
    assert wide_host["URL"] == (os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET)
    assert wide_host["CONTAINERS"] == "18"
    result = rig.get("hosts", "-o", "json")
    assert result.exit_code == 0, result.output
    [host] = json.loads(result.output)["items"]  # hosts as Kubernetes Nodes
    assert (host["kind"], host["metadata"]["name"]) == ("Node", "local")
    assert host["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
    engine = rig.client.version()["Version"]
    assert host["status"]["nodeInfo"]["containerRuntimeVersion"] == f"docker://{engine}"
    assert host["metadata"]["annotations"]["reconciler.io/pods"] == "6"
    assert "reconciler.io/error" not in host["metadata"]["annotations"]


def test_get_services_from_invalid_manifests_is_an_error_not_a_traceback(rig: Rig) -> None:
    rig.write(
        "bad/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: [not, a, mapping]\n",
    )
    result = rig.get("services", "--source", rig.src)
    assert result.exit_code == 2, result.output
    assert "bad/service.yaml:4:1: error: Service/web: spec: expected mapping" in result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
