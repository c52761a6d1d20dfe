"""The rollout step function with plain values: no hosts, no Docker, no mocks.

A small world of pods (``World``) applies each step's decision the way a pass would and
says which pods are ready; the tests drive rollouts through it and check the surge and
unavailability limits at every step, the deadline, the rollback, and what the memory keeps.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import pytest

from reconciler.check.validate import validate
from reconciler.desire.deployments import DeploymentSpec, deployment_spec, fenceposts, scaled
from reconciler.desire.settings import Settings
from reconciler.plan.rollout import ObservedPod, Step, step
from reconciler.plan.rollout_memory import (
    RolloutMemory,
    decode,
    encode,
    restart,
    undo,
)
from reconciler.plan.rollout_status import COMPLETE, FAILED, PAUSED, PROGRESSING
from reconciler.source.load import parse_text

T0 = 1_700_000_000.0


def manifest_text(
    image: str,
    *,
    replicas: int = 3,
    surge: int | str = "25%",
    unavailable: int | str = "25%",
    min_ready: int = 0,
    deadline: int = 30,
    strategy: str = "RollingUpdate",
    paused: bool = False,
    history: int = 10,
) -> str:
    rolling = (
        f"rollingUpdate: {{maxSurge: {surge!r}, maxUnavailable: {unavailable!r}}}"
        if strategy == "RollingUpdate"
        else ""
    )
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  minReadySeconds: {min_ready}
  progressDeadlineSeconds: {deadline}
  revisionHistoryLimit: {history}
  paused: {str(paused).lower()}
  strategy: {{type: {strategy}, {rolling}}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: app, image: "{image}"}}]
"""


def spec_of(image: str, restarted_at: float = 0.0, **options: object) -> DeploymentSpec:
    result = validate(parse_text(manifest_text(image, **options), "web.yaml"))  # type: ignore[arg-type]
    assert result.valid, [str(d) for d in result.errors]
    return deployment_spec(result.manifests[0], Settings(), False, restarted_at)


class World:
    """Pods as a pass leaves them: a step's removals go, its new pods appear (not ready
    yet); ``healthy`` says which template hashes ever become ready."""

    def __init__(self, healthy: Callable[[str], bool] = lambda _: True) -> None:
        self.pods: dict[str, ObservedPod] = {}
        self.memory: RolloutMemory | None = None
        self.now = T0
        self.healthy = healthy
        self.ids = itertools.count()
        self.history: list[Step] = []

    def step(self, spec: DeploymentSpec, error: str = "") -> Step:
        done = step(spec, list(self.pods.values()), self.memory, self.now, error=error)
        self.memory = done.memory
        self.history.append(done)
        return done

    def apply(self, done: Step, *, create: bool = True) -> None:
        for name in done.decision.removals:
            self.pods.pop(name)
        if create:
            for wanted in done.decision.pods:
                if wanted.name not in self.pods:
                    self.pods[wanted.name] = ObservedPod(
                        wanted.name, "h1", wanted.template_hash, wanted.ordinal,
                        f"infra-{next(self.ids)}", False,
                    )  # fmt: skip

    def tick(self, seconds: float = 1.0) -> None:
        """Time passes; the pods of healthy templates are ready by then."""
        self.now += seconds
        for name, pod in list(self.pods.items()):
            if self.healthy(pod.template_hash) and not pod.ready:
                self.pods[name] = dataclasses.replace(pod, ready=True)

    def roll(self, spec: DeploymentSpec, *, limit: int = 200, check: bool = True) -> list[Step]:
        """Steps until the rollout is no longer in progress; the limits checked each step."""
        steps = []
        for _ in range(limit):
            done = self.step(spec)
            steps.append(done)
            if check:
                self.check_limits(spec, done)
            self.apply(done)
            if not done.status.in_progress:
                return steps
            self.tick()
        raise AssertionError(f"still rolling after {limit} steps: {done.status.message}")

    def check_limits(self, spec: DeploymentSpec, done: Step) -> None:
        """Whatever order a pass runs a step's actions in, both limits hold: creations
        before removals never exceed replicas + maxSurge, removals before creations never
        leave fewer than replicas - maxUnavailable available."""
        if spec.strategy != "RollingUpdate" or not self.memory or done.status.failure:
            return
        created = [w for w in done.decision.pods if w.name not in self.pods]
        assert len(self.pods) + len(created) <= max(
            spec.replicas + spec.max_surge, len(self.pods)
        ), done.status.message
        before = sum(1 for p in self.pods.values() if self.is_available(p, spec))
        after = [p for p in self.pods.values() if p.name not in done.decision.removals]
        still = sum(1 for p in after if self.is_available(p, spec))
        floor = spec.replicas - spec.max_unavailable
        assert still >= min(floor, before), (done.decision.removals, done.status.message)

    def is_available(self, pod: ObservedPod, spec: DeploymentSpec) -> bool:
        since = (self.memory.ready_since if self.memory else {}).get(pod.instance)
        return pod.ready and since is not None and self.now - since >= spec.min_ready

    def hashes(self) -> set[str]:
        return {p.template_hash for p in self.pods.values()}


