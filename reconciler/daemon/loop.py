"""The long-lived GitOps service: ``reconciler run``.

Level-triggered: every pass does the same thing whatever woke it — fetch the source,
validate, observe every host, plan, apply — so a missed event costs at most one resync
interval. What wakes a pass:

- the poll interval (git sources) and the resync interval (always);
- a webhook (``POST /hooks/git``), handled by ``httpapi``;
- a file change in a watched directory source (watchdog, debounced, editor files ignored);
- a Docker event: one of our containers died or was removed (one event stream per host).
  Not the pass's own: the containers a pass removed itself (prune, recreate, rollout) die
  and are destroyed as it goes, and those events are ignored (by container id, see
  :class:`OwnRemovals`), so that a pass that removes pods is not followed by a second,
  no-op pass. A container killed or removed by anyone else still wakes a pass.

An invalid revision is never applied: the last valid manifests stay in force (and keep
self-healing drift) until a valid revision arrives. Git or host failures are retried with
exponential backoff and jitter. SIGTERM/SIGINT stop taking work; the pass in progress
finishes its current actions (each bounded by Docker's timeouts) and the process exits.
Pods are created all-or-nothing and always labelled, so even ``kill -9`` mid-apply leaves
nothing a restart would not find and converge.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.apply.converge import (
    connect,
    converge,
    load_source,
    make_plan,
    observe_and_remember,
    source_revision,
)
from reconciler.apply.execute import ActionResult
from reconciler.core import labels as L
from reconciler.core.errors import InputError, SourceError, SourceUnavailable
from reconciler.core.model import Manifest
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.server import Server, serve
from reconciler.daemon.http.status import StatusBoard
from reconciler.desire.hostmemory import HostRecord
from reconciler.desire.settings import Settings
from reconciler.engine.host import DockerHost
from reconciler.plan.guards import Limits, refusals
from reconciler.plan.model import Verb
from reconciler.render.diagnostics import diagnostic_line
from reconciler.source.git import Checkout, GitSource, sync
from reconciler.source.hosts import Host

log = logging.getLogger(__name__)

#: Editor droppings and VCS internals that must not trigger a pass in a watched directory.
_IGNORED_FILES = re.compile(r"(^|/)(\.git/|\.#|#.*#$|.*~$|.*\.sw[a-z]$|4913$|\.~lock)")
_DEBOUNCE = 0.3  # seconds of quiet after the last file event before a pass starts
_EVENT_GAP = 1.0  # at most one Docker-event-triggered pass per second (crash loops)
#: How long after the end of a pass the events of the containers it removed are still known
#: as its own. Docker ids are never reused, so this only bounds memory and how late an
#: event may arrive (a loaded engine delivers them late, never this late).
_OWN_EVENTS_TTL = 30.0
#: Verbs whose action removes the containers in ``Action.live`` (and so makes them emit
#: kill, die, stop and destroy events). START is not one: a started container that dies
#: again must wake a pass.
_REMOVING_VERBS = (Verb.REMOVE, Verb.RECREATE)
_MAX_REASONS = 5  # distinct trigger reasons named in the "pass:" log line


@dataclass
class RunConfig:
    """Everything ``reconciler run`` was told (flags > RECONCILER_* env > config file)."""

    source: str
    branch: str = ""
    path: str = ""
    interval: float = 30.0
    resync: float = 60.0
    listen: str = "127.0.0.1:9477"
    hosts: Sequence[Host] = ()
    instance: str = L.DEFAULT_INSTANCE
    settings: Settings = field(default_factory=Settings)
    webhook_secret: str = ""
    once: bool = False
    cache_dir: Path | None = None
    state_dir: Path | None = None
    concurrency: int = 8
    prune: bool = True
    max_prune: int = 20
    allow_mass_prune: bool = False
    grace_seconds: int = 10
    git_timeout: float = 60.0
    stop_timeout: float = 30.0

    @property
    def is_git(self) -> bool:
        """A URL, or a path to a bare repository, is fetched with git; a plain directory
        is read (and watched) in place."""
        if re.match(r"^[a-z+]+://", self.source) or re.match(r"^[\w.-]+@[\w.-]+:", self.source):
            return True
        directory = Path(self.source)
        return (directory / "HEAD").is_file() and (directory / "objects").is_dir()


@dataclass
class PassOutcome:
    """What one pass did, for ``--once`` and for tests."""

    ok: bool
    revision: str = ""
    applied: int = 0
    failed: int = 0
    error: str = ""


class Backoff:
    """Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped, reset on success."""

    def __init__(self, base: float = 1.0, cap: float = 60.0) -> None:
        self.base, self.cap, self.failures = base, cap, 0

    def failed(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def succeeded(self) -> None:
        self.failures = 0


class OwnRemovals:
    """Ids of the containers that passes removed, so that their Docker events (the echo of
    the pass's own work) do not wake another pass.

    An id is added when its removing action succeeded (a failed action's events still wake
    a pass: a retry). It counts as the pass's own until the pass ends, then for ``ttl``
    seconds more (:meth:`settle`). Only ids, never names: a recreated container keeps its
    name under a new id, and someone killing that one must still be noticed. Thread-safe:
    the apply threads add, the event threads and the loop ask.
    """

    def __init__(self, ttl: float = _OWN_EVENTS_TTL) -> None:
        self.ttl = ttl
        self._until: dict[str, float] = {}  # id -> monotonic expiry (inf while in a pass)
        self._lock = threading.Lock()

    def add(self, container_ids: Iterable[str]) -> None:
        with self._lock:
            for container_id in container_ids:
                if container_id:
                    self._until[container_id] = math.inf

    def settle(self, now: float | None = None) -> None:
        """The pass ended: its ids expire ``ttl`` seconds from now; expired ones go."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for container_id, until in list(self._until.items()):
                if until == math.inf:
                    self._until[container_id] = now + self.ttl
                elif until <= now:
                    del self._until[container_id]

    def __contains__(self, container_id: object) -> bool:
        with self._lock:
            until = self._until.get(str(container_id))
        return until is not None and until > time.monotonic()

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)


