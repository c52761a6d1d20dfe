"""Probes, readiness, restarts and init containers through real passes, on in-memory hosts.

The passes are the real ones (``apply.converge``); the hosts are ``MemoryHost``s, which list
a checked container as ``(health: starting)`` until the test says what its health check
found (``set_health``), as Docker's list call would. Time is a value: each pass is given
its ``now``, and the hosts' clock follows it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from reconciler.apply.converge import converge, make_plan, observe
from reconciler.apply.runtime import HostRuntime
from reconciler.core import health
from reconciler.core import labels as L
from reconciler.core.model import HostState, LiveContainer
from reconciler.desire.forwarders import forwarder_endpoints
from reconciler.plan.lifecycle import BACKOFF_RESET
from reconciler.plan.live import pod_ready
from reconciler.plan.model import Plan, Verb
from reconciler.source.hosts import Host

from .memory_runtime import MemoryHost
from .test_apply_memory import SETTINGS, cluster, manifests, service

T0 = 1_800_000_000.0


def probed_rc(
    name: str = "web",
    replicas: int = 2,
    *,
    liveness: bool = False,
    readiness: bool = True,
    policy: str = "",
    inits: int = 0,
) -> str:
    """An RC (or, with ``policy``, a bare Pod) whose container has the probes asked for."""
    spec = []
    if policy:
        spec.append(f"restartPolicy: {policy}")
    if inits:
        spec.append("initContainers:")
        spec += [
            f"  - {{name: init-{i}, image: web:1, command: [sh, -c, 'echo {i}']}}"
            for i in range(inits)
        ]
    spec += [
        "containers:",
        "  - name: app",
        "    image: web:1",
        "    ports: [{name: http, containerPort: 8080}]",
    ]
    if readiness:
        spec += [
            "    readinessProbe:",
            "      httpGet: {path: /ready, port: http}",
            "      periodSeconds: 1",
            "      failureThreshold: 2",
        ]
    if liveness:
        spec += [
            "    livenessProbe:",
            "      exec: {command: [cat, /tmp/alive]}",
            "      periodSeconds: 1",
        ]
    if policy:
        body = "\n".join("  " + line for line in spec)
        return (
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\n"
            f"spec:\n{body}\n---\n"
        )
    body = "\n".join("      " + line for line in spec)
    return (
        f"apiVersion: v1\nkind: ReplicationController\nmetadata: {{name: {name}}}\nspec:\n"
        f"  replicas: {replicas}\n  selector: {{app: {name}}}\n  template:\n"
        f"    metadata: {{labels: {{app: {name}}}}}\n    spec:\n{body}\n---\n"
    )


def run(
    text: str, hosts: list[Host], runtimes: Mapping[str, MemoryHost], now: float
) -> tuple[Plan, list[str]]:
    """One pass at ``now``, as `reconciler run` makes it; the plan and the failures."""
    for host in runtimes.values():
        host.clock = lambda: now
    objects = manifests(text)
    typed: Mapping[str, HostRuntime] = runtimes
    live = observe(typed)
    _, the_plan = make_plan(objects, hosts, live, SETTINGS, now=now)
    done = converge(the_plan, objects, hosts, SETTINGS, typed, now=now)
    return the_plan, [r.error for r in done.report.failed]


def verbs(the_plan: Plan) -> list[tuple[str, str, str]]:
    return [(a.verb.value, a.pod, a.container) for a in the_plan.actions]


def live(host: MemoryHost, name: str) -> LiveContainer:
    return next(c for c in host.observe().containers if c.name == name)


def routes(host: MemoryHost, service_name: str = "web") -> list[str]:
    """What the Service's forwarder on ``host`` routes to now (its record, or its spec)."""
    from reconciler.plan.reload import live_endpoints

    state = host.observe()
    forwarder = next(c for c in state.containers if c.name.endswith(f"svc_{service_name}_POD"))
    return [e for _, _, eps in live_endpoints(forwarder, state.markers) for e in eps]