# -- maxSurge and maxUnavailable -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailability down
        ("25%", "25%", 4, (1, 1)),
        ("25%", "25%", 1, (1, 0)),
        ("25%", "25%", 3, (1, 0)),
        (0, "1%", 2, (0, 1)),  # both resolve to 0: one pod may be unavailable
        ("1%", "25%", 2, (1, 0)),
        (0, 0, 3, (0, 1)),
        ("100%", "0%", 5, (5, 0)),
        (2, 1, 10, (2, 1)),  # numbers are taken as they are
        ("30%", "30%", 0, (0, 1)),
    ],
)
def test_fenceposts_round_like_the_deployment_controller(
    surge: int | str, unavailable: int | str, replicas: int, expected: tuple[int, int]
) -> None:
    assert fenceposts(surge, unavailable, replicas) == expected


def test_percentages_scale_with_replicas() -> None:
    assert scaled("50%", 5, round_up=True) == 3
    assert scaled("50%", 5, round_up=False) == 2
    assert scaled(7, 5, round_up=True) == 7


# -- rolling updates ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "min_ready"),
    [
        (10, "25%", "25%", 0),
        (3, 1, 0, 0),
        (3, 0, 1, 0),
        (5, "100%", 0, 0),
        (4, 2, 2, 3),
        (1, "25%", "25%", 2),
        (6, 0, "50%", 1),
    ],
)
def test_a_rolling_update_holds_both_limits_at_every_step_and_completes(
    replicas: int, surge: int | str, unavailable: int | str, min_ready: int
) -> None:
    options = {
        "replicas": replicas,
        "surge": surge,
        "unavailable": unavailable,
        "min_ready": min_ready,
    }
    world = World()
    first = world.roll(spec_of("web:1", **options))  # type: ignore[arg-type]
    assert first[-1].status.state == COMPLETE
    old_names = set(world.pods)
    assert {n.rsplit("-", 1)[0] for n in old_names} == {f"web-{first[-1].spec.template_hash}"}
    world.tick()
    v2 = spec_of("web:2", **options)  # type: ignore[arg-type]
    steps = world.roll(v2)
    assert steps[0].started and steps[-1].completed
    assert steps[-1].status.state == COMPLETE
    assert world.hashes() == {v2.template_hash}
    assert sorted(world.pods) == [f"web-{v2.template_hash}-{i}" for i in range(replicas)]
    assert world.memory is not None and world.memory.last_good == v2.template_hash
    assert [r.number for r in world.memory.revisions] == [1, 2]


def test_min_ready_seconds_holds_old_pods_until_new_ones_stay_ready() -> None:
    world = World()
    world.roll(spec_of("web:1", replicas=2, surge=1, unavailable=0, min_ready=5))
    v2 = spec_of("web:2", replicas=2, surge=1, unavailable=0, min_ready=5)
    done = world.step(v2)
    world.apply(done)
    assert len(done.decision.removals) == 0 and len(world.pods) == 3
    world.tick(1)  # the new pod is ready, but not for 5 s yet (seen ready from the next step)
    for _ in range(5):
        done = world.step(v2)
        assert done.decision.removals == {}, done.status.message
        world.apply(done)
        world.tick(1)
    done = world.step(v2)  # 5 s ready: available, one old pod may go
    assert len(done.decision.removals) == 1


def test_a_pod_that_stops_being_ready_starts_its_min_ready_again() -> None:
    world = World()
    world.roll(spec_of("web:1", replicas=1, min_ready=3))
    pod = next(iter(world.pods.values()))
    world.pods[pod.name] = dataclasses.replace(pod, ready=False)
    world.step(spec_of("web:1", replicas=1, min_ready=3))
    assert world.memory is not None and pod.instance not in world.memory.ready_since


