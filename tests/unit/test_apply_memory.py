"""Apply, converge, prune, rollout and heal passes, end to end, on in-memory hosts.

The pass is the real one (``apply.converge``: observe, desire, plan, execute, re-observe for
the forwarders); only the hosts are ``MemoryHost``s, which implement the project's own
``Runtime`` protocols with the engine's own translation (see ``memory_runtime``). Nothing is
mocked, and these run without Docker.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.apply.converge import converge, make_plan, observe
from reconciler.apply.execute import execute
from reconciler.apply.runtime import HostRuntime
from reconciler.check.validate import validate
from reconciler.core import labels as L
from reconciler.core.model import Manifest
from reconciler.core.selectors import parse_selector
from reconciler.desire.settings import Settings
from reconciler.plan.guards import Limits, refusals
from reconciler.plan.model import Plan, Verb
from reconciler.plan.planner import removal_plan
from reconciler.render.views import live_pods
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

from .memory_runtime import MemoryHost

IMAGES = ("web:1", "web:2", "db:1")
SETTINGS = Settings(instance="mem", forwarder_image="reconciler/forwarder:test")


def manifests(text: str) -> list[Manifest]:
    result = validate(parse_text(text, "m.yaml"))
    assert result.valid, [str(d) for d in result.errors]
    return list(result.manifests)


def rc(name: str, replicas: int, image: str, port: int = 8080) -> str:
    return f"""
apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{app: {name}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: app
          image: {image}
          ports: [{{containerPort: {port}}}]
---
"""


def service(name: str, port: int = 80, target: int = 8080) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: {port}, targetPort: {target}}}]
---
"""


def cluster(*names: str) -> tuple[list[Host], dict[str, MemoryHost]]:
    hosts = [
        Host(n, f"tcp://10.231.0.{i + 11}:2375", f"10.231.0.{i + 11}") for i, n in enumerate(names)
    ]
    return hosts, {h.name: MemoryHost(h.name, instance="mem", images=IMAGES) for h in hosts}


def run_pass(
    text: str, hosts: list[Host], runtimes: Mapping[str, HostRuntime], *, prune: bool = True
) -> tuple[Plan, list[str]]:
    """One pass as `reconciler apply` makes it; the plan and the failed actions' errors."""
    objects = manifests(text)
    live = observe(runtimes)
    _, the_plan = make_plan(objects, hosts, live, SETTINGS, prune=prune)
    done = converge(the_plan, objects, hosts, SETTINGS, runtimes, prune=prune)
    return the_plan, [r.error for r in done.report.failed]


def pending(text: str, hosts: list[Host], runtimes: Mapping[str, HostRuntime]) -> Plan:
    _, the_plan = make_plan(manifests(text), hosts, observe(runtimes), SETTINGS)
    return the_plan


def test_apply_creates_every_pod_and_the_next_pass_is_in_sync() -> None:
    hosts, runtimes = cluster("h1")
    text = rc("web", 3, "web:1") + rc("db", 1, "db:1")
    the_plan, failed = run_pass(text, hosts, runtimes)
    assert failed == []
    assert sorted(a.pod for a in the_plan.actions) == ["db-0", "web-0", "web-1", "web-2"]
    running = runtimes["h1"].running()
    assert running["mem_default_web-2_app"] == "running"
    assert running["mem_default_web-2_POD"] == "running"
    assert pending(text, hosts, runtimes).in_sync


def test_replicas_spread_over_hosts_and_a_service_gets_a_forwarder_per_host() -> None:
    hosts, runtimes = cluster("h1", "h2")
    text = rc("web", 2, "web:1") + service("web")
    _, failed = run_pass(text, hosts, runtimes)
    assert failed == []
    placed = {h: sorted(n for n in r.running() if n.endswith("_app")) for h, r in runtimes.items()}
    assert placed == {"h1": ["mem_default_web-0_app"], "h2": ["mem_default_web-1_app"]}
    for host in runtimes.values():
        forwarder = host.by_name("mem_default_svc_web_POD")
        assert forwarder["Labels"][L.ROLE] == L.ROLE_FORWARDER
    # the forwarders came after the pods in the same apply, so they already list both
    assert pending(text, hosts, runtimes).in_sync


def test_a_killed_container_is_started_again() -> None:
    hosts, runtimes = cluster("h1")
    text = rc("web", 1, "web:1")
    run_pass(text, hosts, runtimes)
    runtimes["h1"].exit("mem_default_web-0_app", 137)
    heal = pending(text, hosts, runtimes)
    assert [(a.verb, a.container) for a in heal.actions] == [(Verb.START, "app")]
    _, failed = run_pass(text, hosts, runtimes)
    assert failed == []
    assert runtimes["h1"].running()["mem_default_web-0_app"] == "running"


def test_a_pod_removed_by_hand_is_created_again() -> None:
    hosts, runtimes = cluster("h1")
    text = rc("web", 2, "web:1")
    run_pass(text, hosts, runtimes)
    runtimes["h1"].remove_by_hand("mem_default_web-1_POD")
    runtimes["h1"].remove_by_hand("mem_default_web-1_app")
    the_plan, failed = run_pass(text, hosts, runtimes)
    assert failed == [] and [(a.verb, a.pod) for a in the_plan.actions] == [(Verb.CREATE, "web-1")]
    assert pending(text, hosts, runtimes).in_sync


def test_prune_removes_what_left_the_manifests_and_the_guard_refuses_everything() -> None:
    hosts, runtimes = cluster("h1")
    run_pass(rc("web", 1, "web:1") + rc("db", 1, "db:1"), hosts, runtimes)
    the_plan, failed = run_pass(rc("web", 1, "web:1"), hosts, runtimes)
    assert failed == []
    assert [(a.verb, a.pod, a.prune) for a in the_plan.actions] == [(Verb.REMOVE, "db-0", True)]
    assert not any("db-0" in name for name in runtimes["h1"].running())
    emptied = pending("", hosts, runtimes)  # a bad commit: an empty tree
    assert refusals(emptied, Limits()) == {"h1": "would remove all 1 pod(s) owned on host h1"}
    assert refusals(emptied, Limits(allow_mass_prune=True)) == {}


def test_no_prune_keeps_what_left_the_manifests() -> None:
    hosts, runtimes = cluster("h1")
    run_pass(rc("web", 1, "web:1") + rc("db", 1, "db:1"), hosts, runtimes)
    the_plan, _ = run_pass(rc("web", 1, "web:1"), hosts, runtimes, prune=False)
    assert the_plan.actions == [] and [a.pod for a in the_plan.skipped_prunes] == ["db-0"]
    assert runtimes["h1"].running()["mem_default_db-0_app"] == "running"


def test_scale_down_removes_the_highest_ordinals() -> None:
    hosts, runtimes = cluster("h1")
    run_pass(rc("web", 3, "web:1"), hosts, runtimes)
    the_plan, _ = run_pass(rc("web", 1, "web:1"), hosts, runtimes)
    assert sorted((a.verb, a.pod, a.prune) for a in the_plan.actions) == [
        (Verb.REMOVE, "web-1", False),
        (Verb.REMOVE, "web-2", False),
    ]


def test_a_rollout_replaces_pods_one_at_a_time_and_stops_at_the_first_failure() -> None:
    hosts, runtimes = cluster("h1")
    memory = runtimes["h1"]
    run_pass(rc("web", 3, "web:1"), hosts, runtimes)
    memory.images.discard("web:3")
    memory.calls.clear()
    the_plan, failed = run_pass(rc("web", 3, "web:3"), hosts, runtimes)
    assert {a.group for a in the_plan.actions} == {"rollout/default/web"}
    assert [a.verb for a in the_plan.actions] == [Verb.RECREATE] * 3
    # the first replacement fails (the image cannot be pulled); the other two never start
    assert len(failed) == 3 and "ErrImagePull" in failed[0]
    assert all("an earlier step of rollout/default/web failed" in e for e in failed[1:])
    still = sorted(n for n, s in memory.running().items() if n.endswith("_app"))
    assert len(still) == 2  # never below replicas - 1
    memory.images.add("web:3")
    _, failed = run_pass(rc("web", 3, "web:3"), hosts, runtimes)
    assert failed == []
    images = {i["Image"] for i in memory.containers.values() if i["Labels"].get(L.ROLE) == "app"}
    assert images == {"web:3"}
    assert pending(rc("web", 3, "web:3"), hosts, runtimes).in_sync


def test_a_failed_action_does_not_stop_the_others() -> None:
    hosts, runtimes = cluster("h1")
    runtimes["h1"].fail_create.add("mem_default_db-0_POD")
    _, failed = run_pass(rc("web", 2, "web:1") + rc("db", 1, "db:1"), hosts, runtimes)
    assert len(failed) == 1 and "refused by the engine" in failed[0]
    running = runtimes["h1"].running()
    assert "mem_default_web-1_app" in running and "mem_default_db-0_POD" not in running


def test_an_unreachable_host_is_reported_and_its_replicas_wait_for_their_grace() -> None:
    hosts, runtimes = cluster("h1", "h2")
    run_pass(rc("web", 2, "web:1"), hosts, runtimes)
    runtimes["h2"].reachable = False
    the_plan = pending(rc("web", 2, "web:1"), hosts, runtimes)
    assert list(the_plan.unreachable) == ["h2"]
    assert not the_plan.in_sync


def test_foreign_containers_are_never_listed_or_touched() -> None:
    hosts, runtimes = cluster("h1")
    memory = runtimes["h1"]
    memory.add_foreign("mem_default_web-0_app")  # a name like ours, without our labels
    memory.add_foreign("other", {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTANCE: "someone-else"})
    _, failed = run_pass(rc("web", 1, "web:2"), hosts, runtimes)
    # our own create collides with the foreign name: reported, the foreign one left alone
    assert len(failed) == 1 and "already in use" in failed[0]
    run_pass("", hosts, runtimes)
    down = removal_plan(live_pods(observe(runtimes), parse_selector(None), forwarders=True))
    execute(down, runtimes)
    assert memory.running() == {"mem_default_web-0_app": "running", "other": "running"}


def test_down_removes_only_what_matches_the_selector() -> None:
    hosts, runtimes = cluster("h1")
    run_pass(rc("web", 2, "web:1") + rc("db", 1, "db:1"), hosts, runtimes)
    chosen = live_pods(observe(runtimes), parse_selector("app=db"), forwarders=True)
    report = execute(removal_plan(chosen), runtimes)
    assert report.ok and len(report.results) == 1
    assert sorted(n for n in runtimes["h1"].running() if n.endswith("_app")) == [
        "mem_default_web-0_app",
        "mem_default_web-1_app",
    ]
