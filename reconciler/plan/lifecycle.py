"""What a pass does about a running pod's failed containers and its init containers. Pure.

- **Liveness.** Docker reports a container that fails its liveness (or startup) probe as
  ``unhealthy`` and leaves it running; the plan restarts it as ``restartPolicy`` says
  (``Always`` and ``OnFailure``: a failed probe kills the container, which is a failure), or
  stops it for good (``Never``).
- **Init containers** run one at a time, in order, each to completion, before the app
  containers exist. One that failed is restarted as ``restartPolicy`` says; with ``Never``
  the pod stays failed (``Init:Error``). Once the app containers exist, the pod is
  initialized: completed init containers are never run again.
- **Back-off** as Kubernetes': the first restart at once, then 10 s, doubling up to 5
  minutes, back to nothing after 10 minutes without a failure. A restart replaces the
  container by a new instance whose labels carry the restart count and back-off, created
  but left unstarted until its back-off is over (``CrashLoopBackOff``): the state lives on
  the host, where any pass (after a restart of the reconciler too) finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core import health
from reconciler.core import labels as L
from reconciler.core.model import DesiredContainer, DesiredPod, LiveContainer, Restart
from reconciler.plan.live import exit_code
from reconciler.plan.model import Verb

BACKOFF_FIRST = 10  # seconds before the second restart
BACKOFF_MAX = 300  # the most a restart waits
BACKOFF_RESET = 600  # a container that ran this long without failing starts over


@dataclass(frozen=True, slots=True)
class Step:
    """One action the planner should take for a container of a running pod."""

    verb: Verb
    reason: str
    container: str
    on: tuple[LiveContainer, ...] = ()
    restart: Restart | None = None


def next_restart(container: LiveContainer, now: float) -> Restart:
    """The restart that replaces ``container`` (which failed at ``now``): its count, and
    the back-off before the new instance may start."""
    before = health.restarts(container)
    began = max(float(container.created), health.start_after(container))
    if before == 0 or now - began >= BACKOFF_RESET:
        delay = 0
    else:
        delay = min(BACKOFF_MAX, max(BACKOFF_FIRST, 2 * health.backoff(container)))
    return Restart(before + 1, delay, now + delay if delay else 0.0)


def _restart_reason(what: str, restart: Restart) -> str:
    reason = f"{what}: restart {restart.count}"
    if restart.backoff:
        reason += f", after a back-off of {restart.backoff}s (CrashLoopBackOff)"
    return reason


def _held(found: LiveContainer, now: float, wakes: list[float]) -> Step | None:
    """A restarted instance waiting for its back-off: nothing yet (a pass is due when it
    ends), or its start once it is over."""
    if health.backing_off(found, now):
        wakes.append(health.start_after(found))
        return None
    return Step(
        Verb.START,
        f"back-off of {health.backoff(found)}s over: start restart {health.restarts(found)}",
        found.labels.get(L.CONTAINER, ""),
        (found,),
    )


def app_step(
    pod: DesiredPod, found: LiveContainer, now: float, wakes: list[float]
) -> tuple[bool, Step | None]:
    """What to do about a live app container for its probes and restarts: ``(handled,
    step)``; not handled leaves it to the plan's other rules (start a stopped container)."""
    name = found.labels.get(L.CONTAINER, "")
    if found.state == "created" and health.start_after(found):
        return True, _held(found, now, wakes)
    if found.running and health.health_status(found) == health.UNHEALTHY:
        probes = "liveness or startup probe failed (Docker reports it unhealthy)"
        if pod.restart_policy == "Never":
            return True, Step(
                Verb.STOP, f"{probes}; restartPolicy Never: stopped, not restarted", name, (found,)
            )
        restart = next_restart(found, now)
        return True, Step(Verb.RESTART, _restart_reason(probes, restart), name, (found,), restart)
    return False, None


def init_steps(
    pod: DesiredPod,
    by_name: Mapping[str, LiveContainer],
    now: float,
    wakes: list[float],
) -> tuple[list[Step], bool]:
    """The next step of a pod's initialization, and whether it is initialized (then the app
    containers are the plan's business)."""
    inits: tuple[DesiredContainer, ...] = pod.init_containers
    if not inits or any(c.container in by_name for c in pod.app_containers):
        return [], True
    for index, init in enumerate(inits):
        found = by_name.get(init.container)
        where = f"init container {index + 1}/{len(inits)}"
        if found is None:
            return [Step(Verb.CREATE, f"{where} runs next", init.container)], False
        if found.state == "created":
            step = _held(found, now, wakes)
            if step is None or health.start_after(found):
                return ([step] if step else []), False
            return [
                Step(Verb.START, f"{where} was created, never started", init.container, (found,))
            ], False
        if found.state != "exited" and found.state != "dead":
            return [], False  # running: its exit wakes the next pass
        code = exit_code(found)
        if code == 0:
            continue
        if pod.restart_policy == "Never":
            return [], False  # failed for good: Init:Error
        restart = next_restart(found, now)
        why = f"{where} exited {code}"
        return [
            Step(Verb.RESTART, _restart_reason(why, restart), init.container, (found,), restart)
        ], False
    return [], True