def test_recreate_removes_every_old_pod_before_any_new_one() -> None:
    world = World()
    world.roll(spec_of("web:1", replicas=3, strategy="Recreate"))
    v2 = spec_of("web:2", replicas=3, strategy="Recreate")
    first = world.step(v2)
    assert len(first.decision.removals) == 3
    assert all(w.template_hash != v2.template_hash for w in first.decision.pods)
    world.apply(first)
    second = world.step(v2)
    assert [w.ordinal for w in second.decision.pods] == [0, 1, 2]
    world.apply(second)
    world.tick()
    assert world.step(v2).status.state == COMPLETE


def test_scaling_down_removes_the_highest_ordinals() -> None:
    world = World()
    world.roll(spec_of("web:1", replicas=4))
    done = world.step(spec_of("web:1", replicas=2))
    assert sorted(n[-1] for n in done.decision.removals) == ["2", "3"]
    assert all("scale down" in why for why in done.decision.removals.values())


def test_a_rerun_of_the_same_step_makes_the_same_pods() -> None:
    world = World()
    world.roll(spec_of("web:1", replicas=4))
    v2 = spec_of("web:2", replicas=4)
    pods = list(world.pods.values())
    first = step(v2, pods, world.memory, world.now)
    again = step(v2, pods, first.memory, world.now)  # a crash before the pass acted
    assert [w.name for w in first.decision.pods] == [w.name for w in again.decision.pods]
    assert first.memory.number(v2.template_hash) == again.memory.number(v2.template_hash) == 2


# -- the deadline, the rollback, and what is not tried again ------------------------------------
def test_a_rollout_that_never_becomes_ready_fails_at_its_deadline_and_rolls_back() -> None:
    good = spec_of("web:1", replicas=3, surge=1, unavailable=0, deadline=10)
    bad = spec_of("web:2", replicas=3, surge=1, unavailable=0, deadline=10)
    world = World(healthy=lambda h: h == good.template_hash)
    world.roll(good)
    steps = world.roll(bad, limit=60)
    failed = [s for s in steps if s.failure is not None]
    assert len(failed) == 1  # decided once
    failure = failed[0].failure
    assert failure is not None and failure.number == 2 and failure.hash == bad.template_hash
    assert "no progress for 10s (progressDeadlineSeconds)" in failure.reason
    assert failure.source == "web.yaml:2:1"
    assert failure.at - T0 >= 10
    # the failed revision's pod goes as the rollback starts; the old ones never went
    assert any(n.startswith(f"web-{bad.template_hash}") for n in failed[0].decision.removals)
    assert world.hashes() == {good.template_hash} and len(world.pods) == 3
    last = steps[-1]
    assert last.status.state == COMPLETE and last.status.revision == 1
    assert last.status.failure is not None
    assert "revision 2 failed; running revision 1" in last.status.message
    # the failed template is not tried again while the manifest asks for it
    world.tick(100)
    again = world.step(bad)
    assert not again.changed and again.decision.removals == {}
    assert {w.template_hash for w in again.decision.pods} == {good.template_hash}
    assert again.status.failure is not None and not again.status.in_progress


def test_a_failure_says_why_the_last_action_failed() -> None:
    good = spec_of("web:1", replicas=2, deadline=5)
    bad = spec_of("web:404", replicas=2, deadline=5)
    world = World()
    world.roll(good)
    error = "pod web-x-0: ErrImagePull: cannot pull web:404"
    for _ in range(8):
        done = world.step(bad, error=error)
        world.apply(done, create=False)  # the image never comes: no pod is ever made
        world.tick()
        if done.failure is not None:
            break
    assert done.failure is not None
    assert done.failure.reason.endswith("ErrImagePull: cannot pull web:404")


def test_a_changed_manifest_clears_the_failure_and_tries_the_new_template() -> None:
    good = spec_of("web:1", replicas=2, deadline=5)
    bad = spec_of("web:2", replicas=2, deadline=5)
    fixed = spec_of("web:3", replicas=2, deadline=5)
    world = World(healthy=lambda h: h != bad.template_hash)
    world.roll(good)
    world.roll(bad, limit=40)
    assert world.memory is not None and world.memory.failed is not None
    steps = world.roll(fixed)
    assert steps[0].status.failure is None and steps[0].started
    assert steps[-1].status.state == COMPLETE and steps[-1].status.revision == 3
    assert world.memory.failed is None


