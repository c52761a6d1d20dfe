"""What ``reconciler run`` is doing, for ``/status`` and ``/readyz``: the :class:`StatusBoard`.

The loop writes what it learns into the board through small methods, one lock each; the
HTTP handlers read it back as a JSON-ready :meth:`StatusBoard.snapshot`. It is a module of
its own because it is the one piece of state both sides share: the loop never sees a
request, a handler never sees the loop, and this board (with :mod:`.metrics`) is all they
have in common.

Credentials written into URLs (``https://user:token@host``) are redacted on the way in, in
the source and in every error message, because git errors quote the remote; the redactor is
:func:`reconciler.core.redact.redact`, the one every output uses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from reconciler.core.redact import redact
from reconciler.daemon.http.overview import Overview

#: Validation errors kept for ``/status``: a broken repository can have thousands, and the
#: first screenful is what an operator reads; the total is kept beside them.
MAX_KEPT_VALIDATION_ERRORS: Final = 100


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _HostHealth:
    reachable: bool
    error: str
    last_seen: float | None  # the last time it answered


@dataclass
class _LastError:
    kind: str
    message: str
    at: float
    validation_errors: list[str] = field(default_factory=list)
    validation_error_count: int = 0


def _redacted(value: Any) -> Any:
    """Every string in a JSON-like value through the redactor (an image pull error can
    quote a registry URL with its credentials)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


