"""What the status page shows beyond the board's counters: the :class:`Overview`.

The loop writes, after each pass, the world as it observed it (hosts, workloads, pods,
Services: rows made by the pure :func:`reconciler.render.overview.world_rows`), the actions
still pending, the revision it holds back (invalid or unsigned) and the warnings of the one
in force; and, as they happen, the syncs and events. ``/status`` carries all of it next to
the board's own keys, the page (``/``) and ``reconciler status`` read it from there.

Kept apart from :class:`.status.StatusBoard` so that the board stays the small record of
readiness and counters the loop has always written, and so that the lists here can be
bounded in one place: a service runs for months, and a repository can hold thousands of
pods, so every list is capped (:data:`MAX_SYNCS`, :data:`MAX_EVENTS`, :data:`MAX_PENDING`,
:data:`MAX_POD_ROWS`) with its total beside it. Every text here comes from manifests or
from git, i.e. from whoever can commit: it is redacted on the way in (credentials in URLs),
and escaped on the way out by whoever renders it (the page only ever sets ``textContent``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from reconciler.core.redact import redact

MAX_SYNCS: Final = 20
MAX_EVENTS: Final = 100
MAX_PENDING: Final = 200
MAX_POD_ROWS: Final = 1000
MAX_HELD_ERRORS: Final = 100
MAX_WARNINGS: Final = 100


def _iso(timestamp: float | None) -> str | None:
    """RFC 3339 in UTC with milliseconds, as the board writes its times."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Overview:
    """The world, the pending plan, the held revision, recent syncs and events.

    Written by the loop, read by the handlers through :meth:`snapshot`; one lock, each
    method a few assignments. Values are JSON-ready dicts and lists made by the loop's pure
    renderers; this class only bounds, redacts, timestamps and copies them.
    """

    def __init__(self, instance: str = "") -> None:
        self._lock = threading.Lock()
        self._instance = instance
        self._world: dict[str, Any] = {
            "hosts": [],
            "workloads": [],
            "pods": [],
            "pods_total": 0,
            "services": [],
        }
        self._observed: float | None = None
        self._pending: list[dict[str, Any]] = []
        self._pending_total = 0
        self._held: dict[str, Any] | None = None
        self._warnings: list[str] = []
        self._warning_total = 0
        self._syncs: deque[dict[str, Any]] = deque(maxlen=MAX_SYNCS)
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._event_total = 0
        self._root = ""

    def set_root(self, root: str) -> None:
        """The directory manifests are read from (a clone, a watched directory): readers
        show file names relative to it (``apps/web.yaml:12:5``, not the clone's path)."""
        with self._lock:
            self._root = root.rstrip("/") + "/" if root else ""

    def set_instance(self, instance: str) -> None:
        with self._lock:
            self._instance = instance

    def set_world(self, world: Mapping[str, Any], observed: float | None = None) -> None:
        """``hosts``, ``workloads``, ``pods``, ``services`` rows; pods beyond
        :data:`MAX_POD_ROWS` are dropped here and counted in ``pods_total``."""
        pods = list(world.get("pods", ()))
        rows: dict[str, Any] = {key: list(value) for key, value in world.items() if key != "pods"}
        rows["pods"] = pods[:MAX_POD_ROWS]
        rows["pods_total"] = len(pods)
        with self._lock:
            self._world = rows
            self._observed = time.time() if observed is None else observed

    def set_pending(self, actions: Sequence[Mapping[str, Any]]) -> None:
        """The actions a dry run would still do (masked by the plan renderer)."""
        with self._lock:
            self._pending = [dict(a) for a in actions[:MAX_PENDING]]
            self._pending_total = len(actions)

    def hold(self, revision: str, kind: str, reason: str, errors: Sequence[str] = ()) -> None:
        """``revision`` is not applied: ``kind`` is ``invalid`` or ``signature``; ``errors``
        are ``file:line:col: message`` lines (or the signature check's words)."""
        with self._lock:
            since = (
                self._held["since_epoch"]
                if self._held is not None and self._held["revision"] == revision
                else time.time()
            )
            self._held = {
                "revision": revision,
                "kind": kind,
                "reason": redact(reason),
                "errors": [redact(e) for e in errors[:MAX_HELD_ERRORS]],
                "error_count": len(errors),
                "since_epoch": since,
            }

    def release(self) -> None:
        """The newest revision is applicable again: nothing is held."""
        with self._lock:
            self._held = None

    @property
    def held_revision(self) -> str | None:
        with self._lock:
            return None if self._held is None else str(self._held["revision"])

    def set_warnings(self, lines: Sequence[str]) -> None:
        """The warnings of the revision in force (fields not honoured...), with file:line."""
        with self._lock:
            self._warnings = [redact(line) for line in lines[:MAX_WARNINGS]]
            self._warning_total = len(lines)

    def record_sync(self, entry: Mapping[str, Any]) -> None:
        """One finished pass: ``revision``, ``reason``, ``result``, ``applied``, ``failed``,
        ``duration_seconds``, ``finished`` (epoch seconds)."""
        item = dict(entry)
        item["finished"] = _iso(float(item.get("finished") or time.time()))
        with self._lock:
            self._syncs.appendleft(item)

    def record_event(self, event: Mapping[str, Any]) -> None:
        """One event (``daemon.events.Event.as_dict``), newest first."""
        item = {key: redact(v) if isinstance(v, str) else v for key, v in event.items()}
        with self._lock:
            self._events.appendleft(item)
            self._event_total += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            held = None
            if self._held is not None:
                held = {k: v for k, v in self._held.items() if k != "since_epoch"}
                held["since"] = _iso(self._held["since_epoch"])
            world = {
                key: list(value) if isinstance(value, list) else value
                for key, value in self._world.items()
            }
            world["observed"] = _iso(self._observed)
            return {
                "instance": self._instance,
                "source_root": self._root,
                "world": world,
                "pending": {"actions": list(self._pending), "total": self._pending_total},
                "held": held,
                "warnings": {"lines": list(self._warnings), "total": self._warning_total},
                "syncs": list(self._syncs),
                "events": {"recent": list(self._events), "total": self._event_total},
            }