# -- readiness -------------------------------------------------------------------------------
def test_only_ready_pods_are_endpoints_and_a_change_reloads_the_forwarder_in_place() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc() + service("web")
    _, failed = run(text, hosts, runtimes, T0)
    assert failed == []
    # checked containers list as starting: not ready, so the forwarder routes nowhere
    infra = live(h1, "mem_default_web-0_POD")
    assert health.health_status(infra) == health.STARTING
    assert infra.labels[L.HEALTH] == "readiness"
    assert L.HEALTH not in live(h1, "mem_default_web-0_app").labels  # an HTTP readiness probe
    assert routes(h1) == []
    forwarder_id = live(h1, "mem_default_svc_web_POD").id
    # both pods' checks pass: one reload, the same forwarder
    h1.set_health("mem_default_web-0_POD", "healthy")
    h1.set_health("mem_default_web-1_POD", "healthy")
    the_plan, failed = run(text, hosts, runtimes, T0 + 1)
    assert failed == [] and verbs(the_plan) == [("reload", "svc_web", "")]
    assert "ports[0].endpoints" in the_plan.actions[0].reason
    assert live(h1, "mem_default_svc_web_POD").id == forwarder_id
    assert len(routes(h1)) == 2
    assert h1.signals == [("mem_default_svc_web_POD", "SIGHUP")]
    assert h1.endpoints[forwarder_id].decode().startswith("tcp:80=10.99.0.")
    # the record makes the next pass a no-op: one list call says what the forwarder has
    the_plan, _ = run(text, hosts, runtimes, T0 + 2)
    assert the_plan.in_sync
    # one pod fails its readiness: only it leaves, by another reload
    h1.set_health("mem_default_web-1_POD", "unhealthy")
    the_plan, _ = run(text, hosts, runtimes, T0 + 3)
    assert verbs(the_plan) == [("reload", "svc_web", "")]
    web0 = live(h1, "mem_default_web-0_POD").ip_address
    assert routes(h1) == [f"{web0}:8080"]
    assert len(h1.observe().markers) == 1  # the record is replaced, never piled up
    # back again
    h1.set_health("mem_default_web-1_POD", "healthy")
    run(text, hosts, runtimes, T0 + 4)
    assert len(routes(h1)) == 2
    assert live(h1, "mem_default_svc_web_POD").id == forwarder_id


def test_a_pod_without_probes_is_ready_when_it_runs_as_before() -> None:
    hosts, runtimes = cluster("h1")
    text = probed_rc(readiness=False) + service("web")
    run(text, hosts, runtimes, T0)
    h1 = runtimes["h1"]
    assert L.HEALTH not in live(h1, "mem_default_web-0_POD").labels
    assert health.health_status(live(h1, "mem_default_web-0_POD")) == ""
    assert len(routes(h1)) == 2  # the forwarder was made with them: no reload needed
    assert not h1.observe().markers


def test_removing_a_service_removes_its_forwarder_and_record() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(replicas=1) + service("web")
    run(text, hosts, runtimes, T0)
    h1.set_health("mem_default_web-0_POD", "healthy")
    run(text, hosts, runtimes, T0 + 1)
    assert len(h1.observe().markers) == 1
    run(probed_rc(replicas=1), hosts, runtimes, T0 + 2)
    assert not h1.observe().markers
    assert "mem_default_svc_web_POD" not in h1.running()


def test_a_record_whose_forwarder_is_gone_is_removed() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(replicas=1) + service("web")
    run(text, hosts, runtimes, T0)
    h1.set_health("mem_default_web-0_POD", "healthy")
    run(text, hosts, runtimes, T0 + 1)
    h1.remove_by_hand("mem_default_svc_web_POD")  # as if a removal stopped half-way
    the_plan, failed = run(probed_rc(replicas=1), hosts, runtimes, T0 + 2)
    assert failed == [] and verbs(the_plan) == [("remove", "svc_web", "endpoints")]
    assert not h1.observe().markers


