"""Deployments end to end on in-memory hosts: the real passes (``apply.converge``, driven by
``apply.drive`` as ``reconciler apply`` drives them, or by the service's loop), on
``MemoryHost``s that implement the runtime protocols with the engine's own translation. A
clock of the test's own makes deadlines and ``minReadySeconds`` instant. No Docker, no
mocks.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.converge import (
    Converged,
    converge,
    make_plan,
    observe,
    observe_and_remember,
)
from reconciler.apply.drive import Driven, Pacing, drive
from reconciler.apply.runtime import HostRuntime
from reconciler.check.validate import validate
from reconciler.core import labels as L
from reconciler.core.model import ObjectRef
from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.plan.rollout_memory import encode, read_memories, undo
from reconciler.source.hosts import Host
from reconciler.source.load import load_paths, parse_text

from .memory_runtime import MemoryHost

SETTINGS = Settings(instance="mem", forwarder_image="reconciler/forwarder:test")
WEB = ObjectRef("Deployment", "default", "web")
ROOT = Path(__file__).resolve().parents[2]


def deployment(
    image: str, replicas: int = 4, *, deadline: int = 20, min_ready: int = 0, extra: str = ""
) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, labels: {{team: a}}}}
spec:
  replicas: {replicas}
  minReadySeconds: {min_ready}
  progressDeadlineSeconds: {deadline}
  {extra}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: app
          image: "{image}"
          ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def cluster(*names: str) -> tuple[list[Host], dict[str, MemoryHost]]:
    hosts = [
        Host(n, f"tcp://10.231.0.{i + 11}:2375", f"10.231.0.{i + 11}") for i, n in enumerate(names)
    ]
    images = ("web:1", "web:2", "web:3", "crash:1")
    runtimes = {h.name: MemoryHost(h.name, instance="mem", images=images) for h in hosts}
    for runtime in runtimes.values():
        runtime.crashing.add("crash:1")
    return hosts, runtimes


def apply(
    text: str,
    hosts: list[Host],
    runtimes: Mapping[str, HostRuntime],
    clock: Clock,
    *,
    wait: bool = True,
    samples: list[tuple[int, int]] | None = None,
) -> Driven:
    """``reconciler apply``: the first plan, then passes until the rollouts are done.
    ``samples``: (pods, ready pods) of Deployment web after every pass."""
    result = validate(parse_text(text, "web.yaml"))
    assert result.valid, [str(d) for d in result.errors]
    live, memory, now = observe_and_remember(runtimes, "mem", None, clock=clock)
    _, first = make_plan(result.manifests, hosts, live, SETTINGS, host_memory=memory, now=now)

    def sample(_: Converged) -> None:
        if samples is not None:
            samples.append(counts(runtimes))

    return drive(
        first,
        result.manifests,
        hosts,
        SETTINGS,
        runtimes,
        host_memory=memory,
        now=now,
        pacing=Pacing(interval=1.0, clock=clock, wall=clock, sleep=clock.sleep, wait=wait),
        on_pass=sample,
    )


def web_pods(runtimes: Mapping[str, HostRuntime]) -> dict[str, list[str]]:
    """Pod -> hosts it runs on, for Deployment web."""
    found: dict[str, list[str]] = {}
    for host, state in observe(runtimes).items():
        for c in state.containers:
            labels = c.labels
            owner = (labels.get(L.OWNER_KIND), labels.get(L.OWNER_NAME), labels.get(L.ROLE))
            if owner == ("Deployment", "web", L.ROLE_INFRA):
                found.setdefault(labels[L.POD], []).append(host)
    return found


def counts(runtimes: Mapping[str, HostRuntime]) -> tuple[int, int]:
    pods: dict[str, bool] = {}
    for state in observe(runtimes).values():
        for c in state.containers:
            if c.labels.get(L.OWNER_KIND) == "Deployment":
                pod = c.labels[L.POD]
                pods[pod] = pods.get(pod, True) and c.running
    return len(pods), sum(pods.values())


def test_a_deployment_runs_its_pods_named_by_revision_over_both_hosts() -> None:
    hosts, runtimes = cluster("h1", "h2")
    clock = Clock()
    driven = apply(deployment("web:1"), hosts, runtimes, clock)
    assert driven.still_failing == [] and driven.failed_rollouts == []
    step = driven.rollouts.steps[WEB]
    hash_ = step.status.template_hash
    assert step.status.state == "complete" and step.status.revision == 1
    assert web_pods(runtimes) == {
        f"web-{hash_}-0": ["h1"],
        f"web-{hash_}-1": ["h2"],
        f"web-{hash_}-2": ["h1"],
        f"web-{hash_}-3": ["h2"],
    }
    infra = runtimes["h1"].by_name(f"mem_default_web-{hash_}-0_POD")
    assert infra["Labels"][L.TEMPLATE_HASH] == hash_
    assert json.loads(infra["Labels"][L.POD_LABELS]) == {"app": "web", "pod-template-hash": hash_}
    # the Service selects them: each host's forwarder lists the pods it can reach
    forwarder = runtimes["h1"].by_name("mem_default_svc_web_POD")
    spec = json.loads(forwarder["Labels"][L.SPEC])["spec"]
    assert len(spec["ports"][0]["endpoints"]) == 4
    # the memory is on both hosts, and a further apply changes nothing, writes nothing
    assert all(runtimes[h].markers(WEB) for h in ("h1", "h2"))
    calls = len(runtimes["h1"].calls)
    again = apply(deployment("web:1"), hosts, runtimes, clock)
    assert again.report.results == [] and len(runtimes["h1"].calls) == calls


def test_a_rollout_over_two_hosts_keeps_its_limits_after_every_pass() -> None:
    hosts, runtimes = cluster("h1", "h2")
    clock = Clock()
    apply(deployment("web:1", replicas=10), hosts, runtimes, clock)
    samples: list[tuple[int, int]] = []
    driven = apply(deployment("web:2", replicas=10), hosts, runtimes, clock, samples=samples)
    assert driven.failed_rollouts == [] and driven.passes >= 4
    surge, unavailable = 3, 2  # 25% of 10, rounded up and down
    assert all(pods <= 10 + surge for pods, _ in samples), samples
    assert all(ready >= 10 - unavailable for _, ready in samples), samples
    assert max(pods for pods, _ in samples) > 10  # the surge was used (peaks are mid-pass)
    hash_ = driven.rollouts.steps[WEB].status.template_hash
    assert sorted(web_pods(runtimes)) == [f"web-{hash_}-{i}" for i in range(10)]


def test_a_failed_rollout_is_rolled_back_reported_and_not_tried_again() -> None:
    hosts, runtimes = cluster("h1", "h2")
    clock = Clock()
    apply(deployment("web:1", replicas=3, deadline=10), hosts, runtimes, clock)
    before = set(web_pods(runtimes))
    samples: list[tuple[int, int]] = []
    driven = apply(deployment("crash:1", 3, deadline=10), hosts, runtimes, clock, samples=samples)
    assert all(ready >= 3 for _, ready in samples), samples  # maxUnavailable 0 of 3
    [failed] = driven.failed_rollouts
    failure = failed.status.failure
    assert failure is not None and failure.number == 2
    assert failure.source == "web.yaml:2:1"
    # the reason carries what the hosts said of the crashing container
    assert "no progress for 10s" in failure.reason and "exit code 3" in failure.reason
    assert set(web_pods(runtimes)) == before  # the old revision at full strength
    assert failed.status.state == "complete" and failed.status.revision == 1
    memory = read_memories(observe(runtimes))[WEB]
    assert memory.failed is not None and memory.failed.number == 2
    # the next apply does not try the failed template again, and still says it failed
    again = apply(deployment("crash:1", 3, deadline=10), hosts, runtimes, clock)
    assert again.report.results == [] and len(again.failed_rollouts) == 1
    # a new template is tried
    fixed = apply(deployment("web:2", 3, deadline=10), hosts, runtimes, clock)
    assert fixed.failed_rollouts == [] and fixed.rollouts.steps[WEB].status.revision == 3


def test_an_image_that_cannot_be_pulled_fails_the_rollout_with_the_pull_error() -> None:
    hosts, runtimes = cluster("h1")
    clock = Clock()
    apply(deployment("web:1", replicas=2, deadline=5), hosts, runtimes, clock)
    driven = apply(deployment("web:404", replicas=2, deadline=5), hosts, runtimes, clock)
    [failed] = driven.failed_rollouts
    assert failed.status.failure is not None
    assert "ErrImagePull: cannot pull web:404" in failed.status.failure.reason
    assert driven.still_failing == []  # the rollback's pass has no failed action


def test_another_reconciler_resumes_a_rollout_from_the_hosts_alone() -> None:
    hosts, runtimes = cluster("h1", "h2")
    clock = Clock()
    apply(deployment("web:1"), hosts, runtimes, clock)
    apply(deployment("web:2"), hosts, runtimes, clock, wait=False)  # one pass, then "crash"
    mid = read_memories(observe(runtimes))[WEB]
    assert mid.state == "progressing" and mid.number(mid.target) == 2
    # a second reconciler shares only the hosts: no state file, no memory in process
    driven = apply(deployment("web:2"), hosts, runtimes, clock)
    status = driven.rollouts.steps[WEB].status
    assert status.state == "complete" and status.revision == 2
    assert len(web_pods(runtimes)) == 4 and all(len(h) == 1 for h in web_pods(runtimes).values())


def test_a_host_that_missed_a_write_gets_the_memory_when_it_answers_again() -> None:
    hosts, runtimes = cluster("h1", "h2")
    clock = Clock()
    apply(deployment("web:1", replicas=2), hosts, runtimes, clock)
    runtimes["h2"].reachable = False
    apply(deployment("web:2", replicas=2), hosts, runtimes, clock)
    runtimes["h2"].reachable = True
    newest = read_memories({"h1": runtimes["h1"].observe()})[WEB].generation
    apply(deployment("web:2", replicas=2), hosts, runtimes, clock)
    on_h2 = read_memories({"h2": runtimes["h2"].observe()})[WEB]
    assert on_h2.generation >= newest


def test_undo_recorded_on_the_hosts_is_rolled_out_by_the_next_apply() -> None:
    hosts, runtimes = cluster("h1")
    clock = Clock()
    apply(deployment("web:1", replicas=2), hosts, runtimes, clock)
    apply(deployment("web:2", replicas=2), hosts, runtimes, clock)
    memory = read_memories(observe(runtimes))[WEB]
    pinned, chosen = undo(memory)
    runtimes["h1"].record_rollout(WEB, encode(pinned), pinned.generation, "pause")
    driven = apply(deployment("web:2", replicas=2), hosts, runtimes, clock)
    assert driven.rollouts.steps[WEB].status.revision == chosen.number == 1
    assert {p.split("-")[1] for p in web_pods(runtimes)} == {chosen.hash}


def test_a_deployment_that_leaves_the_manifests_is_pruned_with_its_memory() -> None:
    hosts, runtimes = cluster("h1")
    clock = Clock()
    apply(deployment("web:1", replicas=2), hosts, runtimes, clock)
    other = deployment("web:1", replicas=1).replace("name: web,", "name: other,")
    other = other.replace("app: web", "app: other")
    apply(other, hosts, runtimes, clock)
    assert set(web_pods(runtimes)) == set() and runtimes["h1"].markers(WEB) == []
    assert runtimes["h1"].markers(ObjectRef("Deployment", "default", "other"))


def test_rc_rolling_updates_wait_for_readiness_and_stop_at_a_pod_that_never_is() -> None:
    hosts, runtimes = cluster("h1")
    text = """
