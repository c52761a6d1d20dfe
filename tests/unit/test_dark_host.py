"""A host that black-holes packets costs the others nothing (``apply.observer``,
``apply.execute``'s per-host workers), on in-memory hosts: ``DarkHost``'s list call blocks
on an Event as a call to a dark engine blocks on its socket; ``SlowHost``'s pod creations do.

Every bound is a multiple of the configured observation timeout, never an absolute speed;
without the deadline each of these passes would wait for the dark host (a minute).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler.apply.converge import apply_plan, make_plan, observe
from reconciler.apply.observer import Observer
from reconciler.check.validate import validate
from reconciler.core.model import HostState, ObjectRef
from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

from .dark_runtime import DarkHost, SlowHost
from .memory_runtime import MemoryHost

T = TypeVar("T")
TIMEOUT = 0.3  # the observation timeout the tests configure
BOUND = 20 * TIMEOUT  # what "not held by the dark host" means here: far below its minute

POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeSelector: {{zone: {zone}}}
  containers: [{{name: app, image: "{image}"}}]
"""


def hosts() -> list[Host]:
    return [
        Host("good", "tcp://10.231.0.11:2375", "10.231.0.11", labels={"zone": "a"}),
        Host("dark", "tcp://10.231.0.12:2375", "10.231.0.12", labels={"zone": "b"}),
    ]


def pods(count: int, zone: str, image: str = "web:1", prefix: str = "") -> str:
    return "---\n".join(
        POD.format(name=f"{prefix or zone}-{i}", zone=zone, image=image) for i in range(count)
    )


def service_of(
    source: Path, files: dict[str, str], good: MemoryHost, dark: DarkHost
) -> ReconcileService:
    """The service of instance ``dk`` over ``files`` (written into ``source``), on the two
    hosts, with the tests' observation timeout."""
    source.mkdir()
    for name, text in files.items():
        (source / name).write_text(text)
    config = RunConfig(
        source=str(source),
        listen="127.0.0.1:0",
        hosts=hosts(),
        instance="dk",
        settings=Settings(instance="dk"),
        resync=3600,
        observe_timeout=TIMEOUT,
    )
    return ReconcileService(config, runtimes={"good": good, "dark": dark})


def within(seconds: float, work: Callable[[], T]) -> tuple[T, float]:
    """``work()``'s result and how long it took, failing when it is not done in time."""
    found: list[T] = []
    started = time.monotonic()
    runner = threading.Thread(target=lambda: found.append(work()), daemon=True)
    runner.start()
    runner.join(seconds)
    assert found, f"still waiting after {seconds} s"
    return found[0], time.monotonic() - started


@pytest.fixture
def dark() -> Iterator[DarkHost]:
    host = DarkHost("dark", instance="dk", images=("web:1", "web:2"))
    yield host
    host.light()  # whatever the test did, nothing stays blocked


def test_a_dark_host_holds_observe_no_longer_than_the_timeout(dark: DarkHost) -> None:
    good = MemoryHost("good", instance="dk")
    dark.go_dark()
    live, took = within(
        BOUND, lambda: observe({"good": good, "dark": dark}, None, Observer(TIMEOUT))
    )
    assert live["good"].reachable
    assert not live["dark"].reachable
    assert live["dark"].error == f"no answer within {TIMEOUT:g} s (still asking)"
    assert took >= TIMEOUT  # it was given its time


def test_a_dark_host_is_asked_once_and_its_late_answer_is_used(dark: DarkHost) -> None:
    good = MemoryHost("good", instance="dk")
    runtimes = {"good": good, "dark": dark}
    answered = threading.Event()
    observer = Observer(TIMEOUT, on_answer=lambda host: answered.set())
    dark.go_dark()
    first, _ = within(BOUND, lambda: observer.observe(runtimes))
    assert not first["dark"].reachable
    # while it is dark, later passes do not wait for it, and do not ask it again
    second, took = within(BOUND, lambda: observer.observe(runtimes))
    assert not second["dark"].reachable and second["good"].reachable
    assert took < TIMEOUT
    assert observer.in_flight() == ["dark"]
    dark.light()
    assert answered.wait(BOUND)  # the service would wake a pass now
    third, _ = within(BOUND, lambda: observer.observe(runtimes))
    assert third["dark"].reachable
    assert dark.observed == 1 and dark.most_at_once == 1  # the late answer was used
    fourth, _ = within(BOUND, lambda: observer.observe(runtimes))
    assert fourth["dark"].reachable and dark.observed == 2  # on time again: asked each pass


def test_a_host_answering_slowly_gets_three_times_its_usual_time(dark: DarkHost) -> None:
    good = MemoryHost("good", instance="dk")
    runtimes = {"good": good, "dark": dark}
    observer = Observer(TIMEOUT)
    dark.go_dark()
    threading.Timer(2 * TIMEOUT, dark.light).start()  # an answer in twice the timeout
    first, _ = within(BOUND, lambda: observer.observe(runtimes))
    assert not first["dark"].reachable
    time.sleep(3 * TIMEOUT)
    assert observer.in_flight() == []
    assert observer.allowance("dark") >= 3 * 1.5 * TIMEOUT  # learnt from its answer
    assert observer.allowance("good") == TIMEOUT
    second, _ = within(BOUND, lambda: observer.observe(runtimes))
    assert second["dark"].reachable
    dark.go_dark()  # slow again, as slow as before: now it is waited for
    threading.Timer(2 * TIMEOUT, dark.light).start()
    third, took = within(BOUND, lambda: observer.observe(runtimes))
    assert third["dark"].reachable and took >= 2 * TIMEOUT


