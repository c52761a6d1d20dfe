"""Notifications (``daemon.notify``, ``daemon.events``) against a real receiver on 127.0.0.1.

The notifier POSTs over real HTTP to ``receiver.Receiver`` (``http.server``), which records
bodies and answers 200, 500 or hangs on demand. No mocks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.daemon import events as E
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.notify import Notifier, body, check_url, shown_url, slack_text

from .daemon_http.client import metric
from .receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def applied(summary: str = "applied abc123: 2 create") -> E.Event:
    return E.event(E.SYNC_APPLIED, summary, "prod", "abc123", ["create RC/web pod web-0 on h1"])


def counts(metrics: Metrics) -> dict[str, float]:
    text = metrics.render().decode()
    return {
        result: metric(text, "reconciler_notifications_total", result=result)
        for result in ("sent", "retried", "failed", "dropped")
    }


def test_an_event_is_posted_as_json(receiver: Receiver) -> None:
    metrics = Metrics()
    notifier = Notifier([receiver.url], "json", metrics.notification)
    notifier.send(applied())
    got = receiver.wait_for("sync_applied")
    notifier.close()
    assert got["instance"] == "prod" and got["revision"] == "abc123"
    assert got["summary"] == "applied abc123: 2 create"
    assert got["details"] == ["create RC/web pod web-0 on h1"]
    assert got["severity"] == "info" and got["time"].endswith("Z")
    assert counts(metrics)["sent"] == 1


def test_slack_bodies_have_text_and_escape_manifest_markup(receiver: Receiver) -> None:
    item = E.event(
        E.REVISION_HELD,
        "revision abc held (invalid): <script>x</script> & <!channel>",
        "prod",
        details=["web.yaml:3:1: error: <http://evil.example|click me>"],
    )
    notifier = Notifier([receiver.url], "slack")
    notifier.send(item)
    got = receiver.wait_for("revision_held")
    notifier.close()
    text = got["text"]
    assert "&lt;script&gt;x&lt;/script&gt; &amp; &lt;!channel&gt;" in text
    assert "<http://evil.example|click me>" not in text and "&lt;http://evil" in text
    assert text.startswith(":x: *prod*:")
    assert got["reconciler"]["kind"] == "revision_held"
    assert slack_text(item) == text


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(receiver: Receiver) -> None:
    metrics = Metrics()
    receiver.answer = 500
    notifier = Notifier([receiver.url], "json", metrics.notification, attempts=3, backoff=0.05)
    notifier.send(applied())
    deadline = time.monotonic() + 10
    while counts(metrics)["failed"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    notifier.close()
    assert receiver.attempts == 3
    assert counts(metrics) == {"sent": 0, "retried": 2, "failed": 1, "dropped": 0}


def test_a_receiver_that_recovers_gets_the_event(receiver: Receiver) -> None:
    metrics = Metrics()
    receiver.answer = 503
    notifier = Notifier([receiver.url], "json", metrics.notification, attempts=4, backoff=0.2)
    notifier.send(applied())
    time.sleep(0.1)
    receiver.answer = 200
    receiver.wait_for("sync_applied")
    notifier.close()
    assert counts(metrics)["sent"] == 1 and counts(metrics)["retried"] >= 1


def test_a_client_error_is_not_retried(receiver: Receiver) -> None:
    metrics = Metrics()
    receiver.answer = 404  # a revoked hook: retrying cannot help
    notifier = Notifier([receiver.url], "json", metrics.notification, attempts=4, backoff=0.05)
    notifier.send(applied())
    deadline = time.monotonic() + 10
    while counts(metrics)["failed"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    notifier.close()
    assert receiver.attempts == 1 and counts(metrics)["retried"] == 0


def test_a_hanging_receiver_never_blocks_send_and_overflow_is_dropped(
    receiver: Receiver,
) -> None:
    metrics = Metrics()
    receiver.hang.set()
    other = Receiver()
    try:
        notifier = Notifier(
            [receiver.url, other.url], "json", metrics.notification, timeout=30, queue_size=2
        )
        for n in range(6):
            notifier.send(applied(f"applied {n}"))  # a blocking send would hang here
            # the healthy receiver gets each one while the other hangs on the first
            deadline = time.monotonic() + 10
            while len(other.bodies) < n + 1:
                assert time.monotonic() < deadline, f"only {len(other.bodies)} delivered"
                time.sleep(0.01)
        assert receiver.bodies == [] and receiver.attempts == 1
        # to the hanging one: 1 in flight, 2 queued, 3 dropped, and send() never waited
        assert counts(metrics) == {"sent": 6, "retried": 0, "failed": 0, "dropped": 3}
    finally:
        receiver.release.set()
        notifier.close()
        other.close()


def test_receiver_urls_are_checked_and_never_shown_whole() -> None:
    assert check_url("https://hooks.slack.com/services/T0/B0/SECRET") is None
    assert "expected an http" in str(check_url("ftp://example.com/x"))
    assert "expected an http" in str(check_url("hooks.slack.com/x"))
    shown = shown_url("https://hooks.slack.com/services/T0/B0/SECRET")
    assert shown == "https://hooks.slack.com/…" and "SECRET" not in shown
    assert shown_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_events_have_a_closed_set_of_kinds_and_capped_details() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        E.Event("sync_maybe", "x", "prod")
    item = E.event(E.SYNC_FAILED, "s", "prod", details=[f"line {n}" for n in range(50)])
    assert len(item.details) == E.MAX_DETAILS and item.details[-1] == "... and 31 more"
    assert body(item, "json").startswith(b'{"kind": "sync_failed"')


def test_the_announcer_drops_repeats_but_not_changes() -> None:
    recorded: list[dict[str, Any]] = []
    sent: list[E.Event] = []
    announcer = E.Announcer(recorded.append, sent.append, repeat_after=60)
    assert announcer.announce(E.event(E.HOST_LOST, "host h2 unreachable: refused", "prod"))
    assert not announcer.announce(E.event(E.HOST_LOST, "host h2 unreachable: refused", "prod"))
    assert announcer.announce(E.event(E.HOST_BACK, "host h2 answers again", "prod"))
    assert [r["kind"] for r in recorded] == ["host_lost", "host_back"]
    assert [e.kind for e in sent] == ["host_lost", "host_back"]
    again = E.Announcer(recorded.append, repeat_after=0)
    assert again.announce(E.event(E.HOST_LOST, "x", "prod"))
    assert again.announce(E.event(E.HOST_LOST, "x", "prod"))


def test_close_does_not_wait_for_a_hanging_receiver(receiver: Receiver) -> None:
    receiver.hang.set()
    notifier = Notifier([receiver.url], "json", timeout=30)
    notifier.send(applied())
    time.sleep(0.2)
    closer = threading.Thread(target=notifier.close, kwargs={"timeout": 0.5})
    closer.start()
    closer.join(10)
    assert not closer.is_alive()
