"""The simulated engine of ``bench/`` behaves as dockerd does for what the reconciler uses.

``bench.scale`` measures the reconciler against it at sizes no real host here can hold, so
it must answer the real client (docker-py over HTTP) as a real engine would: a no-op pass
sees everything in sync through one list call, a change goes through create/start/remove,
and removals reach the event stream.
"""

from __future__ import annotations

import itertools
import threading

from bench.fake_engine import FakeEngine
from reconciler.apply.converge import connect, converge, make_plan, observe
from reconciler.check.validate import validate
from reconciler.desire.compute import compute_desired
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

RC = """apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "web:1"}]
"""
SETTINGS = Settings(instance="fake", forwarder_image="reconciler/forwarder:test")


def manifests(replicas: int) -> list:  # type: ignore[type-arg]
    result = validate(parse_text(RC.replace("REPLICAS", str(replicas)), "web.yaml"))
    assert result.valid
    return list(result.manifests)


def test_a_seeded_state_is_in_sync_through_one_list_call() -> None:
    with FakeEngine() as engine:
        host = Host("fake", engine.url, "127.0.0.1")
        desired = compute_desired(manifests(50), [host], {}, SETTINGS)
        assert engine.seed(desired.pods, "fake") == 100
        runtimes = connect([host], "fake")
        live = observe(runtimes)
        _, the_plan = make_plan(manifests(50), [host], live, SETTINGS)
        assert the_plan.in_sync
        assert runtimes["fake"].calls == 1
        assert engine.requests == {"GET /containers/json": 1}


def test_a_scale_change_is_applied_and_its_removals_are_events() -> None:
    with FakeEngine() as engine:
        host = Host("fake", engine.url, "127.0.0.1")
        engine.seed(compute_desired(manifests(3), [host], {}, SETTINGS).pods, "fake")
        runtimes = connect([host], "fake")
        events: list[str] = []
        stream = runtimes["fake"].container_events(["die", "destroy"])
        follower = threading.Thread(
            target=lambda: events.extend(e["Action"] for e in itertools.islice(stream, 4))
        )
        follower.start()
        _, the_plan = make_plan(manifests(2), [host], observe(runtimes), SETTINGS)
        assert [(a.verb.value, a.pod) for a in the_plan.actions] == [("remove", "web-2")]
        report = converge(the_plan, manifests(2), [host], SETTINGS, runtimes).report
        assert report.ok
        follower.join(timeout=10)
        stream.close()
        assert sorted(events) == ["destroy", "destroy", "die", "die"]
        _, again = make_plan(manifests(4), [host], observe(runtimes), SETTINGS)
        assert [(a.verb.value, a.pod) for a in again.actions] == [
            ("create", "web-2"),
            ("create", "web-3"),
        ]
        assert converge(again, manifests(4), [host], SETTINGS, runtimes).report.ok
        _, done = make_plan(manifests(4), [host], observe(runtimes), SETTINGS)
        assert done.in_sync
