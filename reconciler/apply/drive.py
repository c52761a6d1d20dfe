"""``reconciler apply`` carried to the end of its rollouts: passes until every Deployment's
rollout completes or fails, or the time runs out.

One pass is ``converge`` (observe, step each rollout, plan, write the rollouts' memory,
execute). A rollout needs several: a pass makes what is allowed now, and what is allowed
next depends on pods becoming ready. So :func:`drive` repeats the pass, a short
``interval`` apart, while a rollout is under way, exactly as ``reconciler run`` would
between its triggers; each pass is guarded like the first (the mass-prune guard), and the
actions that failed in one pass are the next pass's ``errors`` (the reason a rollout that
fails reports). Every decision is the step function's: this loop only decides when to look
again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.converge import (
    Converged,
    converge,
    make_plan,
    observe_and_remember,
    wants_volumes,
)
from reconciler.apply.execute import ActionResult, ApplyReport
from reconciler.apply.observer import Observer
from reconciler.apply.runtime import HostRuntime
from reconciler.core.model import Manifest, ObjectRef
from reconciler.desire.hostmemory import HostRecord
from reconciler.desire.settings import Settings
from reconciler.plan.guards import Limits, refused
from reconciler.plan.model import Plan
from reconciler.plan.rollout import Step
from reconciler.plan.rollouts import Rollouts
from reconciler.source.hosts import Host


@dataclass
class Driven:
    """What the passes did: every action, the rollouts as last seen, the failures decided
    along the way (each once), and why it stopped early, if it did."""

    report: ApplyReport = field(default_factory=ApplyReport)
    passes: int = 0
    rollouts: Rollouts = field(default_factory=Rollouts)
    failures: dict[ObjectRef, Step] = field(default_factory=dict)
    timed_out: bool = False
    refused: list[str] = field(default_factory=list)
    memory_errors: list[str] = field(default_factory=list)
    last: ApplyReport = field(default_factory=ApplyReport)  # the last pass's actions

    @property
    def still_failing(self) -> list[ActionResult]:
        """Actions that failed in the last pass: an action that failed once and then
        worked on a later pass (a rollout retries) is not a failure of the apply."""
        return self.last.failed

    @property
    def failed_rollouts(self) -> list[Step]:
        """Deployments whose manifest template is marked failed: decided now or earlier
        (a failed template is not tried again, and that is never a success)."""
        found = dict(self.failures)
        for ref, done in self.rollouts.steps.items():
            if done.status.failure is not None:
                found[ref] = done
        return [found[ref] for ref in sorted(found)]


@dataclass(frozen=True, slots=True)
class Pacing:
    """When to look again, and for how long at most (0: until each rollout completes or
    fails, which its progressDeadlineSeconds bounds)."""

    interval: float = 0.25
    timeout: float = 0.0
    wait: bool = True
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


def drive(
    first: Plan,
    manifests: Sequence[Manifest],
    hosts: Sequence[Host],
    settings: Settings,
    runtimes: Mapping[str, HostRuntime],
    *,
    prune: bool = True,
    limits: Limits | None = None,
    concurrency: int = 8,
    host_memory: Mapping[str, HostRecord] | None = None,
    now: float = 0.0,
    state_dir: Path | None = None,
    commit: str = "",
    pacing: Pacing | None = None,
    on_result: Callable[[ActionResult], None] | None = None,
    on_pass: Callable[[Converged], None] | None = None,
    wait_ready: bool = False,
    observer: Observer | None = None,
) -> Driven:
    """Run ``first`` (already guarded by the caller), then more passes while a rollout is
    under way (see the module's docstring). ``wait_ready``: as ``converge``'s (apply);
    ``observer``: the one that observed ``first``'s hosts, for every later look."""
    pacing = pacing or Pacing()
    observer = observer or Observer()
    limits = limits or Limits()
    result = Driven()
    started = pacing.clock()
    the_plan = first
    while True:
        done = converge(
            the_plan,
            manifests,
            hosts,
            settings,
            runtimes,
            prune=prune,
            concurrency=concurrency,
            on_result=on_result,
            host_memory=host_memory,
            now=now,
            state_dir=state_dir,
            wait_ready=wait_ready,
            observer=observer,
        )
        result.passes += 1
        result.report.results.extend(done.report.results)
        result.last = done.report
        result.rollouts = done.rollouts or the_plan.rollouts
        result.memory_errors.extend(done.memory_errors or [])
        for ref, step in result.rollouts.steps.items():
            if step.failure is not None:
                result.failures[ref] = step
        if on_pass is not None:
            on_pass(done)
        if not (pacing.wait and result.rollouts.in_progress):
            return result
        if pacing.timeout and pacing.clock() - started >= pacing.timeout:
            result.timed_out = True
            return result
        pacing.sleep(pacing.interval)
        live, host_memory, now = observe_and_remember(
            runtimes,
            settings.instance,
            state_dir,
            host_memory,
            wants_volumes(manifests),
            clock=pacing.wall,
            observer=observer,
        )
        _, the_plan = make_plan(
            manifests,
            hosts,
            live,
            settings,
            prune=prune,
            host_memory=host_memory,
            now=now,
            errors=done.rollout_errors(),
            commit=commit,
        )
        result.refused = refused(the_plan, limits)
        if result.refused:
            return result