def test_the_service_applies_a_change_while_another_host_is_dark(
    tmp_path: Path, dark: DarkHost
) -> None:
    good = MemoryHost("good", instance="dk", images=("web:1", "web:2"))
    source = tmp_path / "manifests"
    service = service_of(source, {"a.yaml": pods(2, "a"), "b.yaml": pods(2, "b")}, good, dark)
    try:
        assert service.run_pass("first").applied == 4
        dark.go_dark()
        (source / "a.yaml").write_text(pods(2, "a", image="web:2"))
        outcome, _ = within(BOUND, lambda: service.run_pass("change"))
        assert outcome.applied == 2 and outcome.failed == 0
        assert not outcome.ok  # a host did not answer: the pass says so
        images = {item["Image"] for item in good.containers.values() if "Image" in item}
        assert "web:2" in images
        # the dark host's pods stay where they are for its grace period: nothing moves
        assert not any("b-0" in "".join(item["Names"]) for item in good.containers.values())
        status = service.board.snapshot()["hosts"]
        assert status["good"]["reachable"]
        assert not status["dark"]["reachable"]
        assert status["dark"]["error"] == f"no answer within {TIMEOUT:g} s (still asking)"
        metrics = service.metrics.render().decode()
        assert 'reconciler_hosts{host="dark"} 0.0' in metrics
        assert 'reconciler_hosts{host="good"} 1.0' in metrics
        # still dark: the next pass waits for it no longer, and does not ask it twice
        _, took = within(BOUND, lambda: service.run_pass("again"))
        assert took < TIMEOUT and dark.most_at_once == 1
        dark.light()
        deadline = time.monotonic() + BOUND
        while service.board.snapshot()["hosts"]["dark"]["reachable"] is False:
            assert time.monotonic() < deadline
            service.run_pass("back")
            time.sleep(0.05)
    finally:
        service.close()


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "web:1"}]
"""


def test_a_deployment_gone_is_forgotten_without_waiting_for_a_dark_host(
    tmp_path: Path, dark: DarkHost
) -> None:
    good = MemoryHost("good", instance="dk", images=("web:1",))
    source = tmp_path / "manifests"
    service = service_of(source, {"web.yaml": DEPLOYMENT, "a.yaml": pods(1, "a")}, good, dark)
    try:
        for _ in range(10):
            if not service.run_pass("roll out").rolling:
                break
        assert good.markers(ObjectRef("Deployment", "default", "web"))
        dark.go_dark()
        (source / "web.yaml").unlink()
        within(BOUND, lambda: service.run_pass("deployment removed"))
        assert not good.markers(ObjectRef("Deployment", "default", "web"))
    finally:
        service.close()


def test_a_slow_hosts_actions_do_not_starve_another_hosts() -> None:
    slow = SlowHost("dark", instance="dk", images=("web:1",))
    good = MemoryHost("good", instance="dk", images=("web:1",))
    text = pods(12, "b") + "---\n" + pods(1, "a")
    manifests = validate(parse_text(text, "pods.yaml")).manifests
    live = observe({"good": good, "dark": slow})
    _, the_plan = make_plan(manifests, hosts(), live, Settings(instance="dk"))
    assert len(the_plan.actions) == 13
    try:
        runner = threading.Thread(
            target=apply_plan,
            args=(the_plan, {"good": good, "dark": slow}),
            kwargs={"concurrency": 2},
        )
        runner.start()
        deadline = time.monotonic() + BOUND
        while not any(
            item["Names"] == ["/dk_default_a-0_app"] for item in good.containers.values()
        ):
            assert time.monotonic() < deadline, "the good host's pod waited for the slow host"
            time.sleep(0.02)
        assert slow.started == 2  # its own two workers, busy with it meanwhile
    finally:
        slow.go.set()
        runner.join(BOUND)
    assert len(slow.containers) == 12 * 2 and len(good.containers) == 2


class _ThreadNoting(MemoryHost):
    """A host that notes which thread made each of its observations."""

    def __init__(self, name: str, seen: list[threading.Thread]) -> None:
        super().__init__(name)
        self.seen = seen

    def observe(self, volumes: bool | None = None) -> HostState:
        self.seen.append(threading.current_thread())  # kept: no id is reused
        return super().observe(volumes)


def test_passes_reuse_the_observing_threads_and_a_dark_host_keeps_only_its_own() -> None:
    seen: list[threading.Thread] = []
    runtimes: dict[str, MemoryHost] = {f"h{i}": _ThreadNoting(f"h{i}", seen) for i in range(5)}
    for _ in range(10):  # a one-shot command's looks: a new Observer each
        assert all(s.reachable for s in observe(runtimes, observer=Observer(TIMEOUT)).values())
    observer = Observer(TIMEOUT)
    for _ in range(10):  # the service's passes: one Observer
        assert all(s.reachable for s in observer.observe(runtimes).values())
    assert len(seen) == 100
    # a thread started for every host of every look would be 100 threads
    assert len(set(seen)) <= 5 + 1, f"{len(set(seen))} threads for 100 observations"

    dark = DarkHost("dark")
    dark.go_dark()
    try:
        with_dark = {**runtimes, "dark": dark}
        seen.clear()
        for _ in range(3):
            states, _ = within(BOUND, lambda: observer.observe(with_dark))
            assert not states["dark"].reachable
            assert all(states[name].reachable for name in runtimes)
        assert dark.most_at_once == 1
    finally:
        dark.light()
