"""Run a Plan through a Runtime (``engine.host.DockerHost`` implements it), host by host.

Policy (documented in docs/architecture.md): invalid manifests stop everything before this
point; once applying, a failed action is reported with its object and source line and the
other actions still run. Actions of one group run in order (a rollout stops at its first
failure, so a broken template never takes down more than one replica); groups run
concurrently, at most ``concurrency`` Docker operations per host at a time.

Each host has its own workers (``concurrency`` of them), which take the groups that start on
that host: a slow host's backlog waits for its own workers and never holds one another host
needs. (With one pool for all hosts, the groups of a host with many actions filled the
pool's queue first, and its workers then waited on that host's slots while the other hosts'
groups waited behind them.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reconciler.apply.runtime import Runtime
from reconciler.plan.model import Action, Plan, Verb


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    ok: bool
    error: str = ""
    seconds: float = 0.0
    skipped: bool = False


@dataclass
class ApplyReport:
    results: list[ActionResult] = field(default_factory=list)

    @property
    def failed(self) -> list[ActionResult]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def _groups(actions: Sequence[Action]) -> list[list[Action]]:
    """Actions by group, removals first (they free ports and capacity), stable otherwise."""
    grouped: dict[str, list[Action]] = {}
    for action in actions:
        grouped.setdefault(action.group or f"{action.host}/{action.pod}", []).append(action)
    groups = list(grouped.values())
    groups.sort(key=lambda g: 0 if all(a.verb is Verb.REMOVE for a in g) else 1)
    return groups


def run_action(action: Action, runtime: Runtime, rollout_timeout: float) -> None:
    """One action against one host."""
    if action.verb is Verb.REMOVE:
        if action.container:
            runtime.remove(action.live)
        else:
            runtime.remove_pod(action.live)
    elif action.verb is Verb.START:
        for container in action.live:
            runtime.start(container)
    elif action.verb is Verb.CREATE:
        assert action.desired is not None
        if action.container:
            runtime.create_container(action.desired, action.container)
        else:
            runtime.create_pod(action.desired)
    elif action.verb is Verb.RECREATE:
        assert action.desired is not None
        runtime.remove_pod(action.live)
        runtime.create_pod(action.desired)
        if action.group.startswith("rollout/"):
            runtime.wait_ready(action.desired, timeout=rollout_timeout)
    elif action.verb is Verb.RESTART:
        assert action.desired is not None and action.restart is not None
        runtime.restart_container(action.desired, action.container, action.live, action.restart)
    elif action.verb is Verb.STOP:
        for container in action.live:
            runtime.stop(container)
    elif action.verb is Verb.RELOAD:
        assert action.desired is not None
        runtime.reload_forwarder(action.desired, action.live)


def execute(
    plan: Plan,
    runtimes: Mapping[str, Runtime],
    *,
    concurrency: int = 8,
    rollout_timeout: float = 60.0,
    on_result: Callable[[ActionResult], None] | None = None,
) -> ApplyReport:
    """Run every action of ``plan``; never stops at the first failure."""
    report = ApplyReport()
    lock = threading.Lock()
    slots = {host: threading.Semaphore(concurrency) for host in runtimes}

    def record(result: ActionResult) -> None:
        with lock:
            report.results.append(result)
        if on_result is not None:
            on_result(result)

    def run_group(actions: list[Action]) -> None:
        failure = ""
        for action in actions:
            if failure:
                record(
                    ActionResult(
                        action,
                        ok=False,
                        skipped=True,
                        error=f"not run: an earlier step of {action.group} failed ({failure})",
                    )
                )
                continue
            runtime = runtimes.get(action.host)
            if runtime is None:
                failure = f"host {action.host} is not configured"
                record(ActionResult(action, ok=False, error=failure))
                continue
            started = time.monotonic()
            try:
                with slots[action.host]:
                    run_action(action, runtime, rollout_timeout)
            except Exception as exc:  # reported per action; the other groups go on
                failure = str(exc) or type(exc).__name__
                record(
                    ActionResult(
                        action, ok=False, error=failure, seconds=time.monotonic() - started
                    )
                )
                continue
            record(ActionResult(action, ok=True, seconds=time.monotonic() - started))

    by_host: dict[str, list[list[Action]]] = {}
    for group in _groups(plan.actions):
        by_host.setdefault(group[0].host, []).append(group)
    with contextlib.ExitStack() as stack:
        futures = []
        for host, groups in by_host.items():
            pool = stack.enter_context(
                ThreadPoolExecutor(
                    max_workers=min(len(groups), concurrency), thread_name_prefix=f"apply-{host}"
                )
            )
            futures += [pool.submit(run_group, group) for group in groups]
        for future in futures:
            future.result()
    return report