# -- liveness --------------------------------------------------------------------------------
def test_a_failing_liveness_probe_restarts_with_kubernetes_back_off() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(replicas=1, liveness=True, readiness=False)
    run(text, hosts, runtimes, T0)
    app = "mem_default_web-0_app"
    assert live(h1, app).labels[L.HEALTH] == "liveness"
    h1.set_health(app, "unhealthy")
    # first failure: restarted at once
    the_plan, failed = run(text, hosts, runtimes, T0 + 10)
    assert failed == [] and verbs(the_plan) == [("restart", "web-0", "app")]
    assert "liveness" in the_plan.actions[0].reason
    first = live(h1, app)
    assert (health.restarts(first), health.backoff(first), first.state) == (1, 0, "running")
    # second failure: 10 s of back-off, the new instance created but held
    h1.set_health(app, "unhealthy")
    the_plan, _ = run(text, hosts, runtimes, T0 + 20)
    assert "after a back-off of 10s (CrashLoopBackOff)" in the_plan.actions[0].reason
    held = live(h1, app)
    assert (health.restarts(held), health.backoff(held), held.state) == (2, 10, "created")
    assert health.backing_off(held, T0 + 25)
    waiting, _ = run(text, hosts, runtimes, T0 + 25)
    assert waiting.actions == [] and waiting.wake_at == T0 + 30  # the service wakes then
    assert not pod_ready(h1.observe().containers)
    started, _ = run(text, hosts, runtimes, T0 + 30.5)
    assert verbs(started) == [("start", "web-0", "app")]
    assert live(h1, app).state == "running"
    # each failure doubles it, up to five minutes
    backoffs = []
    now = T0 + 31
    for _ in range(7):
        h1.set_health(app, "unhealthy")
        run(text, hosts, runtimes, now)
        restarted = live(h1, app)
        backoffs.append(health.backoff(restarted))
        now = health.start_after(restarted) + 0.5
        run(text, hosts, runtimes, now)
    assert backoffs == [20, 40, 80, 160, 300, 300, 300]
    assert health.restarts(live(h1, app)) == 9
    # ten minutes without a failure: the back-off starts over
    h1.set_health(app, "unhealthy")
    run(text, hosts, runtimes, now + BACKOFF_RESET + 1)
    again = live(h1, app)
    assert (health.restarts(again), health.backoff(again), again.state) == (10, 0, "running")


def test_restart_policy_never_stops_a_failing_container_for_good() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(liveness=True, readiness=False, policy="Never")
    run(text, hosts, runtimes, T0)
    h1.set_health("mem_default_web_app", "unhealthy")
    the_plan, _ = run(text, hosts, runtimes, T0 + 5)
    assert verbs(the_plan) == [("stop", "web", "app")]
    assert "restartPolicy Never" in the_plan.actions[0].reason
    assert h1.running()["mem_default_web_app"] == "exited"
    the_plan, _ = run(text, hosts, runtimes, T0 + 60)
    assert the_plan.in_sync


# -- init containers -------------------------------------------------------------------------
def test_init_containers_run_in_order_before_the_app_and_are_not_run_again() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(readiness=False, policy="Always", inits=2)
    _, failed = run(text, hosts, runtimes, T0)
    assert failed == []
    names = [name for name in h1.running() if name.startswith("mem_default_web_")]
    assert names == [
        "mem_default_web_POD",
        "mem_default_web_init-0",
        "mem_default_web_init-1",
        "mem_default_web_app",
    ]
    assert h1.running()["mem_default_web_init-1"] == "exited"
    assert live(h1, "mem_default_web_init-0").labels[L.ROLE] == L.ROLE_INIT
    assert pod_ready(h1.observe().containers)
    calls = list(h1.calls)
    the_plan, _ = run(text, hosts, runtimes, T0 + 60)
    assert the_plan.in_sync and h1.calls == calls


def test_a_failing_init_container_blocks_the_app_and_follows_the_restart_policy() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(readiness=False, policy="OnFailure", inits=2)
    h1.init_exit["mem_default_web_init-1"] = 1
    _, failed = run(text, hosts, runtimes, T0)
    assert failed == ["init container init-1 exited 1"]
    assert "mem_default_web_app" not in h1.running()
    assert h1.running()["mem_default_web_init-0"] == "exited"
    # restarted at once, fails again; then held back 10 s
    the_plan, _ = run(text, hosts, runtimes, T0 + 1)
    assert verbs(the_plan) == [("restart", "web", "init-1")]
    assert "init container 2/2 exited 1" in the_plan.actions[0].reason
    the_plan, _ = run(text, hosts, runtimes, T0 + 2)
    held = live(h1, "mem_default_web_init-1")
    assert (held.state, health.backoff(held)) == ("created", 10)
    # fixed meanwhile: it starts after its back-off, completes, then the app comes
    h1.init_exit["mem_default_web_init-1"] = 0
    h1.init_running.add("mem_default_web_init-1")
    the_plan, _ = run(text, hosts, runtimes, T0 + 13)
    assert verbs(the_plan) == [("start", "web", "init-1")]
    h1.finish("mem_default_web_init-1", 0)
    the_plan, _ = run(text, hosts, runtimes, T0 + 14)
    assert verbs(the_plan) == [("create", "web", "app")]
    assert h1.running()["mem_default_web_app"] == "running"


