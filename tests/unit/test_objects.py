"""kubectl-shaped objects (``get -o json|yaml|name``) of pods that real passes made on
in-memory hosts: the fields kubectl scripts read are there and mean what they mean."""

from __future__ import annotations

import yaml

from reconciler.core import labels as L
from reconciler.core.model import HostState, ObjectRef
from reconciler.render.objects import (
    node_object,
    object_list,
    object_names,
    pod_object,
    rc_object,
    service_object,
    timestamp,
)
from reconciler.render.views import ServiceView, live_pods, pod_rows
from reconciler.source.hosts import Host

from .test_apply_memory import cluster, manifests, service
from .test_health_memory import T0, probed_rc, run


def test_pods_are_kubernetes_pod_objects_with_readiness_and_restarts() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(liveness=True, inits=1) + service("web")
    run(text, hosts, runtimes, T0)
    h1.set_health("mem_default_web-0_POD", "healthy")
    h1.set_health("mem_default_web-0_app", "unhealthy")
    run(text, hosts, runtimes, T0 + 5)  # web-0/app restarted once
    h1.set_health("mem_default_web-0_app", "healthy")
    pods = live_pods({"h1": h1.observe()})
    web0, web1 = (pod_object(p, "10.231.0.11", {}) for p in pods)
    assert web0["apiVersion"] == "v1" and web0["kind"] == "Pod"
    meta = web0["metadata"]
    assert (meta["name"], meta["namespace"], meta["labels"]) == ("web-0", "default", {"app": "web"})
    assert meta["annotations"]["reconciler.io/source"].startswith("m.yaml:")
    assert meta["ownerReferences"][0]["kind"] == "ReplicationController"
    assert web0["spec"]["nodeName"] == "h1"
    [app] = web0["spec"]["containers"]
    assert app["name"] == "app" and app["readinessProbe"]["httpGet"]["port"] == "http"
    assert web0["spec"]["initContainers"][0]["name"] == "init-0"
    status = web0["status"]
    assert (status["phase"], status["hostIP"]) == ("Running", "10.231.0.11")
    assert status["podIP"].startswith("10.99.0.")
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    [app_status] = status["containerStatuses"]
    assert (app_status["name"], app_status["ready"], app_status["restartCount"]) == (
        "app",
        True,
        1,
    )
    assert "running" in app_status["state"] and app_status["containerID"].startswith("docker://")
    [init_status] = status["initContainerStatuses"]
    assert init_status["state"]["terminated"] == {"exitCode": 0, "reason": "Completed"}
    # web-1: its readiness not yet checked: running, not ready
    assert web1["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in web1["status"]["conditions"]}["Ready"] == "False"
    assert web1["status"]["containerStatuses"][0]["ready"] is False
    # the table agrees: READY, RESTARTS
    rows = {r["NAME"]: r for r in pod_rows(pods, T0 + 10, {}, wide=False)}
    assert (rows["web-0"]["READY"], rows["web-0"]["RESTARTS"]) == ("1/1", 1)
    assert (rows["web-1"]["READY"], rows["web-1"]["STATUS"]) == ("0/1", "Running")
    # a List, as kubectl prints it, through JSON and YAML alike
    listed = object_list([web0, web1])
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == [
        "web-0",
        "web-1",
    ]
    assert yaml.safe_load(yaml.safe_dump(listed)) == listed
    assert object_names(listed["items"]) == ["pod/web-0", "pod/web-1"]


def test_a_failing_init_container_shows_in_status_and_phase() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(readiness=False, policy="Never", inits=2)
    h1.init_exit["mem_default_web_init-0"] = 2
    run(text, hosts, runtimes, T0)
    [pod] = live_pods({"h1": h1.observe()})
    assert pod.status == "Init:Error"
    body = pod_object(pod)
    assert body["status"]["phase"] == "Failed"  # restartPolicy Never: it stays failed
    first, second = body["status"]["initContainerStatuses"]
    assert first["state"]["terminated"] == {"exitCode": 2, "reason": "Error"}
    assert second["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert body["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "PodInitializing"}
    }
    assert {c["type"]: c["status"] for c in body["status"]["conditions"]}["Initialized"] == "False"


def test_statuses_while_initializing_and_in_back_off() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(readiness=False, policy="Always", inits=2)
    h1.init_running.add("mem_default_web_init-0")
    run(text, hosts, runtimes, T0)
    [pod] = live_pods({"h1": h1.observe()})
    assert (pod.status, pod.ready) == ("Init:0/2", (0, 1))  # the spec has one app container
    h1.init_running.clear()
    h1.init_exit["mem_default_web_init-0"] = 1
    h1.finish("mem_default_web_init-0", 1)
    run(text, hosts, runtimes, T0 + 1)  # restart 1 at once: fails again
    run(text, hosts, runtimes, T0 + 2)  # restart 2: held 10 s
    [pod] = live_pods({"h1": h1.observe()})
    assert pod.status == "Init:CrashLoopBackOff" and pod.restarts == 2
    state = pod_object(pod)["status"]["initContainerStatuses"][0]["state"]
    assert state["waiting"]["reason"] == "CrashLoopBackOff"


def test_controllers_services_and_hosts_as_objects() -> None:
    hosts, runtimes = cluster("h1")
    text = probed_rc(readiness=False) + service("web")
    run(text, hosts, runtimes, T0)
    objects = manifests(text)
    states = {"h1": runtimes["h1"].observe()}
    pods = live_pods(states)
    rc = rc_object(ObjectRef("ReplicationController", "default", "web"), objects[0], pods)
    assert rc["kind"] == "ReplicationController" and rc["spec"]["replicas"] == 2
    assert rc["status"] == {
        "replicas": 2,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    }
    view = ServiceView("10.64.8.9", {"h1": ("10.99.0.2:8080",)}, ())
    svc = service_object(objects[1], view, pods)
    assert (svc["kind"], svc["spec"]["clusterIP"], svc["spec"]["type"]) == (
        "Service",
        "10.64.8.9",
        "ClusterIP",
    )
    assert svc["metadata"]["annotations"]["reconciler.io/endpoints"] == "web-0@h1,web-1@h1"
    host = Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11", labels={"disk": "ssd"})
    node = node_object("h1", host, HostState("h1", False, error="refused"), "", 0)
    assert node["kind"] == "Node" and node["metadata"]["labels"] == {"disk": "ssd"}
    assert node["status"]["conditions"][0] == {
        "type": "Ready",
        "status": "False",
        "reason": "EngineUnreachable",
    }
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "10.231.0.11"}
    assert object_names([rc, svc, node]) == [
        "replicationcontroller/web",
        "service/web",
        "node/h1",
    ]


def test_timestamps_are_rfc3339_utc() -> None:
    assert timestamp(0) == "1970-01-01T00:00:00Z"
    assert L.SOURCE  # the annotation's value comes from this label
