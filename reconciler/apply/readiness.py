"""Waiting, a bounded while, for pods an apply just made to become ready.

A pod with readiness (or startup) probes is not a Service endpoint until its checks pass,
which takes at least one period after it starts. ``reconciler run`` follows that by itself
(a ``health_status`` event wakes a pass), but a one-shot ``reconciler apply`` would leave
the Service's forwarders without the pods it just made. So ``apply`` waits, watching one
list call per host every half second, until those pods are ready or their probes have had
the time they need (at most :data:`MOST`), and only then plans the forwarders.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from reconciler.core.model import DesiredPod, HostState
from reconciler.plan.live import group_pods, pod_ready
from reconciler.plan.model import Plan, Verb

MOST = 30.0  # seconds an apply waits for its new pods' readiness at most
POLL = 0.5


def probed(pod: DesiredPod) -> bool:
    """Whether the pod's readiness waits for probes (readiness or startup)."""
    return any(p.kind in ("readiness", "startup") for c in pod.app_containers for p in c.probes)


def grace(pods: Iterable[DesiredPod]) -> float:
    """How long their probes need to pass once: the initial delay, the successes needed, a
    period of slack and each check's timeout (a pod's checks run in parallel with others')."""
    longest = 0.0
    for pod in pods:
        for container in pod.app_containers:
            for p in container.probes:
                if p.kind in ("readiness", "startup"):
                    need = p.initial_delay + p.period * (p.success_threshold + 1) + p.timeout
                    longest = max(longest, float(need))
    return min(MOST, longest + 2.0)


def made_by(the_plan: Plan) -> list[DesiredPod]:
    """The probed pods a plan creates or replaces (or whose containers it restarts)."""
    verbs = (Verb.CREATE, Verb.RECREATE, Verb.RESTART, Verb.START)
    found: dict[tuple[str, str, str], DesiredPod] = {}
    for action in the_plan.actions:
        if action.verb in verbs and action.desired is not None and probed(action.desired):
            found[(action.host, *action.desired.key)] = action.desired
    return list(found.values())


def wait_ready(
    pods: Iterable[DesiredPod],
    observe: Callable[[], Mapping[str, HostState]],
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, HostState] | None:
    """Observe until every pod in ``pods`` is ready on its host, or ``timeout`` passes;
    the last observation (None if none was made)."""
    wanted = {(p.host, *p.key) for p in pods}
    deadline = time.monotonic() + timeout
    live: Mapping[str, HostState] | None = None
    while wanted:
        live = observe()
        for host, state in live.items():
            for key, containers in group_pods(state.containers).items():
                if (host, *key) in wanted and pod_ready(containers):
                    wanted.discard((host, *key))
        if not wanted or time.monotonic() >= deadline:
            break
        sleep(POLL)
    return live
