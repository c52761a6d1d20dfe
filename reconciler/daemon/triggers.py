"""What wakes a pass, apart from the clock: directory changes and Docker events.

The loop is level-triggered (every pass does the same whatever woke it), so a trigger only
says *when*, never *what*: a missed one costs at most a resync interval, and a burst of
them may be taken as one. This module holds the edges that feed the loop's queue and the
small state they need, each usable on its own:

- :func:`watch_directory`: file changes in a directory source (watchdog), debounced, editor
  droppings and VCS internals ignored;
- :class:`DockerEvents`: one thread per host following the die/destroy/stop/kill/oom and
  health_status events of our containers (:data:`FOLLOWED`, :func:`wakes`), at most one
  batch per :data:`_EVENT_GAP` and host, never dropping one;
- :class:`OwnRemovals`: the ids of containers the passes removed themselves, whose events
  (the echo of the pass's own work) must not wake another pass;
- :class:`Backoff`: the retry delays of the event streams and of the git fetch.

The webhook is the third edge; it lives on the HTTP side (``daemon.http``), which knows
nothing of the loop and calls back into it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.apply.runtime import ServiceRuntime
from reconciler.core import labels as L

log = logging.getLogger(__name__)

#: Editor droppings and VCS internals that must not trigger a pass in a watched directory.
#: Each alternative stays within one path component (``[^/]``), so a search costs one scan
#: of the path, however many components it has.
_IGNORED_FILES = re.compile(r"(^|/)(\.git/|\.#|#[^/]*#$|[^/]*~$|[^/]*\.sw[a-z]$|4913$|\.~lock)")
_DEBOUNCE = 0.3  # seconds of quiet after the last file event before a pass starts
_EVENT_GAP = 1.0  # at most one Docker-event-triggered pass per second (crash loops)
#: How long after the end of a pass the events of the containers it removed are still known
#: as its own. Docker ids are never reused, so this only bounds memory and how late an
#: event may arrive (a loaded engine delivers them late, never this late).
_OWN_EVENTS_TTL = 30.0


#: The Docker events of our containers that wake a pass: deaths and removals (healing), and
#: health changes (``health_status: healthy``...): a probe's verdict changed, so Service
#: endpoints or a restart may be due (docs/health.md).
FOLLOWED = ("die", "destroy", "stop", "kill", "oom", "health_status")
#: Roles of never-started bookkeeping containers: their comings and goings change nothing.
_BOOKKEEPING = (L.ROLE_STATE, L.ROLE_ROLLOUT, L.ROLE_ENDPOINTS, L.ROLE_TOOLS)
_SIGHUP = "1"


def wakes(action: str, attributes: Mapping[str, str]) -> bool:
    """Whether a Docker event about one of our containers should wake a pass: not the
    bookkeeping containers' (revision and rollout markers, forwarder records, the probe
    tools helper), and not the SIGHUP a forwarder reload sends (the pass's own doing,
    nothing died)."""
    if attributes.get(L.ROLE) in _BOOKKEEPING:
        return False
    return not (action == "kill" and attributes.get("signal") == _SIGHUP)


@dataclass(frozen=True, slots=True)
class _Trigger:
    """Why a pass should run; ``container`` is the id a Docker event was about."""

    reason: str
    container: str = ""
    #: (namespace, pod) when this is the ``die`` of one of a pod's app containers: a restart
    died: tuple[str, str] | None = None


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

    def echoes(self, trigger: _Trigger) -> bool:
        """Whether ``trigger`` is a Docker event about a container a pass removed itself."""
        return bool(trigger.container) and trigger.container in self

    def __contains__(self, container_id: object) -> bool:
        with self._lock:
            until = self._until.get(str(container_id))
        return until is not None and until > time.monotonic()

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)


def watch_directory(source: str, trigger: Callable[[str], None]) -> Any:
    """Watch a directory source (watchdog), debounced; editor temp files ignored.

    ``trigger("watch <path>")`` runs on a timer thread once the tree has been quiet for
    :data:`_DEBOUNCE` seconds. Returns the started observer: ``stop()`` it.
    """
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    timer: list[threading.Timer] = []
    root = str(Path(source).resolve())

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
            pending = threading.Timer(_DEBOUNCE, trigger, args=(f"watch {relative}",))
            pending.daemon = True
            timer.append(pending)
            pending.start()

    observer = Observer()
    observer.schedule(Handler(), root, recursive=True)
    observer.daemon = True
    observer.start()
    return observer


class DockerEvents:
    """One thread per host following Docker events about our containers.

    Each event becomes a :class:`_Trigger` carrying its container id, handed to ``deliver``
    in batches. An event whose container is already known as a pass's own (``own``) is
    dropped here and counted through ``ignored``; the loop drops the rest of the echo when
    it takes the batch, after the pass that removed them has recorded every id. A broken
    stream (engine gone) is reopened with backoff until ``stopping`` is set.
    """

    def __init__(
        self,
        runtimes: Mapping[str, ServiceRuntime],
        own: OwnRemovals,
        deliver: Callable[[Sequence[_Trigger]], None],
        ignored: Callable[[], None],
        stopping: threading.Event,
    ) -> None:
        self._runtimes = runtimes
        self._own = own
        self._deliver = deliver
        self._ignored = ignored
        self._stopping = stopping
        self._threads: list[threading.Thread] = []
        self._streams: list[Any] = []

    def start(self) -> None:
        """One daemon thread per host, named ``events-<host>``."""
        for name, runtime in self._runtimes.items():
            thread = threading.Thread(
                target=self._follow, args=(name, runtime), name=f"events-{name}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Close every open stream, which ends the blocked reads; ``stopping`` ends the rest."""
        for stream in self._streams:
            with contextlib.suppress(Exception):
                stream.close()

    def _follow(self, host: str, runtime: ServiceRuntime) -> None:
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
            self._deliver(batch)

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
                stream = runtime.container_events(FOLLOWED)
                self._streams.append(stream)
                backoff.succeeded()
                for event in stream:
                    if self._stopping.is_set():
                        break
                    actor = event.get("Actor") or {}
                    labels = actor.get("Attributes") or {}
                    if not wakes(str(event.get("Action", "")), labels):
                        continue
                    died = event.get("Action") == "die" and labels.get(L.ROLE) == L.ROLE_APP
                    trigger = _Trigger(
                        f"event {event.get('Action')} {labels.get('name', '')}",
                        str(event.get("id") or actor.get("ID") or ""),
                        (labels.get(L.POD_NAMESPACE, ""), labels.get(L.POD, "")) if died else None,
                    )
                    if self._own.echoes(trigger):  # known already: not even a gap to wait
                        self._ignored()
                        continue
                    on_event(trigger)
            except Exception as exc:  # engine gone or stream broken: retry later
                log.debug("events from %s: %s", host, exc)
            self._stopping.wait(backoff.failed())