class StatusBoard:
    """What the service is doing, written by the loop and read by the HTTP handlers.

    Every method takes one lock for a few assignments, so a handler never sees half of an
    update (say, a new desired revision with the old start time) and the loop never waits on
    a slow client. Times are wall-clock seconds (for display); durations come from the
    monotonic clock so that a clock step cannot make a pass last a negative time.

    The loop's calls, in the order a pass makes them::

        board.sync_started()
        board.set_desired_revision(sha)             # once fetched
        board.set_error(kind, message, lines)       # whenever a stage fails (git, validation…)
        board.set_host(name, reachable, error)      # per host, after observing
        board.set_pending(len(plan.actions))
        board.record_actions(ok=n, failed=m)
        board.set_rollouts({...})                   # each Deployment's rollout
        board.sync_finished(ok=..., applied_revision=sha)
        board.clear_error()                         # after a clean pass
    """

    def __init__(self, source: str = "", branch: str = "", path: str = "") -> None:
        self._lock = threading.Lock()
        self._started = time.time()
        self._source = (source, branch, path)
        self._desired_revision = ""
        self._applied_revision = ""
        self._sync_started: float | None = None
        self._sync_started_mono: float | None = None
        self._sync_finished: float | None = None
        self._sync_duration: float | None = None
        self._last_success: float | None = None
        self._last_result: str | None = None
        self._synced_once = False
        self._hosts: dict[str, _HostHealth] = {}
        self._pending: int | None = None
        self._last_error: _LastError | None = None
        self._suspended = False
        self._rollouts: dict[str, dict[str, Any]] = {}
        #: the world, pending plan, held revision, syncs and events (the page's data)
        self.overview = Overview()
        self._counters: dict[str, int] = {
            "syncs_started": 0,
            "syncs_succeeded": 0,
            "syncs_failed": 0,
            "errors": 0,
            "triggers": 0,
            "actions_ok": 0,
            "actions_failed": 0,
        }

    # -- written by the loop

    def set_source(self, source: str, branch: str = "", path: str = "") -> None:
        """Where manifests come from: a URL or a local path, the branch, the sub-path."""
        with self._lock:
            self._source = (source, branch, path)

    def sync_started(self, desired_revision: str | None = None) -> None:
        """A pass begins. The revision may be unknown until the fetch is done."""
        with self._lock:
            self._sync_started = time.time()
            self._sync_started_mono = time.monotonic()
            self._counters["syncs_started"] += 1
            if desired_revision is not None:
                self._desired_revision = desired_revision

    def set_desired_revision(self, revision: str) -> None:
        with self._lock:
            self._desired_revision = revision

    def set_host(self, name: str, reachable: bool, error: str = "") -> None:
        """One host's health from the last observation; ``last_seen`` moves only on success."""
        with self._lock:
            before = self._hosts.get(name)
            seen = time.time() if reachable else (before.last_seen if before else None)
            self._hosts[name] = _HostHealth(reachable, "" if reachable else redact(error), seen)

    def retain_hosts(self, names: Iterable[str]) -> None:
        """Forget hosts that left the hosts file, so ``/status`` does not show them forever."""
        keep = set(names)
        with self._lock:
            for name in [n for n in self._hosts if n not in keep]:
                del self._hosts[name]

    def set_pending(self, count: int) -> None:
        """Actions in the last plan: what a dry run would still do."""
        with self._lock:
            self._pending = count

    def record_actions(self, ok: int = 0, failed: int = 0) -> None:
        with self._lock:
            self._counters["actions_ok"] += ok
            self._counters["actions_failed"] += failed

    def count(self, name: str, by: int = 1) -> None:
        """Any other counter the loop wants to show under ``counters`` in ``/status``."""
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + by

    def set_error(self, kind: str, message: str, validation_errors: Sequence[str] = ()) -> None:
        """The latest problem, kept with its time until :meth:`clear_error`.

        ``kind`` is one of :data:`.metrics.SYNC_ERROR_KINDS`; ``validation_errors`` are
        ``file:line:col: message`` lines. Only the first :data:`MAX_KEPT_VALIDATION_ERRORS`
        are kept, with the total beside them.
        """
        with self._lock:
            self._last_error = _LastError(
                kind=kind,
                message=redact(message),
                at=time.time(),
                validation_errors=[
                    redact(e) for e in validation_errors[:MAX_KEPT_VALIDATION_ERRORS]
                ],
                validation_error_count=len(validation_errors),
            )
            self._counters["errors"] += 1

    def clear_error(self) -> None:
        """A clean pass: ``/status`` stops showing an error that no longer holds."""
        with self._lock:
            self._last_error = None

    def sync_finished(
        self, *, ok: bool, duration: float | None = None, applied_revision: str | None = None
    ) -> float:
        """A pass ended. Returns its duration in seconds: ``duration`` when given, else the
        monotonic time since :meth:`sync_started`.

        ``ok`` makes the service ready (``/readyz``) and sets the last successful sync time;
        ``applied_revision``, when given, is recorded whatever ``ok`` says (the loop decides
        what counts as applied, e.g. every action done but one host unreachable).
        """
        with self._lock:
            now = time.time()
            started = self._sync_started_mono
            if duration is None:
                duration = time.monotonic() - started if started is not None else 0.0
            duration = max(0.0, duration)
            self._sync_finished = now
            self._sync_duration = duration
            self._sync_started_mono = None
            self._last_result = "ok" if ok else "failed"
            if applied_revision is not None:
                self._applied_revision = applied_revision
            if ok:
                self._last_success = now
                self._synced_once = True
                self._counters["syncs_succeeded"] += 1
            else:
                self._counters["syncs_failed"] += 1
            return duration

    def set_suspended(self, suspended: bool) -> None:
        with self._lock:
            self._suspended = suspended

    def set_rollouts(self, rollouts: dict[str, dict[str, Any]]) -> None:
        """Each Deployment's rollout as of the last pass (``namespace/name`` -> its state,
        revision, counts, message and, while its template stays marked failed, the failure
        with its revision, file:line and reason). Replaces what was there."""
        with self._lock:
            self._rollouts = {name: _redacted(entry) for name, entry in rollouts.items()}

    # -- read by the handlers

    @property
    def suspended(self) -> bool:
        with self._lock:
            return self._suspended

    def readiness(self) -> tuple[bool, str]:
        """Ready once one pass has succeeded; before that, why not (for ``/readyz``).

        A later failure does not make the service unready: it still serves what it applied,
        and ``/status`` and the metrics say what went wrong.
        """
        with self._lock:
            if self._synced_once:
                return True, "ok"
            if self._last_error is not None:
                error = self._last_error
                return False, f"no successful sync yet; last error ({error.kind}): {error.message}"
            if self._sync_started_mono is not None:
                return False, "no successful sync yet; the first sync is running"
            return False, "no successful sync yet"

    def snapshot(self) -> dict[str, Any]:
        """Everything above as JSON-ready data, copied under the lock."""
        with self._lock:
            source, branch, path = self._source
            error = self._last_error
            return {
                "source": {"url": redact(source), "branch": branch, "path": path},
                "started": _iso(self._started),
                "suspended": self._suspended,
                "revision": {
                    "desired": self._desired_revision,
                    "applied": self._applied_revision,
                },
                "sync": {
                    "synced_once": self._synced_once,
                    "in_progress": self._sync_started_mono is not None,
                    "last_started": _iso(self._sync_started),
                    "last_finished": _iso(self._sync_finished),
                    "last_duration_seconds": self._sync_duration,
                    "last_result": self._last_result,
                    "last_successful": _iso(self._last_success),
                },
                "pending_changes": self._pending,
                "hosts": {
                    name: {
                        "reachable": h.reachable,
                        "error": h.error,
                        "last_seen": _iso(h.last_seen),
                    }
                    for name, h in sorted(self._hosts.items())
                },
                "last_error": None
                if error is None
                else {
                    "kind": error.kind,
                    "message": error.message,
                    "at": _iso(error.at),
                    "validation_errors": list(error.validation_errors),
                    "validation_error_count": error.validation_error_count,
                },
                "rollouts": {name: dict(entry) for name, entry in sorted(self._rollouts.items())},
                "counters": dict(self._counters),
            } | self.overview.snapshot()