apiVersion: v1
kind: ReplicationController
metadata: {name: api}
spec:
  replicas: 3
  selector: {app: api}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: app, image: "IMAGE"}]
"""
    clock = Clock()
    apply(text.replace("IMAGE", "web:1"), hosts, runtimes, clock)
    driven = apply(text.replace("IMAGE", "crash:1"), hosts, runtimes, clock)
    errors = [r.error for r in driven.report.failed]
    assert "is not ready" in errors[0]
    assert all("an earlier step of rollout/default/api failed" in e for e in errors[1:])
    ready = [
        n for n, s in runtimes["h1"].running().items() if n.endswith("_app") and s == "running"
    ]
    assert len(ready) == 2  # never below replicas - 1


def test_rc_rolling_update_after_a_failed_step_keeps_the_other_replicas() -> None:
    """The passes after a failed step (``reconciler run`` makes one every interval; a
    second ``apply``) do not go on replacing: the new pod is not ready, so the rolling
    update holds at it, and the old replicas keep serving, however many passes come."""
    hosts, runtimes = cluster("h1")
    text = """
apiVersion: v1
kind: ReplicationController
metadata: {name: api}
spec:
  replicas: 3
  selector: {app: api}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: app, image: "IMAGE"}]
"""
    clock = Clock()
    apply(text.replace("IMAGE", "web:1"), hosts, runtimes, clock)
    for _ in range(4):
        apply(text.replace("IMAGE", "crash:1"), hosts, runtimes, clock)
        clock.sleep(30)
    running = runtimes["h1"].running()
    old = [n for n, s in running.items() if n.endswith("_app") and s == "running"]
    assert len(old) == 2, running  # never below replicas - 1, pass after pass
    manifests = validate(parse_text(text.replace("IMAGE", "crash:1"), "rc.yaml")).manifests
    live, memory, now = observe_and_remember(runtimes, "mem", None, clock=clock)
    _, held = make_plan(manifests, hosts, live, SETTINGS, host_memory=memory, now=now)
    assert not [a for a in held.actions if a.verb.value == "recreate"]
    (problem,) = [d for d in held.problems if d.is_error]
    assert "rolling update held: pod api-0 on h1" in problem.message
    where = (problem.kind, problem.name, problem.location.line)
    assert where == ("ReplicationController", "api", 2)  # the controller's file:line
    # the template fixed: the update goes on, one at a time, to the end
    driven = apply(text.replace("IMAGE", "web:2"), hosts, runtimes, clock)
    assert not driven.report.failed, [r.error for r in driven.report.failed]
    images = {
        item["Image"]
        for item in runtimes["h1"].containers.values()
        if item["Labels"].get(L.ROLE) == L.ROLE_APP
    }
    assert images == {"web:2"}


def test_pod_and_rc_spec_hashes_are_those_of_before_deployments() -> None:
    """An upgrade must not recreate running pods: the sample's hashes, as computed before
    Deployments existed."""
    manifests = validate(load_paths([str(ROOT / "sample-repo")])).manifests
    settings = Settings(instance="pin", forwarder_image="reconciler/forwarder:pin")
    one = [Host("h1", "unix:///x", "")]
    two = [
        Host("h1", "tcp://10.0.0.1:2375", "10.0.0.1"),
        Host("h2", "tcp://10.0.0.2:2375", "10.0.0.2"),
    ]
    hashes = [
        {
            p.name: p.spec_hash
            for p in compute_desired(manifests, h, {}, settings).pods
            if p.owner.kind != "Service"
        }
        for h in (one, two)
    ]
    assert hashes == [
        {
            "keystone-db": "543b9769f70846c6",
            "frontend-0": "e6175227d901a6a6",
            "frontend-1": "2379678c5ad6a1eb",
            "keystone-0": "232d6d6f73884a93",
            "keystone-1": "dbfabe21cf34df5e",
            "keystone-2": "51c9bd034504a1c4",
        },
        {
            "keystone-db": "ba90423494161f7b",
            "frontend-0": "f601111c6f536bdb",
            "frontend-1": "47c9314727f79f5e",
            "keystone-0": "a374b7b5352048db",
            "keystone-1": "7cbf700566baa70f",
            "keystone-2": "2427fb761133afa9",
        },
    ]


# -- reconciler run -----------------------------------------------------------------------------
def test_the_service_reports_a_failed_rollout_in_status_metrics_and_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "web.yaml").write_text(deployment("web:1", replicas=2, deadline=1))
    hosts, runtimes = cluster("h1")
    config = RunConfig(
        source=str(source),
        listen="127.0.0.1:0",
        hosts=hosts,
        instance="mem",
        settings=SETTINGS,
        resync=3600,
    )
    loop = ReconcileService(config, runtimes=runtimes)
    for _ in range(5):
        if loop.run_pass("start").ok and not loop.run_pass("again").rolling:
            break
    (source / "web.yaml").write_text(deployment("crash:1", replicas=2, deadline=1))
    with caplog.at_level(logging.ERROR, logger="reconciler"):
        outcome = loop.run_pass("new commit")
        assert outcome.rolling and outcome.ok
        for _ in range(4):  # the service runs on the wall clock: past the 1 s deadline
            time.sleep(0.6)
            outcome = loop.run_pass("rolling")
            if not outcome.rolling:
                break
    assert not outcome.ok and outcome.rollouts_failed == 1
    status = loop.board.snapshot()
    entry = status["rollouts"]["default/web"]
    assert entry["failed"]["revision"] == 2
    assert entry["failed"]["source"] == f"{source / 'web.yaml'}:2:1"
    assert "exit code 3" in entry["failed"]["reason"]
    assert status["last_error"]["kind"] == "rollout"
    metrics = loop.metrics.render().decode()
    assert 'reconciler_rollout_failures_total{deployment="default/web"} 1.0' in metrics
    [line] = [r.getMessage() for r in caplog.records if "FAILED" in r.getMessage()]
    assert "revision 2" in line and "/web.yaml:2:1" in line and "exit code 3" in line
    # counted once: the next passes say it failed, but do not count it again
    loop.run_pass("resync")
    loop.run_pass("resync")
    metrics = loop.metrics.render().decode()
    assert 'reconciler_rollout_failures_total{deployment="default/web"} 1.0' in metrics
    assert loop.board.snapshot()["rollouts"]["default/web"]["failed"]["revision"] == 2


def test_a_pass_gives_the_forwarders_the_new_pods_before_it_removes_old_ones() -> None:
    """A Service always has ready endpoints: in a pass where new pods became ready and old
    ones go, the forwarders learn of the new pods first."""
    hosts, runtimes = cluster("h1")
    clock = Clock()
    apply(deployment("web:1", replicas=2), hosts, runtimes, clock)
    host = runtimes["h1"]
    host.crashing.add("web:2")  # the new pod is made, not ready yet: no endpoint
    apply(deployment("web:2", replicas=2), hosts, runtimes, clock, wait=False)
    host.crashing.discard("web:2")
    for item in host.containers.values():  # now it is ready
        if item["Image"] == "web:2":
            item["State"], item["Status"] = "running", "Up 1 second"
    manifests = validate(parse_text(deployment("web:2", replicas=2), "web.yaml")).manifests
    live, memory, now = observe_and_remember(runtimes, "mem", None, clock=clock)
    _, the_plan = make_plan(manifests, hosts, live, SETTINGS, host_memory=memory, now=now)
    verbs = {(a.verb.value, a.owner.kind) for a in the_plan.actions}
    assert {("remove", "Deployment"), ("reload", "Service")} <= verbs
    host.calls.clear()
    converge(the_plan, manifests, hosts, SETTINGS, runtimes, host_memory=memory, now=now)
    calls = host.calls
    forwarder = next(i for i, c in enumerate(calls) if c == "reload svc_web")
    removal = next(i for i, c in enumerate(calls) if c.startswith("remove mem_default_web-"))
    assert forwarder < removal, calls


def test_the_service_is_not_woken_by_its_own_rollout_markers(tmp_path: Path) -> None:
    """Writing a rollout's memory removes the older marker (a ``destroy`` event): that must
    not wake a pass, or every pass of a rollout would wake the next at once."""
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "web.yaml").write_text(deployment("web:1", replicas=2))
    hosts, runtimes = cluster("h1")
    host = runtimes["h1"]
    config = RunConfig(
        source=str(source),
        listen="127.0.0.1:0",
        hosts=hosts,
        instance="mem",
        settings=SETTINGS,
        resync=3600,
        rollout_interval=0.05,
    )
    loop = ReconcileService(config, runtimes=runtimes)
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while loop.board.snapshot()["rollouts"].get("default/web", {}).get("state") != "complete":
            assert time.monotonic() < deadline, "never rolled out"
            time.sleep(0.02)
        time.sleep(0.3)
        passes = loop.passes
        memory = read_memories(observe(runtimes))[WEB]
        host.record_rollout(WEB, encode(memory), memory.generation + 1, "pause")
        time.sleep(1.5)
        assert loop.passes == passes  # the marker's destroy event was not a reason
        host.exit(next(n for n in host.running() if n.endswith("_app")))
        deadline = time.monotonic() + 10
        while loop.passes == passes:  # a dead app container is
            assert time.monotonic() < deadline, "the die event woke no pass"
            time.sleep(0.02)
    finally:
        loop.stop()
        runner.join(timeout=10)


def test_readiness_probes_and_min_ready_seconds_gate_a_rollout_and_get_deployments() -> None:
    """A Deployment's pods count as ready when their readiness probe passes (the infra
    container's Docker health, ``core.health.pod_ready``), and as available only after
    ``minReadySeconds`` of it; ``get deployments -o json|name`` (``render.objects``' shapes)
    says the same."""
    from reconciler.render.deployments import deployment_object, deployment_views
    from reconciler.render.objects import object_list, object_names

    hosts, runtimes = cluster("h1")
    clock = Clock()
    probed = deployment("web:1", replicas=2, min_ready=5).replace(
        "ports: [{containerPort: 8080}]",
        "ports: [{containerPort: 8080}]\n"
        "          readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}",
    )
    first = apply(probed, hosts, runtimes, clock, wait=False)
    assert first.still_failing == []
    host = runtimes["h1"]

    def shown() -> dict[str, Any]:
        [view] = deployment_views(observe(runtimes), clock())
        return deployment_object(view)

    pods = sorted(web_pods(runtimes))
    assert len(pods) == 2
    item = shown()
    assert item["status"]["readyReplicas"] == 0
    assert item["metadata"]["labels"] == {"team": "a"}
    assert item["metadata"]["annotations"]["reconciler.io/source"] == "web.yaml:2:1"
    assert object_names([item]) == ["deployment.apps/web"]
    assert object_list([item])["kind"] == "List"
    still = apply(probed, hosts, runtimes, clock, wait=False)  # not ready: nothing to do yet
    assert still.rollouts.steps[WEB].status.in_progress
    for pod in pods:
        host.set_health(f"mem_default_{pod}_POD", "healthy")
    seen = apply(probed, hosts, runtimes, clock, wait=False)  # ready now, not for 5 s yet
    assert seen.rollouts.steps[WEB].status.in_progress
    status = shown()["status"]
    assert (status["readyReplicas"], status["availableReplicas"]) == (2, 0)
    driven = apply(probed, hosts, runtimes, clock)  # passes 1 s apart until available
    assert driven.rollouts.steps[WEB].status.state == "complete"
    status = shown()["status"]
    assert (status["readyReplicas"], status["availableReplicas"]) == (2, 2)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Available": "True", "Progressing": "True"}
    # a pod whose probe fails again is not ready, not available: get says so
    host.set_health(f"mem_default_{pods[0]}_POD", "unhealthy")
    status = shown()["status"]
    assert (status["readyReplicas"], status["availableReplicas"]) == (1, 1)
