"""ReplicationControllers on a real engine: a rolling update keeps replicas - 1 running and
replaces one pod at a time; scaling up and down keeps the ordinal names."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from reconciler.core import labels as L

from .conftest import SAMPLE_PODS, Rig, changed_pods, docker_time

pytestmark = pytest.mark.docker


def _running_keystone_pods(rig: Rig) -> int:
    """Pods of RC keystone whose three containers all run."""
    running = rig.containers(f"{L.OWNER_NAME}=keystone", running_only=True)
    pods: dict[str, set[str]] = {}
    for c in running:
        pods.setdefault(c["Labels"][L.POD], set()).add(c["Labels"][L.CONTAINER])
    return sum(1 for names in pods.values() if names == {"POD", "keystone", "memcached"})


def test_rolling_update_never_drops_below_replicas_minus_one(applied: Rig) -> None:
    rig = applied
    before = rig.ids()
    rig.edit("keystone/controller.yaml", "value: token123", "value: rotated")
    samples: list[int] = []
    stop = threading.Event()
    failure: list[BaseException] = []

    def poll() -> None:
        try:
            while not stop.is_set():
                samples.append(_running_keystone_pods(rig))
                time.sleep(0.02)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    poller = threading.Thread(target=poll, name="poll-keystone")
    poller.start()
    try:
        result = rig.apply()
    finally:
        stop.set()
        poller.join(timeout=30)
    assert not failure, failure
    assert result.exit_code == 0, result.output
    assert len(samples) >= 10, f"only {len(samples)} samples taken during the rollout"
    assert min(samples) >= 2, f"running keystone pods during the rollout: {samples}"
    assert min(samples) == 2, "the rollout never took a pod down: nothing was replaced?"
    assert samples[-1] == 3

    assert changed_pods(before, rig.ids()) == {"keystone-0", "keystone-1", "keystone-2"}
    # one at a time, in order: pod N+1 was created only after every container of pod N ran
    for i in range(2):
        started = max(
            docker_time(rig.inspect(f"keystone-{i}", c)["State"]["StartedAt"])
            for c in ("POD", "keystone", "memcached")
        )
        created_next = min(
            docker_time(rig.inspect(f"keystone-{i + 1}", c)["Created"])
            for c in ("POD", "keystone", "memcached")
        )
        assert created_next > started, f"keystone-{i + 1} was created before keystone-{i} ran"
    for i in range(3):
        assert "ADMIN_TOKEN=rotated" in rig.inspect(f"keystone-{i}", "keystone")["Config"]["Env"]
    rig.assert_converged()


def test_scaling_up_and_down_keeps_the_ordinal_names(applied: Rig) -> None:
    rig = applied
    before = rig.ids()
    keystone = {f"keystone-{i}": SAMPLE_PODS["keystone-0"] for i in range(5)}
    others = {p: SAMPLE_PODS[p] for p in ("frontend-0", "frontend-1", "keystone-db")}

    rig.edit("keystone/controller.yaml", "replicas: 3", "replicas: 5")
    result = rig.diff()
    assert result.exit_code == 1
    assert "wants 5 pod(s), 3 exist" in result.output
    rig.applied()
    rig.assert_converged({**others, **keystone})
    after = rig.ids()
    assert {n: after[n] for n in before} == before  # nothing that ran was touched
    for i in (3, 4):
        labels = rig.inspect(f"keystone-{i}", "POD")["Config"]["Labels"]
        assert labels[L.REPLICA] == str(i)
    rows = json.loads(rig.get("rc", "--source", rig.src, "-o", "json").output)["items"]
    counts = {r["metadata"]["name"]: (r["spec"]["replicas"], r["status"]["replicas"]) for r in rows}
    assert counts == {
        "frontend": (2, 2),
        "keystone": (5, 5),
    }

    rig.edit("keystone/controller.yaml", "replicas: 5", "replicas: 1")
    result = rig.apply()  # a scale-down is no prune: no --allow-mass-prune needed
    assert result.exit_code == 0, result.output
    assert "(scale down)" in result.output
    rig.assert_converged({**others, "keystone-0": SAMPLE_PODS["keystone-0"]})
    final = rig.ids()
    assert final == {n: i for n, i in before.items() if n in final}  # keystone-0 is the same


RC_PROBED = """\
apiVersion: v1
kind: ReplicationController
metadata: {{name: api}}
spec:
  replicas: 3
  selector: {{app: api}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
        - name: api
          image: sample/frontend:1.0
          command: [sh, -c]
          args: ["mkdir -p /www && touch /www/ready && exec httpd -f -p 8080 -h /www"]
          ports: [{{containerPort: 8080, name: http}}]
          readinessProbe:
            httpGet: {{path: {path}, port: http}}
            periodSeconds: 1
"""


def _api_pods(rig: Rig) -> dict[str, tuple[str, str]]:
    """Pod -> (spec hash, infra status) of RC api's pods."""
    found = rig.containers(f"{L.OWNER_NAME}=api", f"{L.ROLE}={L.ROLE_INFRA}")
    return {c["Labels"][L.POD]: (c["Labels"][L.SPEC_HASH], c["Status"]) for c in found}


def test_a_rolling_update_to_a_never_ready_template_holds_pass_after_pass(
    make_rig: Callable[[], Rig],
) -> None:
    """Gated on the readiness probe: the first new pod never passes it, so the update stops
    there (apply exits 1); the next apply replaces no other replica and says why, at the
    controller's file:line; a fixed template goes on to the end."""
    rig = make_rig()
    rig.write("api.yaml", RC_PROBED.format(path="/ready"))
    first = rig.apply()
    assert first.exit_code == 0, first.output
    old = _api_pods(rig)
    assert len(old) == 3 and all(s.endswith("(healthy)") for _, s in old.values()), old
    rig.write("api.yaml", RC_PROBED.format(path="/never"))
    broken = rig.apply()
    assert broken.exit_code == 1, broken.output
    assert "is not ready after" in broken.output
    again = rig.apply()
    assert again.exit_code == 1, again.output
    assert "rolling update held: pod api-0" in again.output and "api.yaml:1" in again.output
    now = _api_pods(rig)
    kept = {p for p, (h, s) in now.items() if h == old[p][0] and s.endswith("(healthy)")}
    assert kept == {"api-1", "api-2"}, now  # replicas - 1, ready, after two applies
    # a fixed template (another hash than the first): the update goes on to the end
    fixed = RC_PROBED.format(path="/ready").replace("/www/ready &&", "/www/ready /www/ok &&")
    rig.write("api.yaml", fixed)
    done = rig.apply()
    assert done.exit_code == 0, done.output
    final = _api_pods(rig)
    assert all(s.endswith("(healthy)") for _, s in final.values()), final
    assert all(final[p][0] not in (old[p][0], now[p][0]) for p in final), (old, now, final)
