"""Deployments with real readiness probes on a real engine (issue 11's proof): a pod whose
readiness file is removed leaves its Service within ``periodSeconds x failureThreshold + 2 s``
and comes back when it is restored, as ``get deployments`` says; and a rollout to a
template whose pods run but never pass their readiness probe fails at its deadline, is
rolled back, and is reported as failed (``/status``, the metric, ``rollout status``) with
what the probe said, while the Service answers throughout.

Stand-in app: the sample's busybox ``httpd`` serving ``/www/ready``, a file the test
deletes and restores. Traffic only goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from reconciler.core import labels as L

from .conftest import Rig, wait_for
from .test_deployments import metric, rollout
from .test_health import BOUND, FAILURES, PERIOD, Sampler, node_port
from .test_run import Service

pytestmark = pytest.mark.docker


def web(port: int, *, ready_path: str = "/ready", deadline: int = 600, min_ready: int = 0) -> str:
    """A Deployment of 3 httpd pods answering their name, ready while ``ready_path`` is
    served, behind a NodePort Service."""
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  minReadySeconds: {min_ready}
  progressDeadlineSeconds: {deadline}
  strategy:
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: sample/frontend:1.0
          command: [sh, -c]
          args:
            - mkdir -p /www && hostname > /www/index.html && touch /www/ready &&
              exec httpd -f -p 8080 -h /www
          ports: [{{containerPort: 8080, name: http}}]
          readinessProbe:
            httpGet: {{path: {ready_path}, port: http}}
            periodSeconds: {PERIOD}
            failureThreshold: {FAILURES}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http, nodePort: {port}}}]
"""


@pytest.fixture
def service(make_rig: Callable[[], Rig]) -> Iterator[tuple[Rig, Callable[..., Service]]]:
    rig = make_rig()
    started: list[Service] = []

    def start(*extra: str) -> Service:
        made = Service(rig, str(rig.src), *extra)
        started.append(made)
        return made.start()

    yield rig, start
    for made in started:
        with contextlib.suppress(Exception):
            made.stop(signal.SIGKILL, timeout=10)


