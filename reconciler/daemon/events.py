"""What the service tells people about: :class:`Event` values and the :class:`Announcer`.

The loop notices seven things worth telling (:data:`EVENT_KINDS`): a revision applied, a
pass that failed, a revision held back (invalid or not signed by an allowed key), a rollout
that failed, drift healed (containers brought back to the revision already applied), and a
host lost or back. Each becomes one :class:`Event`, which the :class:`Announcer` hands to
three places at once: the status board (the page's "recent events"), the log, and the
notifier (``--notify``).

A failure that persists (a missing image, a held revision, a host that stays down) would
otherwise be announced on every pass: the announcer drops an event equal in kind and summary
to one it announced less than :data:`REPEAT_AFTER` seconds ago, so a receiver hears of a
problem when it starts, again every ten minutes while it lasts, and when something changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

log = logging.getLogger(__name__)

SYNC_APPLIED: Final = "sync_applied"
SYNC_FAILED: Final = "sync_failed"
REVISION_HELD: Final = "revision_held"
ROLLOUT_FAILED: Final = "rollout_failed"
DRIFT_HEALED: Final = "drift_healed"
HOST_LOST: Final = "host_lost"
HOST_BACK: Final = "host_back"
EVENT_KINDS: Final = (
    SYNC_APPLIED,
    SYNC_FAILED,
    REVISION_HELD,
    ROLLOUT_FAILED,
    DRIFT_HEALED,
    HOST_LOST,
    HOST_BACK,
)
#: How severe each kind is, for the page's colours and a receiver's routing.
SEVERITY: Final[Mapping[str, str]] = {
    SYNC_APPLIED: "info",
    SYNC_FAILED: "error",
    REVISION_HELD: "error",
    ROLLOUT_FAILED: "error",
    DRIFT_HEALED: "warning",
    HOST_LOST: "error",
    HOST_BACK: "info",
}
#: Seconds before an event equal to one already announced is announced again.
REPEAT_AFTER: Final = 600.0
#: Detail lines an event carries at most (its summary says how many there were).
MAX_DETAILS: Final = 20


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened: a kind of :data:`EVENT_KINDS`, a one-line summary without
    links, and the detail lines (actions, ``file:line`` errors) behind it."""

    kind: str
    summary: str
    instance: str
    revision: str = ""
    time: float = field(default_factory=time.time)
    details: tuple[str, ...] = ()
    host: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; expected one of {EVENT_KINDS}")

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of a notification, and the board's record."""
        moment = datetime.fromtimestamp(self.time, UTC)
        return {
            "kind": self.kind,
            "severity": self.severity,
            "instance": self.instance,
            "revision": self.revision,
            "time": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "summary": self.summary,
            "details": list(self.details[:MAX_DETAILS]),
            "host": self.host,
        }


def event(
    kind: str,
    summary: str,
    instance: str,
    revision: str = "",
    details: Sequence[str] = (),
    host: str = "",
) -> Event:
    """An :class:`Event` with its details capped at :data:`MAX_DETAILS`."""
    lines = tuple(details)
    if len(lines) > MAX_DETAILS:
        lines = lines[: MAX_DETAILS - 1] + (f"... and {len(lines) - MAX_DETAILS + 1} more",)
    return Event(kind, summary, instance, revision, details=lines, host=host)


class Announcer:
    """Hands each new event to the board, the log and the notifier; drops repeats.

    ``record`` and ``send`` are the board's and the notifier's entry points; both must
    return at once (the notifier only queues), since the loop calls this mid-pass.
    """

    def __init__(
        self,
        record: Callable[[Mapping[str, Any]], None],
        send: Callable[[Event], None] | None = None,
        repeat_after: float = REPEAT_AFTER,
    ) -> None:
        self._record = record
        self._send = send
        self.repeat_after = repeat_after
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def announce(self, item: Event) -> bool:
        """Announce ``item`` unless the same was announced recently; whether it was."""
        key = (item.kind, item.summary)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.repeat_after:
                log.debug("not announced again: %s", item.summary)
                return False
            self._last[key] = now
            if len(self._last) > 1000:  # forget the oldest half; repeats cost one message
                for old in sorted(self._last, key=self._last.__getitem__)[:500]:
                    del self._last[old]
        self._record(item.as_dict())
        level = logging.INFO if item.severity == "info" else logging.WARNING
        log.log(level, "event %s: %s", item.kind, item.summary, extra={"revision": item.revision})
        if self._send is not None:
            self._send(item)
        return True
