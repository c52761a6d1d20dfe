"""After an apply with no Service to follow, ``converge`` does not look at every host again:
the host memory file is brought up to date from what the apply did, and it records exactly
what an observation would have (``hostmemory.remember``). No mocks: in-memory hosts."""

from __future__ import annotations

from pathlib import Path

from reconciler.apply.converge import converge, forwarders_follow, make_plan, observe
from reconciler.apply.state import load
from reconciler.core.model import HostState
from reconciler.desire.hostmemory import HostRecord, after_changes, remember
from tests.unit.memory_runtime import MemoryHost
from tests.unit.test_apply_memory import IMAGES, SETTINGS, cluster, manifests, service


class CountedHost(MemoryHost):
    """An in-memory host that counts how often it is listed."""

    looks = 0

    def observe(self, volumes: bool | None = None) -> HostState:
        self.looks += 1
        return super().observe(volumes)


STACK = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"""


def test_after_changes_adds_made_pods_drops_removed_ones_and_keeps_other_hosts() -> None:
    before = {
        "h1": HostRecord(None, (("default", "a"), ("default", "b"))),
        "h2": HostRecord(12.0, (("default", "c"),)),
    }
    after = after_changes(before, [("h1", ("default", "d"))], [("h1", ("default", "a"))])
    assert after == {
        "h1": HostRecord(None, (("default", "b"), ("default", "d"))),
        "h2": HostRecord(12.0, (("default", "c"),)),
    }


def test_without_services_the_memory_file_matches_an_observation_without_a_second_look(
    tmp_path: Path,
) -> None:
    hosts, plain = cluster("h1", "h2")
    runtimes = {name: CountedHost(name, instance="mem", images=IMAGES) for name in plain}
    objects = manifests(STACK)
    _, the_plan = make_plan(objects, hosts, observe(runtimes), SETTINGS)
    assert not forwarders_follow(objects, the_plan)
    looks = sum(r.looks for r in runtimes.values())
    done = converge(the_plan, objects, hosts, SETTINGS, runtimes, state_dir=tmp_path)
    assert done.report.ok and done.followup is None
    assert sum(r.looks for r in runtimes.values()) == looks  # no host listed again
    observed = remember({}, observe(runtimes), 0.0)
    assert load(SETTINGS.instance, tmp_path) == observed
    assert sum(len(r.pods) for r in observed.values()) == 3


def test_with_a_service_the_forwarders_still_follow() -> None:
    hosts, runtimes = cluster("h1")
    objects = manifests(service("web", 80, 8080) + STACK)
    _, the_plan = make_plan(objects, hosts, observe(runtimes), SETTINGS)
    assert forwarders_follow(objects, the_plan)
    done = converge(the_plan, objects, hosts, SETTINGS, runtimes)
    assert done.followup is not None and done.followup.actions