def test_a_failed_init_container_with_restart_policy_never_is_left_failed() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(readiness=False, policy="Never", inits=1)
    h1.init_exit["mem_default_web_init-0"] = 3
    run(text, hosts, runtimes, T0)
    the_plan, _ = run(text, hosts, runtimes, T0 + 30)
    assert the_plan.actions == []
    assert "mem_default_web_app" not in h1.running()


def test_a_slow_init_container_leaves_the_pod_initializing_for_the_next_pass() -> None:
    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc(readiness=False, policy="Always", inits=2)
    h1.init_running.add("mem_default_web_init-0")
    _, failed = run(text, hosts, runtimes, T0)
    assert failed == [] and h1.running()["mem_default_web_init-0"] == "running"
    assert "mem_default_web_init-1" not in h1.running()
    waiting, _ = run(text, hosts, runtimes, T0 + 1)
    assert waiting.actions == []  # running: its exit (a die event) wakes the next pass
    h1.finish("mem_default_web_init-0", 0)
    the_plan, _ = run(text, hosts, runtimes, T0 + 2)
    assert verbs(the_plan) == [("create", "web", "init-1")]
    the_plan, _ = run(text, hosts, runtimes, T0 + 3)
    assert verbs(the_plan) == [("create", "web", "app")]


def test_probes_and_init_containers_are_in_the_spec_hash_and_the_spec_label() -> None:
    hosts, runtimes = cluster("h1")
    text = probed_rc(replicas=1, liveness=True, inits=1)
    run(text, hosts, runtimes, T0)
    infra = live(runtimes["h1"], "mem_default_web-0_POD")
    spec = json.loads(infra.labels[L.SPEC])["spec"]
    assert spec["initContainers"][0]["name"] == "init-0"
    assert spec["containers"][0]["livenessProbe"]["periodSeconds"] == 1
    assert spec["containers"][0]["readinessProbe"]["timeoutSeconds"] == 1  # the default
    changed = text.replace(
        "periodSeconds: 1\n            failureThreshold: 2",
        "periodSeconds: 2\n            failureThreshold: 2",
    )
    the_plan, _ = run(changed, hosts, runtimes, T0 + 1)
    [action] = the_plan.actions
    assert action.verb is Verb.RECREATE
    assert any(c.path.endswith("readinessProbe.periodSeconds") for c in action.changes)


def test_forwarder_endpoints_are_read_from_the_desired_spec() -> None:
    spec = {"ports": [{"protocol": "TCP", "port": 80, "endpoints": ["10.0.0.1:8080"]}]}
    assert forwarder_endpoints(spec) == [["TCP", 80, ["10.0.0.1:8080"]]]


def test_a_one_shot_apply_waits_for_its_new_pods_readiness_before_the_forwarders() -> None:
    from reconciler.apply import readiness

    hosts, runtimes = cluster("h1")
    h1 = runtimes["h1"]
    text = probed_rc() + service("web")
    objects = manifests(text)
    typed: Mapping[str, HostRuntime] = runtimes
    _, the_plan = make_plan(objects, hosts, observe(typed), SETTINGS, now=T0)
    pods = readiness.made_by(the_plan)
    assert sorted(p.name for p in pods) == ["web-0", "web-1"]
    assert readiness.grace(pods) == 0 + 1 * 2 + 1 + 2  # no delay, period 1, 1 success, timeout 1
    converge(the_plan, objects, hosts, SETTINGS, typed, now=T0)
    assert routes(h1) == []  # without waiting: made with none
    naps: list[float] = []

    def nap(seconds: float) -> None:  # their checks pass while apply waits
        naps.append(seconds)
        h1.set_health(f"mem_default_web-{len(naps) - 1}_POD", "healthy")

    live = readiness.wait_ready(pods, lambda: observe(typed), 30, sleep=nap)
    assert naps == [readiness.POLL, readiness.POLL] and live is not None
    assert all(pod_ready(cs) for cs in _pods(live["h1"]).values())
    # and it gives up after its time, with what it saw
    h1.set_health("mem_default_web-0_POD", "unhealthy")
    naps.clear()
    assert readiness.wait_ready(pods[:1], lambda: observe(typed), 0, sleep=naps.append)
    assert naps == []


def _pods(state: HostState) -> dict[tuple[str, str], list[LiveContainer]]:
    from reconciler.plan.live import group_pods

    return {k: v for k, v in group_pods(state.containers).items() if k[1].startswith("web-")}
