"""What a pass tells the world: events, the sync history, and the page's picture of the hosts.

:class:`PassReport` sits beside the loop (``daemon.loop``), which calls it at three moments:
after observing (hosts lost or back), after a pass (what it applied, healed or failed, and
the world as it is now), and when a Docker event says a container died (restarts). It turns
what it hears into :class:`~.events.Event` values for the :class:`~.events.Announcer` and
into rows on the status board (``render.overview``), so the loop itself only runs passes.

How an applied pass is named: when the hosts already carried the revision being enforced
(each host's state marker says what the last complete apply recorded, and this service
remembers what it applied), the actions brought drifted containers back: **drift healed**.
Otherwise a new revision went out: **sync applied**. A failed action of a rolling update
is a **rollout failed**, remembered on the workload's row until a pass finds it complete.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.apply.execute import ApplyReport
from reconciler.apply.runtime import ServiceRuntime
from reconciler.core.labels import canonical_json
from reconciler.core.model import HostState, Manifest
from reconciler.daemon import events as E
from reconciler.daemon.http.status import StatusBoard
from reconciler.desire.settings import DesiredState
from reconciler.plan.model import Action, Plan
from reconciler.render.overview import world_rows
from reconciler.render.plans import plan_actions, summary_text
from reconciler.render.statuspage import HELD_WORDS
from reconciler.source.hosts import Host

log = logging.getLogger(__name__)


def _target(action: Action) -> str:
    owner = action.owner
    name = owner.name if owner.namespace == "default" else f"{owner.namespace}/{owner.name}"
    return f"{owner.kind}/{name}"


def action_line(action: Action, error: str = "") -> str:
    """``create ReplicationController/web pod web-0 on h1: <reason or error>``."""
    pod = f" pod {action.pod}" + (f" container {action.container}" if action.container else "")
    where = f" ({action.source})" if error and action.source is not None else ""
    what = error or action.reason
    return f"{action.verb.value} {_target(action)}{pod} on {action.host}: {what}{where}"


class PassReport:
    """Events and board rows from each pass; restarts from Docker events."""

    def __init__(
        self,
        instance: str,
        hosts: Sequence[Host],
        board: StatusBoard,
        announcer: E.Announcer,
        runtimes: Mapping[str, ServiceRuntime],
    ) -> None:
        self.instance = instance
        self.hosts = list(hosts)
        self.board = board
        self.announcer = announcer  # public: tests set its repeat_after
        self.runtimes = runtimes
        self._reachable: dict[str, bool] = {}
        self._versions: dict[str, str] = {}
        self._restarts: dict[tuple[str, str], int] = {}
        self._failed_rollouts: dict[str, str] = {}
        self._applied: str | None = None  # identity of the manifests last applied in full
        self._lock = threading.Lock()
        board.overview.set_instance(instance)

    # -- as things happen ---------------------------------------------------------------------
    def restarted(self, namespace: str, pod: str) -> None:
        """A container of this pod died without a pass removing it (a Docker event)."""
        with self._lock:
            key = (namespace, pod)
            self._restarts[key] = self._restarts.get(key, 0) + 1

    def held(self, revision: str, kind: str, message: str, lines: Sequence[str]) -> None:
        """A revision is not applied (``daemon.fetch``): invalid, or not signed."""
        what = HELD_WORDS.get(kind, f"is held ({kind})")[3:]
        self.announcer.announce(
            E.event(
                E.REVISION_HELD,
                f"revision {revision or '(working tree)'} held ({what}): {message}",
                self.instance,
                revision,
                lines,
            )
        )

    def failed(self, kind: str, message: str) -> None:
        """A stage failed outside the apply (git unreachable, a refused prune)."""
        summary = message.split(" (retry in ", 1)[0]  # the delay varies: keep repeats equal
        self.announcer.announce(E.event(E.SYNC_FAILED, f"{kind}: {summary}", self.instance))

    def observed(self, live: Mapping[str, HostState]) -> None:
        """Hosts that stopped or started answering since the last observation."""
        for name, state in sorted(live.items()):
            before = self._reachable.get(name)
            self._reachable[name] = state.reachable
            if state.reachable and name not in self._versions:
                self._versions[name] = self._engine_version(name)
            if not state.reachable:
                self._versions.pop(name, None)
            if before is not False and not state.reachable:
                self.announcer.announce(
                    E.event(
                        E.HOST_LOST,
                        f"host {name} unreachable: {state.error}",
                        self.instance,
                        host=name,
                    )
                )
            elif before is False and state.reachable:
                self.announcer.announce(
                    E.event(E.HOST_BACK, f"host {name} answers again", self.instance, host=name)
                )

    def _engine_version(self, host: str) -> str:
        runtime = self.runtimes.get(host)
        try:
            return str(runtime.engine_version()) if runtime is not None else ""
        except Exception as exc:  # only the page's ENGINE column is lost
            log.debug("host %s: engine version: %s", host, exc)
            return ""

    # -- after a pass ---------------------------------------------------------------------------
    def finished(
        self,
        *,
        reason: str,
        revision: str,
        manifests: Sequence[Manifest],
        desired: DesiredState,
        plan: Plan,
        report: ApplyReport | None,
        before: Mapping[str, HostState],
        after: Mapping[str, HostState],
        duration: float,
        ok: bool,
    ) -> None:
        """Announce what the pass did and publish the world it left behind.

        ``report`` is None for a pass that only planned (suspended); ``before`` is what it
        observed first, ``after`` what runs now (the same when nothing was done).
        """
        identity = _identity(revision, manifests)
        results = report.results if report is not None else []
        failed = [r for r in results if not r.ok]
        done = [r for r in results if r.ok]
        if done:
            already = identity == self._applied or _markers_say(before, revision)
            kind = E.DRIFT_HEALED if already else E.SYNC_APPLIED
            counts: dict[str, int] = {}
            for r in done:
                counts[r.action.verb.value] = counts.get(r.action.verb.value, 0) + 1
            verb = "healed drift at" if already else "applied"
            pods = sorted({r.action.pod for r in done})
            named = ", ".join(pods[:3]) + (f" and {len(pods) - 3} more" if len(pods) > 3 else "")
            self.announcer.announce(
                E.event(
                    kind,
                    f"{verb} {revision or '(working tree)'}: {summary_text(counts)} ({named})",
                    self.instance,
                    revision,
                    [action_line(r.action) for r in done],
                )
            )
        for owner, lines in _failed_rollouts(failed).items():
            message = f"rollout of {owner} at {revision or '(working tree)'} failed: {lines[0]}"
            self._failed_rollouts[owner] = lines[0]
            self.announcer.announce(
                E.event(E.ROLLOUT_FAILED, message, self.instance, revision, lines)
            )
        if failed:
            self.announcer.announce(
                E.event(
                    E.SYNC_FAILED,
                    f"{len(failed)} of {len(results)} action(s) failed at "
                    f"{revision or '(working tree)'}",
                    self.instance,
                    revision,
                    [action_line(r.action, r.error) for r in failed],
                )
            )
        elif report is not None and ok:
            self._applied = identity
        world = world_rows(
            manifests,
            desired,
            after,
            self.hosts,
            versions=self._versions,
            restarts=dict(self._restarts),
            failed_rollouts=self._failed_rollouts,
        )
        for row in world["workloads"]:  # a rollout that completed is no longer failed
            key = (
                f"{row['kind']}/{row['name']}"
                if row["namespace"] == "default"
                else (f"{row['kind']}/{row['namespace']}/{row['name']}")
            )
            if row["rollout"] == "failed" and row["updated"] == row["desired"] == row["ready"]:
                self._failed_rollouts.pop(key, None)
                row["rollout"], row["rollout_error"] = "complete", ""
        self.board.overview.set_world(world)
        pending = plan.actions if report is None else [r.action for r in failed]
        self.board.overview.set_pending(plan_actions(Plan(actions=list(pending))))
        if report is None and ok:
            return  # a plan made while suspended is no sync: only its pending actions show
        self.board.overview.record_sync(
            {
                "revision": revision,
                "reason": reason,
                "result": "ok" if ok else "failed",
                "applied": len(done),
                "failed": len(failed),
                "pending": len(pending),
                "duration_seconds": round(duration, 3),
                "finished": time.time(),
            }
        )


def _identity(revision: str, manifests: Sequence[Manifest]) -> str:
    """The revision and a hash of the manifests: equal when the same thing is enforced."""
    digest = hashlib.sha256()
    for manifest in manifests:
        digest.update(canonical_json(manifest.body).encode())
    return f"{revision}:{digest.hexdigest()[:16]}"


def _markers_say(before: Mapping[str, HostState], revision: str) -> bool:
    """Whether every reachable host's state marker already names ``revision``."""
    reachable = [s for s in before.values() if s.reachable]
    clean = bool(revision) and not revision.endswith("+dirty")
    return clean and bool(reachable) and all(s.applied_revision == revision for s in reachable)


def _failed_rollouts(failed: Sequence[Any]) -> dict[str, list[str]]:
    """Per workload, the failed (and not run) steps of its rolling update."""
    found: dict[str, list[str]] = {}
    for result in failed:
        action = result.action
        if action.group.startswith("rollout/") and not result.skipped:
            found.setdefault(_target(action), []).append(action_line(action, result.error))
    return found
