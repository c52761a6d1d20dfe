"""``--notify URL``: every event POSTed as JSON (or a Slack-compatible body) to receivers.

The rule that shapes this module: **a receiver never delays or fails a sync.** The loop
only calls :meth:`Notifier.send`, which puts the event on one bounded queue per receiver
and returns; one thread per receiver does the HTTP, so a receiver that hangs holds back
only its own queue, and a full queue drops the event (counted) instead of growing.

Delivery: a POST with a timeout (:data:`TIMEOUT` seconds per connect or read), retried
after a network error, a timeout, a 5xx, a 408 or a 429, with exponential back-off and
jitter (1 s, 2 s, 4 s), :data:`ATTEMPTS` tries in all; another 4xx is final (a revoked Slack
hook answers 404 forever). Redirects are not followed (a POST turned into a GET loses its
body; a receiver that moved should be reconfigured). Each outcome is counted in
``reconciler_notifications_total{result}``: ``sent``, ``retried``, ``failed``, ``dropped``.

A receiver's URL is often its credential (Slack's hook URLs are), so it is never shown
whole: logs and ``--print-config`` name it by scheme and host (:func:`shown_url`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from reconciler.daemon.events import Event

log = logging.getLogger(__name__)

FORMATS: Final = ("json", "slack")
TIMEOUT: Final = 5.0
ATTEMPTS: Final = 4
BACKOFF: Final = 1.0
QUEUE_SIZE: Final = 100
#: Statuses worth another try: the receiver is busy or briefly broken.
_RETRY_STATUSES: Final = frozenset({408, 425, 429})
_ICONS: Final = {"info": ":white_check_mark:", "warning": ":wrench:", "error": ":x:"}


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a receiver, or None: http(s) with a host, no blanks."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shown_url(url)}: expected an http:// or https:// URL"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return f"{shown_url(url)}: blanks or control characters in the URL"
    return None


def shown_url(url: str) -> str:
    """The URL as logs show it: scheme and host only (the rest may be the credential)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "<url>"
    port = f":{parts.port}" if parts.port else ""
    tail = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname}{port}{tail}"


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters: manifest text must not become a link or mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(item: Event) -> str:
    """The Slack message: an icon, the instance, the summary, the details as a list."""
    icon = _ICONS.get(item.severity, "")
    lines = [f"{icon} *{_slack_escape(item.instance)}*: {_slack_escape(item.summary)}"]
    lines += [f"• {_slack_escape(line)}" for line in item.details]
    return "\n".join(lines)


def body(item: Event, fmt: str) -> bytes:
    """The POST body of ``item``: the event's JSON, or ``{"text": ...}`` for Slack (plus the
    event itself under ``reconciler``, which Slack ignores and other chat hooks may use)."""
    data: dict[str, Any] = item.as_dict()
    if fmt == "slack":
        data = {"text": slack_text(item), "reconciler": data}
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx then surfaces as an HTTPError: final, reported


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, payload: bytes, timeout: float = TIMEOUT) -> tuple[bool, bool, str]:
    """One POST: (delivered, worth retrying, what happened)."""
    request = urllib.request.Request(
        url,
        data=payload,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "reconciler"},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return True, False, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code in _RETRY_STATUSES
        return False, retry, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, True, str(reason) or type(exc).__name__


class _Receiver:
    """One receiver: its queue and the thread that delivers from it."""

    def __init__(self, url: str, notifier: Notifier) -> None:
        self.url = url
        self.notifier = notifier
        self.queue: queue.Queue[Event | None] = queue.Queue(maxsize=notifier.queue_size)
        self.thread = threading.Thread(
            target=self._run, name=f"notify-{shown_url(url)}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            self.deliver(item)

    def deliver(self, item: Event) -> bool:
        notifier = self.notifier
        payload = body(item, notifier.fmt)
        what = ""
        for attempt in range(notifier.attempts):
            delivered, retry, what = post(self.url, payload, notifier.timeout)
            if delivered:
                notifier.count("sent")
                return True
            if not retry or attempt == notifier.attempts - 1:
                break
            notifier.count("retried")
            ceiling = notifier.backoff * 2**attempt
            if notifier.stopping.wait(random.uniform(ceiling / 2, ceiling)):
                break
        notifier.count("failed")
        log.warning("notification %s to %s failed: %s", item.kind, shown_url(self.url), what)
        return False


class Notifier:
    """One queue and thread per receiver URL; :meth:`send` never blocks."""

    def __init__(
        self,
        urls: Sequence[str],
        fmt: str = "json",
        count: Callable[[str], None] | None = None,
        *,
        timeout: float = TIMEOUT,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown notification format {fmt!r}; expected one of {FORMATS}")
        self.fmt = fmt
        self.count = count or (lambda _result: None)
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.queue_size = queue_size
        self.stopping = threading.Event()
        self._receivers = [_Receiver(url, self) for url in dict.fromkeys(urls)]

    def send(self, item: Event) -> None:
        """Queue ``item`` for every receiver; a full queue drops it (counted)."""
        for receiver in self._receivers:
            try:
                receiver.queue.put_nowait(item)
            except queue.Full:
                self.count("dropped")
                log.warning(
                    "notification %s to %s dropped: %d waiting already",
                    item.kind,
                    shown_url(receiver.url),
                    self.queue_size,
                )

    def close(self, timeout: float = 2.0) -> None:
        """Stop: what is queued gets ``timeout`` seconds in all to go out, then the threads
        (daemons) are left behind; no retry waits past this."""
        self.stopping.set()
        for receiver in self._receivers:
            with contextlib.suppress(queue.Full):
                receiver.queue.put_nowait(None)
        for receiver in self._receivers:
            receiver.thread.join(timeout=timeout / max(1, len(self._receivers)))