@dataclass(frozen=True, slots=True)
class _Trigger:
    """Why a pass should run; ``container`` is the id a Docker event was about."""

    reason: str
    container: str = ""


class ReconcileService:
    """The loop, its triggers, and the HTTP side (status, metrics, webhook)."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.board = StatusBoard()
        self.metrics = Metrics()
        self.runtimes: dict[str, DockerHost] = connect(
            list(config.hosts), config.instance, "", grace_seconds=config.grace_seconds
        )
        self._wake = threading.Condition()
        self._reasons: list[_Trigger] = []
        self._own = OwnRemovals()
        self._stopping = threading.Event()
        self._suspended = False
        self._last_good: tuple[list[Manifest], str] | None = None
        self._memory: dict[str, HostRecord] = {}  # host memory when no state dir is set
        self._desired_invalid = False  # the newest revision failed validation
        self._git_backoff = Backoff(cap=max(config.interval, 1.0))
        self._next_fetch = 0.0
        self._threads: list[threading.Thread] = []
        self._server: Server | None = None
        self._observer: Any = None
        self._event_streams: list[Any] = []
        self.passes = 0
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

    def _is_own(self, trigger: _Trigger) -> bool:
        return bool(trigger.container) and trigger.container in self._own

    def _ignore_own(self, triggers: list[_Trigger]) -> list[str]:
        """The reasons to act on: every trigger but the events of containers a pass
        removed itself. Asked when the loop takes them, after the pass that queued them
        during its run ended, so that every id it removed is known by then."""
        reasons = []
        for trigger in triggers:
            if self._is_own(trigger):
                self.board.count("own_events_ignored")
                log.debug("ignored: %s (a container a pass removed)", trigger.reason)
            else:
                reasons.append(trigger.reason)
        return reasons

    def _on_webhook(self, reason: str) -> None:
        self._next_fetch = 0.0  # fetch at once, whatever the poll interval says
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
        log.info("serving /healthz /readyz /metrics /status /hooks/git on %s", self._server.url)

    def _start_watch(self) -> None:
        """Watch a directory source (watchdog), debounced; editor temp files ignored."""
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        service = self
        timer: list[threading.Timer] = []
        root = str(Path(self.config.source).resolve())

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                path = str(event.src_path)
                relative = path[len(root) :].lstrip("/") if path.startswith(root) else path
                if _IGNORED_FILES.search(relative):
                    return
                if timer:
                    timer[0].cancel()
                    timer.clear()
                pending = threading.Timer(_DEBOUNCE, service.trigger, args=(f"watch {relative}",))
                pending.daemon = True
                timer.append(pending)
                pending.start()

        observer = Observer()
        observer.schedule(Handler(), root, recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _start_events(self) -> None:
        """One thread per host following Docker events about our containers."""
        for name, runtime in self.runtimes.items():
            thread = threading.Thread(
                target=self._follow_events, args=(name, runtime), name=f"events-{name}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _follow_events(self, host: str, runtime: DockerHost) -> None:
        backoff = Backoff(cap=30.0)
        last = [0.0]
        deferred: list[threading.Timer] = []
        pending: list[_Trigger] = []  # events waiting for the end of the gap
        lock = threading.Lock()

        def fire() -> None:
            with lock:
                batch = list(pending)
                pending.clear()
                deferred.clear()
                last[0] = time.monotonic()
            self._trigger_all(batch)

        def on_event(trigger: _Trigger) -> None:
            """At most one pass per _EVENT_GAP; an event inside the gap is deferred to its
            end, never dropped (a kill is followed by a destroy a moment later). Every
            deferred event is handed on, each with its container: the loop drops those of
            a pass's own removals, and must still see someone else's among them."""
            with lock:
                pending.append(trigger)
                wait = last[0] + _EVENT_GAP - time.monotonic()
                if deferred:
                    return
                if wait > 0:
                    timer = threading.Timer(max(wait, 0.05), fire)
                    timer.daemon = True
                    deferred.append(timer)
                    timer.start()
                    return
            fire()

        while not self._stopping.is_set():
            try:
                stream = runtime.container_events(["die", "destroy", "stop", "kill", "oom"])
                self._event_streams.append(stream)
                backoff.succeeded()
                for event in stream:
                    if self._stopping.is_set():
                        break
                    actor = event.get("Actor") or {}
                    labels = actor.get("Attributes") or {}
                    if labels.get(L.ROLE) == L.ROLE_STATE:
                        continue
                    trigger = _Trigger(
                        f"event {event.get('Action')} {labels.get('name', '')}",
                        str(event.get("id") or actor.get("ID") or ""),
                    )
                    if self._is_own(trigger):  # known already: not even a gap to wait
                        self.board.count("own_events_ignored")
                        continue
                    on_event(trigger)
            except Exception as exc:  # engine gone or stream broken: retry later
                log.debug("events from %s: %s", host, exc)
            self._stopping.wait(backoff.failed())

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped (or one pass with ``once``); the exit code."""
        if self.config.once:
            return 0 if self.run_pass("once").ok else 1
        self._install_signals()
        self._start_http()
        if not self.config.is_git:
            self._start_watch()
        self._start_events()
        next_resync = 0.0
        try:
            self.trigger("start")
            while not self._stopping.is_set():
                timeout = next_resync - time.monotonic()
                if self.config.is_git:
                    timeout = min(timeout, self._next_fetch - time.monotonic())
                reasons = self._wait(timeout)
                if self._stopping.is_set():
                    break
                now = time.monotonic()
                due_fetch = self.config.is_git and now >= self._next_fetch
                if not reasons and now < next_resync and not due_fetch:
                    continue
                if self._suspended:
                    next_resync = now + self.config.resync
                    continue
                if not reasons and now < next_resync:
                    # only the poll is due: a full pass only when the commit moved
                    before = self._last_good[1] if self._last_good else None
                    fetched = self._fetch()
                    if fetched is not None and fetched[1] == before:
                        continue
                    reasons = ["poll: new revision"]
                self.run_pass(_summary(reasons) or "resync")
                next_resync = time.monotonic() + self.config.resync
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
        for stream in self._event_streams:
            with contextlib.suppress(Exception):
                stream.close()
        for runtime in self.runtimes.values():
            runtime.close()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: Any) -> None:
            log.info("signal %s: finishing the current pass, then exiting", signum)
            self.stop()
            # a second signal, or a pass that overruns the bound, ends the process
            signal.signal(signum, signal.SIG_DFL)
            timer = threading.Timer(self.config.stop_timeout, _exit_now)
            timer.daemon = True
            timer.start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- one pass ----------------------------------------------------------------------------
    def _fetch(self) -> tuple[list[Manifest], str] | None:
        """The manifests to enforce now and their revision; None when there are none yet."""
        config = self.config
        now = time.monotonic()
        if config.is_git and now < self._next_fetch and self._last_good is not None:
            return self._last_good  # between polls: enforce what we have
        directory: Path
        revision: str
        if config.is_git:
            try:
                source = GitSource(
                    config.source,
                    ref=config.branch,
                    path=config.path,
                    **({"cache_dir": config.cache_dir} if config.cache_dir else {}),
                )
                checkout: Checkout = sync(source, timeout=config.git_timeout)
            except SourceUnavailable as exc:
                delay = self._git_backoff.failed()
                self._next_fetch = time.monotonic() + delay
                self._record_error("git", f"{exc} (retry in {delay:.1f}s)")
                return self._last_good
            except SourceError as exc:
                self._next_fetch = time.monotonic() + config.interval
                self._record_error("git", str(exc))
                return self._last_good
            self._git_backoff.succeeded()
            self._next_fetch = time.monotonic() + config.interval
            directory, revision = checkout.manifests, checkout.revision[:12]
        else:
            directory = Path(config.source) / config.path
            revision = source_revision([str(directory)])
        same = self._last_good is not None and revision == self._last_good[1]
        if config.is_git and revision and same:
            return self._last_good  # same commit: nothing to reload
        try:
            validation, _ = load_source([str(directory)])
        except InputError as exc:
            self._record_error("validation", str(exc))
            return self._last_good
        self.board.set_desired_revision(revision)
        self.metrics.set_validation_errors(len(validation.errors))
        self._desired_invalid = not validation.valid
        if not validation.valid:
            lines = [diagnostic_line(d) for d in validation.errors]
            self._record_error(
                "validation",
                f"revision {revision or '(working tree)'} is invalid: {len(lines)} error(s); "
                f"still enforcing {self._last_good[1] if self._last_good else 'nothing'}",
                details=lines,
            )
            for line in lines[:20]:
                log.error("%s", line, extra={"revision": revision})
            return self._last_good
        self._last_good = (validation.manifests, revision)
        return self._last_good

    def run_pass(self, reason: str) -> PassOutcome:
        """One level-triggered pass: fetch → validate → observe → plan → apply."""
        started = time.monotonic()
        self.passes += 1
        self.board.sync_started()
        log.info("pass: %s", reason)
        desired = self._fetch()
        if desired is None:
            self.board.sync_finished(ok=False, duration=time.monotonic() - started)
            return PassOutcome(ok=False, error="no valid manifests yet")
        manifests, revision = desired
        config = self.config
        for runtime in self.runtimes.values():
            runtime.revision = revision
        live, memory, now = observe_and_remember(
            self.runtimes, config.instance, config.state_dir, self._memory
        )
        self._memory = memory
        for host, state in sorted(live.items()):
            self.board.set_host(host, state.reachable, state.error)
            if not state.reachable:
                self.metrics.sync_error("host")
                log.warning("host %s unreachable: %s", host, state.error, extra={"host": host})
        self.metrics.set_hosts({h: s.reachable for h, s in live.items()})
        self.metrics.set_objects_managed(sum(len(s.containers) for s in live.values()))
        _, the_plan = make_plan(
            manifests,
            list(config.hosts),
            live,
            config.settings,
            prune=config.prune,
            host_memory=memory,
            now=now,
        )
        refused = refusals(the_plan, Limits(config.max_prune, config.allow_mass_prune))
        if refused:
            message = "; ".join(refused.values()) + " (refused: --allow-mass-prune to force)"
            self._record_error("apply", message)
            self.board.sync_finished(ok=False, duration=time.monotonic() - started)
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
            )
        finally:
            self._own.settle()  # what this pass removed stays its own a while longer
        failed = len(done.report.failed)
        applied = len(done.report.results) - failed
        ok = failed == 0 and not the_plan.unreachable
        if failed == 0:
            self._record_revision(live, revision)
        duration = time.monotonic() - started
        self.metrics.observe_duration(duration)
        self.board.set_pending(0 if failed == 0 else failed)
        self.board.sync_finished(
            ok=ok, duration=duration, applied_revision=revision if failed == 0 else None
        )
        if ok and not self._desired_invalid:  # an invalid revision stays reported
            self.board.clear_error()
            self.metrics.set_last_successful_sync()
        elif failed:
            self._record_error("apply", f"{failed} action(s) failed")
        log.info(
            "pass done: revision %s, %d applied, %d failed, %.2fs",
            revision or "(none)",
            applied,
            failed,
            duration,
            extra={"revision": revision},
        )
        return PassOutcome(ok, revision, applied, failed)

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


def _summary(reasons: Sequence[str]) -> str:
    """The distinct reasons, the first few by name: a mass removal by hand is hundreds of
    events, and the "pass:" log line should stay a line."""
    distinct = list(dict.fromkeys(reasons))
    more = len(distinct) - _MAX_REASONS
    text = ", ".join(distinct[:_MAX_REASONS])
    return f"{text} and {more} more" if more > 0 else text


def _exit_now() -> None:
    import os

    log.error("did not stop in time: exiting")
    os._exit(1)


# -- logging --------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line, with revision, host and object when a record has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        for key in ("revision", "host", "object", "pod"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        return json.dumps(entry, sort_keys=False)


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("reconciler")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


__all__ = ["PassOutcome", "ReconcileService", "RunConfig", "setup_logging"]
