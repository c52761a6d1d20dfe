"""The long-lived GitOps service: the loop of ``reconciler run``, :class:`ReconcileService`.

Level-triggered: every pass does the same thing whatever woke it — fetch the source,
validate, observe every host, plan, apply — so a missed event costs at most one resync
interval. What wakes a pass:

- the poll interval (git sources) and the resync interval (always);
- a webhook (``POST /hooks/git``), handled by ``daemon.http``, which calls back;
- a file change in a watched directory source (watchdog, debounced, editor files ignored);
- a Docker event: one of our containers died or was removed, or a health check changed its
  verdict (one event stream per host). Not the containers a pass removed itself (by id,
  :class:`~.triggers.OwnRemovals`): no second, no-op pass; anyone else's removal wakes one;
- the end of a restart's back-off (``Plan.wake_at``: a container held in CrashLoopBackOff).

This module decides *when* a pass runs, and runs it (observe, plan, apply, report). The
edges that wake it are in ``daemon.triggers``; what it enforces comes from ``daemon.fetch``
(an invalid revision is never applied: the last valid one stays in force and keeps healing
drift); what it shows goes to the board and metrics of ``daemon.http``. Git or host
failures are retried with exponential backoff and jitter. SIGTERM/SIGINT stop taking work;
the pass in progress finishes its current actions (each bounded by Docker's timeouts) and
the process exits. Pods are created all-or-nothing and always labelled, so even ``kill -9``
mid-apply leaves nothing a restart would not find and converge.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.apply.converge import connect, converge, make_plan, wants_volumes
from reconciler.apply.execute import ActionResult
from reconciler.apply.runtime import ServiceRuntime
from reconciler.core.collector import tune_for_large_states
from reconciler.core.model import ObjectRef
from reconciler.daemon.config import PassOutcome, RunConfig
from reconciler.daemon.events import Announcer
from reconciler.daemon.fetch import DesiredSource
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.server import Server, serve
from reconciler.daemon.http.status import StatusBoard
from reconciler.daemon.looks import HostLooks
from reconciler.daemon.notify import Notifier
from reconciler.daemon.report import PassReport
from reconciler.daemon.rollouts import RolloutReporter
from reconciler.daemon.signals import StopSignals
from reconciler.daemon.triggers import DockerEvents, OwnRemovals, _Trigger, watch_directory
from reconciler.plan.guards import Limits, refused
from reconciler.plan.model import Verb
from reconciler.render.diagnostics import diagnostic_line

log = logging.getLogger(__name__)

#: Verbs whose action removes the containers in ``Action.live`` (and so makes them emit
#: kill, die, stop and destroy events): RESTART replaces a failed container, STOP stops
#: one for good. START is not one: a started container that dies again must wake a pass.
_REMOVING_VERBS = (Verb.REMOVE, Verb.RECREATE, Verb.RESTART, Verb.STOP)
_MAX_REASONS = 5  # distinct trigger reasons named in the "pass:" log line


class ReconcileService:
    """The loop, its triggers, and the HTTP side (status, metrics, webhook)."""

    def __init__(
        self, config: RunConfig, runtimes: Mapping[str, ServiceRuntime] | None = None
    ) -> None:
        """``runtimes``: one per configured host; by default a Docker connection to each
        (tests pass in-memory hosts, which implement the same protocol)."""
        self.config = config
        self.board = StatusBoard()
        self.metrics = Metrics()
        self.runtimes: dict[str, ServiceRuntime] = (
            dict(runtimes)
            if runtimes is not None
            else dict(
                connect(list(config.hosts), config.instance, "", grace_seconds=config.grace_seconds)
            )
        )
        self._wake = threading.Condition()
        self._reasons: list[_Trigger] = []
        self._own = OwnRemovals()
        self._stopping = threading.Event()
        self._suspended = False
        #: per Deployment, the last failed action on one of its pods: why a rollout fails
        self._rollout_errors: dict[ObjectRef, str] = {}
        self._notifier = (
            Notifier(config.notify, config.notify_format, self.metrics.notification)
            if config.notify
            else None
        )
        announcer = Announcer(
            self.board.overview.record_event,
            self._notifier.send if self._notifier is not None else None,
        )
        self.report = PassReport(
            config.instance, config.hosts, self.board, announcer, self.runtimes
        )
        self._looks = HostLooks(
            config, self.runtimes, self.board, self.metrics, self.report, self.trigger
        )
        self._source = DesiredSource(
            config, self.board, self.metrics, self._record_error, self.report.held
        )
        self._rollouts = RolloutReporter(self.board, self.metrics, announcer, config.instance)
        self._server: Server | None = None
        self._observer: Any = None
        self._events = DockerEvents(
            self.runtimes,
            self._own,
            self._trigger_all,
            lambda: self.board.count("own_events_ignored"),
            self._stopping,
        )
        self.passes = 0
        #: epoch seconds when the last plan's first held restart may go ahead (None: none)
        self._wake_at: float | None = None
        self._signals = StopSignals(self.stop, config.stop_timeout)
        self.board.set_source(config.source, config.branch, config.path)

    # -- triggers --------------------------------------------------------------------------
    def trigger(self, reason: str, container: str = "") -> None:
        """Wake the loop. ``container``: the id a Docker event was about, so that the loop
        can tell the echo of its own removals (ignored) from someone else's doing."""
        self._trigger_all([_Trigger(reason, container)])

    def _trigger_all(self, triggers: Sequence[_Trigger]) -> None:
        """Several at once (the events of one gap): the loop takes them together."""
        with self._wake:
            self._reasons.extend(triggers)
            self._wake.notify_all()

    def _ignore_own(self, triggers: list[_Trigger]) -> list[str]:
        """The reasons to act on: every trigger but the events of containers a pass
        removed itself. Asked when the loop takes them, after the pass that queued them
        during its run ended, so that every id it removed is known by then."""
        reasons = []
        for trigger in triggers:
            if self._own.echoes(trigger):
                self.board.count("own_events_ignored")
                log.debug("ignored: %s (a container a pass removed)", trigger.reason)
            else:
                reasons.append(trigger.reason)
                if trigger.died is not None:
                    self.report.restarted(*trigger.died)
        return reasons

    def _on_webhook(self, reason: str) -> None:
        self._source.fetch_now()
        self.trigger(reason)

    def _on_suspend(self, suspended: bool) -> None:
        self._suspended = suspended
        self.board.set_suspended(suspended)
        self.metrics.set_suspended(suspended)
        log.info("%s", "suspended" if suspended else "resumed")
        if not suspended:
            self.trigger("resume")

    def stop(self) -> None:
        self._stopping.set()
        self.trigger("stop")

    def _wait(self, timeout: float) -> list[str]:
        with self._wake:
            if not self._reasons and not self._stopping.is_set():
                self._wake.wait(timeout=max(0.0, timeout))
            triggers, self._reasons = self._reasons, []
        return self._ignore_own(triggers)

    # -- the edges that feed triggers --------------------------------------------------------
    def _start_http(self) -> None:
        host, _, port = self.config.listen.rpartition(":")
        self._server = serve(
            host or "127.0.0.1",
            int(port),
            self.board,
            self.metrics,
            webhook_secret=self.config.webhook_secret or None,
            on_trigger=self._on_webhook,
            on_suspend=self._on_suspend,
            branch=self.config.branch or None,
        )
        log.info("status page at %s/ (and /healthz /readyz /metrics /status)", self._server.url)

    def _start_watch(self) -> None:
        """Watch a directory source: a change wakes the loop (see :func:`watch_directory`)."""
        self._observer = watch_directory(self.config.source, self.trigger)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped (or one pass with ``once``); the exit code."""
        if self.config.once:
            return 0 if self.run_pass("once").ok else 1
        self._install_signals()
        tune_for_large_states()  # core.collector: a pass's values are not cycles
        log.info("policy: %s, at most %d pods", self.config.policy.describe(), self.config.max_pods)
        self._start_http()
        if not self.config.is_git:
            self._start_watch()
        self._events.start()
        next_resync = 0.0
        try:
            self.trigger("start")
            while not self._stopping.is_set():
                timeout = next_resync - time.monotonic()
                if self.config.is_git:
                    timeout = min(timeout, self._source.next_fetch - time.monotonic())
                if self._wake_at is not None:  # a restart held back by its back-off
                    timeout = min(timeout, self._wake_at - time.time())
                reasons = self._wait(timeout)
                if self._stopping.is_set():
                    break
                now = time.monotonic()
                due_fetch = self.config.is_git and now >= self._source.next_fetch
                if self._wake_at is not None and time.time() >= self._wake_at:
                    reasons = [*reasons, "back-off over"]
                    self._wake_at = None
                if not reasons and now < next_resync and not due_fetch:
                    continue
                if self._suspended:  # plan only: the page shows what resuming would do
                    self.run_pass(_summary(reasons) or "resync", dry_run=True)
                    next_resync = time.monotonic() + self.config.resync
                    continue
                if not reasons and now < next_resync:
                    # only the poll is due: a full pass only when the commit moved
                    last_good = self._source.last_good
                    before = last_good[1] if last_good else None
                    fetched = self._source.fetch()
                    if fetched is not None and fetched[1] == before:
                        continue
                    reasons = ["poll: new revision"]
                outcome = self.run_pass(_summary(reasons) or "resync")
                wait = self.config.resync
                if outcome.rolling:  # the rollout goes on as soon as its pods are ready
                    wait = min(wait, self.config.rollout_interval)
                next_resync = time.monotonic() + wait
        finally:
            self.close()
        return 0

    def close(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
        if self._observer is not None:
            with contextlib.suppress(Exception):
                self._observer.stop()
        self._events.close()
        if self._notifier is not None:
            self._notifier.close()
        for runtime in self.runtimes.values():
            runtime.close()
        self._signals.close()

    def _install_signals(self) -> None:
        """SIGTERM/SIGINT stop the loop after the pass in progress; a second one, or a pass
        that overruns ``stop_timeout``, ends the process (``daemon.signals``)."""
        self._signals.install()

    # -- one pass ----------------------------------------------------------------------------
    def run_pass(self, reason: str, dry_run: bool = False) -> PassOutcome:
        """One level-triggered pass: fetch → validate → observe → plan → apply.

        ``dry_run`` (while suspended) stops after the plan: the page shows it as pending.
        """
        started = time.monotonic()
        if dry_run:
            return self._plan_only(reason, started)
        self.passes += 1
        self.board.sync_started()
        log.info("pass: %s", reason)
        desired = self._source.fetch()
        if desired is None:
            self.board.sync_finished(ok=False, duration=time.monotonic() - started)
            return PassOutcome(ok=False, error="no valid manifests yet")
        manifests, revision = desired
        config = self.config
        for runtime in self.runtimes.values():
            runtime.revision = revision
        live, memory, now = self._looks.before(wants_volumes(manifests))
        wanted, the_plan = make_plan(
            manifests,
            list(config.hosts),
            live,
            config.settings,
            prune=config.prune,
            host_memory=memory,
            now=now,
            errors=self._rollout_errors,
            commit=revision,
        )
        self._wake_at = the_plan.wake_at
        limits = Limits(
            config.max_prune, config.allow_mass_prune, config.max_create, config.allow_mass_create
        )
        reasons = refused(the_plan, limits)
        if reasons:
            message = "refused: " + "; ".join(reasons)
            self._record_error("apply", message)
            self.report.failed("apply", message)
            duration = time.monotonic() - started
            self.report.finished(
                reason=reason,
                revision=revision,
                manifests=manifests,
                desired=wanted,
                plan=the_plan,
                report=None,
                before=live,
                after=live,
                duration=duration,
                ok=False,
            )
            self.board.sync_finished(ok=False, duration=duration)
            return PassOutcome(ok=False, revision=revision, error=message)
        self.board.set_pending(len(the_plan.actions))
        try:
            done = converge(
                the_plan,
                manifests,
                list(config.hosts),
                config.settings,
                self.runtimes,
                prune=config.prune,
                concurrency=config.concurrency,
                on_result=self._on_result,
                host_memory=memory,
                now=now,
                state_dir=config.state_dir,
                observer=self._looks.observer,
            )
        finally:
            self._own.settle()  # what this pass removed stays its own a while longer
        self._rollout_errors = done.rollout_errors()
        rollouts = done.rollouts or the_plan.rollouts
        rollouts_failed = self._rollouts.report(rollouts, revision, done.memory_errors or [])
        failed = len(done.report.failed)
        applied = len(done.report.results) - failed
        self.board.record_actions(ok=applied, failed=failed)
        # what the plan could not carry out (no host has room, a held rolling update) fails
        # the pass as a failed action would: the page and /status must not say "ok"
        unplanned = [diagnostic_line(d) for d in the_plan.problems if d.is_error]
        ok = failed == 0 and not the_plan.unreachable and not rollouts_failed and not unplanned
        if failed == 0:
            self._record_revision(live, revision)
        duration = time.monotonic() - started
        self.metrics.observe_duration(duration)
        self.board.set_pending(0 if failed == 0 else failed)
        self.board.sync_finished(
            ok=ok, duration=duration, applied_revision=revision if failed == 0 else None
        )
        if ok and not self._source.invalid:  # an invalid revision stays reported
            self.board.clear_error()
            self.metrics.set_last_successful_sync()
        elif failed:
            self._record_error("apply", f"{failed} action(s) failed")
        elif unplanned:
            self._record_error("plan", f"{len(unplanned)} error(s) in the plan", unplanned)
        self.report.finished(
            reason=reason,
            revision=revision,
            manifests=manifests,
            desired=wanted,
            plan=the_plan,
            report=done.report,
            before=live,
            after=self._looks.after() if done.report.results else live,
            duration=duration,
            ok=ok,
        )
        log.info(
            "pass done: revision %s, %d applied, %d failed, %.2fs",
            revision or "(none)",
            applied,
            failed,
            duration,
            extra={"revision": revision},
        )
        return PassOutcome(
            ok,
            revision,
            applied,
            failed,
            rolling=rollouts.in_progress,
            rollouts_failed=rollouts_failed,
        )

    def _plan_only(self, reason: str, started: float) -> PassOutcome:
        """A pass that stops after planning: what resuming would do, for the page."""
        desired = self._source.fetch()
        if desired is None:
            return PassOutcome(ok=False, error="no valid manifests yet")
        manifests, revision = desired
        config = self.config
        live, memory, now = self._looks.before(None, counted=False)
        wanted, the_plan = make_plan(
            manifests,
            list(config.hosts),
            live,
            config.settings,
            prune=config.prune,
            host_memory=memory,
            now=now,
        )
        self.board.set_pending(len(the_plan.actions))
        self.report.finished(
            reason=f"{reason} (suspended: planned only)",
            revision=revision,
            manifests=manifests,
            desired=wanted,
            plan=the_plan,
            report=None,
            before=live,
            after=live,
            duration=time.monotonic() - started,
            ok=True,
        )
        return PassOutcome(ok=True, revision=revision)

    def _on_result(self, result: ActionResult) -> None:
        action = result.action
        if result.ok and action.verb in _REMOVING_VERBS:
            self._own.add(c.id for c in action.live)
        self.metrics.action(action.verb.value, "ok" if result.ok else "failed")
        target = f"{action.owner.kind}/{action.owner.namespace}/{action.owner.name}"
        extra = {"host": action.host, "object": target, "pod": action.pod}
        if result.ok:
            log.info(
                "%s %s pod %s on %s",
                action.verb.value,
                target,
                action.pod,
                action.host,
                extra=extra,
            )
        else:
            log.error(
                "%s %s pod %s on %s failed: %s (%s)",
                action.verb.value,
                target,
                action.pod,
                action.host,
                result.error,
                action.source,
                extra=extra,
            )

    def _record_revision(self, live: dict[str, Any], revision: str) -> None:
        """Mark each reachable host with the revision now applied (only when it changed)."""
        if not revision:
            return
        for name, state in live.items():
            if state.reachable and state.applied_revision != revision:
                try:
                    self.runtimes[name].record_revision(revision, self.config.settings.infra_image)
                except Exception as exc:  # costs only the marker
                    log.warning("host %s: cannot record revision: %s", name, exc)

    def _record_error(self, kind: str, message: str, details: Sequence[str] = ()) -> None:
        self.metrics.sync_error(kind)
        self.board.set_error(kind, message, list(details))
        log.error("%s: %s", kind, message)
        if kind == "git":  # the others are announced by the pass, with more to say
            self.report.failed(kind, message)


def _summary(reasons: Sequence[str]) -> str:
    """The distinct reasons, the first few by name: a mass removal by hand is hundreds of
    events, and the "pass:" log line should stay a line."""
    distinct = list(dict.fromkeys(reasons))
    more = len(distinct) - _MAX_REASONS
    text = ", ".join(distinct[:_MAX_REASONS])
    return f"{text} and {more} more" if more > 0 else text