def deployment_json(rig: Rig) -> dict[str, Any]:
    result = rig.get("deployments", "-o", "json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed["kind"] == "List"
    [item] = listed["items"]
    return dict(item)


def web_pods(rig: Rig) -> list[str]:
    """Deployment web's pods, by name, from the engine."""
    found = rig.containers(f"{L.OWNER_KIND}=Deployment", f"{L.ROLE}={L.ROLE_INFRA}")
    return sorted(c["Labels"][L.POD] for c in found)


def test_an_unready_deployment_pod_leaves_the_service_within_the_bound_and_comes_back(
    service: tuple[Rig, Callable[..., Service]],
) -> None:
    rig, start = service
    port = node_port()
    rig.write("web.yaml", web(port))
    run = start("--resync", "600")
    with Sampler(port) as sampler:
        wait_for(
            lambda: len(sampler.since(time.monotonic() - 2)) == 3,
            timeout=90,
            what=f"all three pods to answer\n{run.output()}",
        )
        pods = web_pods(rig)
        assert len(pods) == 3 and all(p.startswith("web-") for p in pods), pods
        assert sampler.since(time.monotonic() - 2) == set(pods)
        item = deployment_json(rig)
        assert item["apiVersion"] == "apps/v1" and item["kind"] == "Deployment"
        assert item["metadata"]["annotations"]["reconciler.io/source"].endswith("web.yaml:1:1")
        status = item["status"]
        assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"]) == (3, 3, 3)
        assert status["availableReplicas"] == 3
        available = {c["type"]: c for c in status["conditions"]}["Available"]
        assert available["status"] == "True"

        failures = sampler.failures
        victim, others = pods[1], {pods[0], pods[2]}
        rig.exec(victim, "web", ["rm", "/www/ready"])
        removed = time.monotonic()
        wait_for(lambda: time.monotonic() - removed > BOUND + 3, timeout=BOUND + 5)
        gone_after = sampler.last(victim) - removed
        assert gone_after <= BOUND, f"{victim} still answered {gone_after:.2f}s after it failed"
        assert sampler.since(removed + BOUND) == others
        status = deployment_json(rig)["status"]
        assert (status["readyReplicas"], status["availableReplicas"]) == (2, 2), status
        table = rig.get("deployments").output.splitlines()
        assert table[0].split()[:4] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"], table
        assert table[1].split()[:4] == ["web", "2/3", "3", "2"], table

        rig.exec(victim, "web", ["touch", "/www/ready"])
        restored = time.monotonic()
        wait_for(lambda: sampler.last(victim) > restored, timeout=BOUND + 5, what="back")
        assert sampler.last(victim) - restored <= BOUND + 1
        assert sampler.failures == failures, "the Service stopped answering"
    # the Deployment's pods were never replaced: readiness is not liveness
    assert web_pods(rig) == pods
    assert deployment_json(rig)["status"]["readyReplicas"] == 3
    named = rig.get("deployments", "-o", "name")
    assert named.output.split() == ["deployment.apps/web"]
    as_yaml = yaml.safe_load(rig.get("deployments", "-o", "yaml").output)
    assert as_yaml["items"][0]["status"]["readyReplicas"] == 3


def test_a_rollout_whose_pods_never_pass_readiness_fails_and_is_rolled_back(
    service: tuple[Rig, Callable[..., Service]],
) -> None:
    """The new pods run but their readiness probe never passes: the Service only ever
    answers from the old pods, the deadline fails the rollout, the old pods are back at
    full strength (the very same), and /status, the metric and ``rollout status`` say it
    failed, with what the probe said."""
    rig, start = service
    port = node_port()
    rig.write("web.yaml", web(port, deadline=8, min_ready=1))
    run = start("--resync", "2")
    wait_for(
        lambda: "default/web" in run.status().get("rollouts", {}),
        timeout=60,
        what=f"the first pass\n{run.output()}",
    )
    done = rollout(rig, "status", "web", "--timeout", "90")
    assert done.returncode == 0, done.stdout + done.stderr + run.output()
    good = web_pods(rig)
    assert len(good) == 3
    with Sampler(port) as sampler:
        wait_for(lambda: sampler.since(time.monotonic() - 2) == set(good), timeout=30)
        failures = sampler.failures
        rig.write("web.yaml", web(port, ready_path="/never", deadline=8, min_ready=1))

        def failed() -> dict[str, Any] | None:
            entry = run.status().get("rollouts", {}).get("default/web", {})
            return entry if entry.get("failed") else None

        entry = wait_for(failed, timeout=90, what=f"a failed rollout\n{run.output()}")
        wait_for(
            lambda: run.status()["rollouts"]["default/web"]["state"] == "complete",
            timeout=30,
            what="the rollback",
        )
        time.sleep(2)
        assert sampler.failures == failures, "the Service stopped answering"
        assert {who for _, who in sampler.seen} <= set(good)  # never a pod that was not ready
    assert web_pods(rig) == good
    reason = entry["failed"]["reason"]
    assert "no progress for 8s" in reason, reason
    assert "404" in reason or "Not Found" in reason, reason  # what the readiness probe got
    assert entry["failed"]["source"].endswith("web.yaml:1:1")
    _, text = run.get("/metrics")
    assert metric(text, "reconciler_rollout_failures_total", deployment="default/web") == 1.0
    said = rollout(rig, "status", "web", "--timeout", "10")
    assert said.returncode == 1, said.stdout + said.stderr
    assert "rollout of revision 2 failed" in said.stderr
    progressing = {c["type"]: c for c in deployment_json(rig)["status"]["conditions"]}
    assert progressing["Progressing"]["reason"] == "ProgressDeadlineExceeded"