def test_rollout_restart_tries_a_failed_template_again() -> None:
    good = spec_of("web:1", replicas=2, deadline=5)
    world = World(healthy=lambda h: h == good.template_hash)
    world.roll(good)
    world.roll(spec_of("web:2", replicas=2, deadline=5), limit=40)
    assert world.memory is not None and world.memory.failed is not None
    restarted = restart(world.memory, world.now)
    world.memory = restarted
    retry = spec_of("web:2", restarted.restarted_at, replicas=2, deadline=5)
    done = world.step(retry)
    assert done.started and done.status.failure is None
    assert done.memory.number(retry.template_hash) == 3


def test_a_first_revision_that_fails_keeps_what_runs_and_tries_nothing_more() -> None:
    bad = spec_of("web:2", replicas=2, deadline=5)
    world = World(healthy=lambda _: False)
    steps = world.roll(bad, limit=40)
    assert steps[-1].status.state == FAILED
    assert "no earlier revision was ever fully available" in steps[-1].status.message
    done = world.step(bad)
    assert not done.decision.removals and all(w.name in world.pods for w in done.decision.pods)


def test_a_complete_rollout_whose_pod_crashes_later_is_healed_not_failed() -> None:
    spec = spec_of("web:1", replicas=2, deadline=5)
    world = World()
    world.roll(spec)
    name = sorted(world.pods)[0]
    world.pods[name] = dataclasses.replace(world.pods[name], ready=False)
    world.tick(60)
    done = world.step(spec)
    assert done.failure is None and done.status.state == COMPLETE


# -- undo, pause, history -----------------------------------------------------------------------
def test_undo_runs_an_earlier_revision_until_the_manifest_changes() -> None:
    world = World()
    world.roll(spec_of("web:1", replicas=2))
    v2 = spec_of("web:2", replicas=2)
    world.roll(v2)
    assert world.memory is not None
    pinned, chosen = undo(world.memory)
    assert chosen.number == 1
    world.memory = pinned
    steps = world.roll(v2)
    assert steps[-1].status.revision == 1 and world.hashes() == {chosen.hash}
    v3 = spec_of("web:3", replicas=2)
    steps = world.roll(v3)
    assert steps[-1].status.revision == 3 and world.memory.pin is None
    with pytest.raises(ValueError, match="no revision 9"):
        undo(world.memory, 9)


def test_a_paused_deployment_rolls_out_nothing_and_resumes_with_a_fresh_deadline() -> None:
    world = World()
    world.roll(spec_of("web:1", replicas=2, deadline=5))
    paused = spec_of("web:2", replicas=2, deadline=5, paused=True)
    for _ in range(10):
        done = world.step(paused)
        assert done.status.state == PAUSED and done.decision.removals == {}
        world.apply(done)
        world.tick()
    assert len(world.hashes()) == 1
    resumed = world.step(spec_of("web:2", replicas=2, deadline=5))
    assert resumed.status.state == PROGRESSING and resumed.failure is None


def test_history_keeps_the_limit_and_what_is_in_use() -> None:
    world = World()
    for n in range(1, 6):
        world.roll(spec_of(f"web:{n}", replicas=1, history=2))
    assert world.memory is not None
    assert [r.number for r in world.memory.revisions] == [3, 4, 5]
    assert all(r.complete for r in world.memory.revisions)


# -- the memory ---------------------------------------------------------------------------------
def test_the_memory_round_trips_through_its_label_text() -> None:
    good = spec_of("web:1", replicas=2, deadline=5)
    world = World(healthy=lambda h: h == good.template_hash)
    world.roll(good)
    world.roll(spec_of("web:2", replicas=2, deadline=5), limit=40)
    memory = world.memory
    assert memory is not None and memory.failed is not None and memory.ready_since
    assert decode(encode(memory)) == memory
    assert decode("{not json") is None and decode('{"revisions": [{}]}') is None


def test_a_step_that_changes_nothing_asks_for_no_write() -> None:
    spec = spec_of("web:1", replicas=2)
    world = World()
    world.roll(spec)
    world.tick(30)
    assert not world.step(spec).changed
