"""Host memory and the host grace period: pure placement over remembered hosts. No mocks."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.apply.state import load, save, state_dir
from reconciler.check.validate import validate
from reconciler.core import labels as L
from reconciler.core.model import HostState, LiveContainer, Manifest
from reconciler.desire.compute import compute_desired
from reconciler.desire.hostmemory import HostRecord, remember, within_grace
from reconciler.desire.settings import Settings
from reconciler.plan.model import Verb
from reconciler.plan.planner import plan
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

HOSTS = [Host(f"h{i}", f"tcp://10.231.0.1{i}:2375", f"10.231.0.1{i}") for i in (1, 2, 3)]
STACK = """\
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "example/web:1.0"}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  containers: [{name: app, image: "example/solo:1.0"}]
"""


def manifests() -> list[Manifest]:
    result = validate(parse_text(STACK, "stack.yaml"))
    assert result.errors == []
    return result.manifests


def infra(pod: str, host: str) -> LiveContainer:
    return LiveContainer(
        id=f"{host}-{pod}",
        name=f"default_default_{pod}_POD",
        host=host,
        labels={L.ROLE: L.ROLE_INFRA, L.POD: pod, L.POD_NAMESPACE: "default"},
        state="running",
        status="Up",
        created=0,
        image="reconciler/pause:1",
    )


def test_remember_records_pods_of_reachable_hosts_and_when_others_went_away() -> None:
    up = {
        "h1": HostState("h1", True, (infra("web-0", "h1"),)),
        "h2": HostState("h2", True, (infra("web-1", "h2"), infra("solo", "h2"))),
    }
    first = remember({}, up, now=100.0)
    assert first == {
        "h1": HostRecord(None, (("default", "web-0"),)),
        "h2": HostRecord(None, (("default", "solo"), ("default", "web-1"))),
    }
    down = {"h2": HostState("h2", False, error="refused")}
    second = remember(first, down, now=130.0)
    assert second["h2"] == HostRecord(130.0, first["h2"].pods)
    assert second["h1"] == first["h1"]  # not observed: kept
    third = remember(second, down, now=190.0)
    assert third["h2"].down_since == 130.0  # still away since the first miss
    assert within_grace(third["h2"], 189.0, 60.0) and not within_grace(third["h2"], 190.0, 60.0)
    back = remember(third, {"h2": HostState("h2", True)}, now=200.0)
    assert back["h2"] == HostRecord(None, ())


def scenario(away_for: float) -> tuple[dict[str, HostState], dict[str, HostRecord], float]:
    """web-0 on h1, web-1 and solo on h2 (now unreachable), web-2 on h3."""
    now = 1000.0
    live = {
        "h1": HostState("h1", True, (infra("web-0", "h1"),)),
        "h2": HostState("h2", False, error="connection refused"),
        "h3": HostState("h3", True, (infra("web-2", "h3"),)),
    }
    memory = {
        "h2": HostRecord(now - away_for, (("default", "solo"), ("default", "web-1"))),
    }
    return live, memory, now


def placement(away_for: float, grace: float = 60.0) -> tuple[dict[str, str], object]:
    live, memory, now = scenario(away_for)
    state = compute_desired(
        manifests(), HOSTS, live, Settings(host_grace=grace), host_memory=memory, now=now
    )
    return {p.name: p.host for p in state.pods}, (state, live)


def test_within_grace_the_unreachable_hosts_pods_stay_placed_there() -> None:
    placed, (state, live) = placement(away_for=10)
    assert placed == {"web-0": "h1", "web-1": "h2", "web-2": "h3", "solo": "h2"}
    result = plan(state, live)  # type: ignore[arg-type]
    assert [a for a in result.actions if a.verb is Verb.CREATE] == []  # nothing elsewhere
    assert "until the host grace period ends in 50s" in result.unreachable["h2"]


def test_after_grace_replicas_move_and_bare_pods_wait() -> None:
    placed, (state, live) = placement(away_for=61)
    assert placed["web-1"] in ("h1", "h3")
    assert placed["solo"] == "h2"  # a bare Pod is never moved
    result = plan(state, live)  # type: ignore[arg-type]
    created = [(a.verb, a.pod) for a in result.actions if a.verb is Verb.CREATE]
    assert created == [(Verb.CREATE, "web-1")]
    assert "1 replica(s) placed on other hosts" in result.unreachable["h2"]
    assert "bare pod(s) solo wait for it" in result.unreachable["h2"]


def test_grace_zero_moves_at_once_and_no_memory_means_nothing_is_held() -> None:
    placed, _ = placement(away_for=0, grace=0)
    assert placed["web-1"] != "h2"
    live, _, now = scenario(10)
    state = compute_desired(manifests(), HOSTS, live, Settings(), host_memory={}, now=now)
    assert {p.name: p.host for p in state.pods}["web-1"] != "h2"


def test_when_the_host_returns_the_surplus_copy_goes() -> None:
    """After the move, h2 comes back still running web-1: one copy is removed."""
    live = {
        "h1": HostState("h1", True, (infra("web-0", "h1"), infra("web-1", "h1"))),
        "h2": HostState("h2", True, (infra("web-1", "h2"), infra("solo", "h2"))),
        "h3": HostState("h3", True, (infra("web-2", "h3"),)),
    }
    memory = remember({"h2": HostRecord(0.0, (("default", "web-1"),))}, live, now=2000.0)
    state = compute_desired(manifests(), HOSTS, live, Settings(), host_memory=memory, now=2000.0)
    web1 = [p.host for p in state.pods if p.name == "web-1"]
    assert len(web1) == 1
    result = plan(state, live)
    removals = [(a.host, a.pod) for a in result.actions if a.verb is Verb.REMOVE]
    assert removals == [(h, "web-1") for h in ("h1", "h2") if h != web1[0]]
    assert all(not a.prune for a in result.actions)  # a surplus copy is not a prune


def test_the_file_round_trips_and_a_broken_one_is_forgotten(tmp_path: Path) -> None:
    record = {"h2": HostRecord(12.5, (("default", "web-1"),)), "h1": HostRecord()}
    save("blue", tmp_path, record)
    assert load("blue", tmp_path) == record
    assert load("green", tmp_path) == {}
    (tmp_path / "hosts-blue.json").write_text("{not json")
    assert load("blue", tmp_path) == {}
    (tmp_path / "hosts-blue.json").write_text(json.dumps({"h1": "nonsense", "h2": {"pods": 3}}))
    assert load("blue", tmp_path) == {"h2": HostRecord(None, ())}


def test_state_dir_precedence(tmp_path: Path) -> None:
    assert state_dir({"RECONCILER_STATE_DIR": str(tmp_path)}) == tmp_path
    assert state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/reconciler")
