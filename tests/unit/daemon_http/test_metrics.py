"""The ``reconciler_*`` series (``daemon.http.metrics``), as a scraper reads them from
``/metrics`` or straight from :meth:`Metrics.render`. No mocks."""

from __future__ import annotations

import pytest

from reconciler.daemon.http.metrics import (
    ACTIONS,
    METRICS_CONTENT_TYPE,
    SYNC_ERROR_KINDS,
    WEBHOOK_RESULTS,
    Metrics,
)

from .client import Start, metric, request, scrape


def test_metrics_exposes_every_series_with_zeroes_first(api: Start) -> None:
    a = api()
    resp = request(a.server, "GET", "/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == METRICS_CONTENT_TYPE
    text = resp.text
    for name in (
        "reconciler_reconcile_duration_seconds",
        "reconciler_actions_total",
        "reconciler_last_successful_sync_timestamp_seconds",
        "reconciler_hosts_up",
        "reconciler_objects_managed",
        "reconciler_validation_errors",
        "reconciler_sync_errors_total",
        "reconciler_suspended",
        "reconciler_webhook_requests_total",
    ):
        assert f"\n{name}" in text, name
    for action in ACTIONS:
        assert metric(text, "reconciler_actions_total", action=action, result="failed") == 0
    for kind in SYNC_ERROR_KINDS:
        assert metric(text, "reconciler_sync_errors_total", kind=kind) == 0
    for result in WEBHOOK_RESULTS:
        assert metric(text, "reconciler_webhook_requests_total", result=result) == 0


def test_metrics_show_what_was_recorded(api: Start) -> None:
    a = api()
    m = a.metrics
    m.observe_duration(0.3)
    m.observe_duration(42.0)
    m.action("create", "ok")
    m.action("create", "ok")
    m.action("remove", "failed")
    m.action("recreate", "ok", count=3)
    m.set_last_successful_sync(1_700_000_000.5)
    m.set_hosts({"h1": True, "h2": False, "h3": True})
    m.set_objects_managed(7)
    m.set_validation_errors(4)
    m.sync_error("git")
    m.sync_error("host")
    m.sync_error("host")
    m.set_suspended(True)

    text = scrape(a.server)
    assert metric(text, "reconciler_reconcile_duration_seconds_count") == 2
    assert metric(text, "reconciler_reconcile_duration_seconds_sum") == pytest.approx(42.3)
    assert metric(text, "reconciler_reconcile_duration_seconds_bucket", le="0.5") == 1
    assert metric(text, "reconciler_reconcile_duration_seconds_bucket", le="60.0") == 2
    assert metric(text, "reconciler_actions_total", action="create", result="ok") == 2
    assert metric(text, "reconciler_actions_total", action="remove", result="failed") == 1
    assert metric(text, "reconciler_actions_total", action="recreate", result="ok") == 3
    assert metric(text, "reconciler_actions_total", action="start", result="ok") == 0
    ts = metric(text, "reconciler_last_successful_sync_timestamp_seconds")
    assert ts == pytest.approx(1_700_000_000.5)
    assert metric(text, "reconciler_hosts_up") == 2
    assert metric(text, "reconciler_hosts", host="h1") == 1
    assert metric(text, "reconciler_hosts", host="h2") == 0
    assert metric(text, "reconciler_objects_managed") == 7
    assert metric(text, "reconciler_validation_errors") == 4
    assert metric(text, "reconciler_sync_errors_total", kind="git") == 1
    assert metric(text, "reconciler_sync_errors_total", kind="host") == 2
    assert metric(text, "reconciler_sync_errors_total", kind="apply") == 0
    assert metric(text, "reconciler_suspended") == 1

    # a host that leaves the hosts file leaves the metrics too
    m.set_hosts({"h1": False})
    text = scrape(a.server)
    assert metric(text, "reconciler_hosts_up") == 0
    assert metric(text, "reconciler_hosts", host="h1") == 0
    assert 'host="h2"' not in text and 'host="h3"' not in text


def test_metrics_reject_unknown_label_values() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="unknown action 'reboot'"):
        m.action("reboot", "ok")
    with pytest.raises(ValueError, match="unknown result"):
        m.action("create", "skipped")
    with pytest.raises(ValueError, match="unknown sync error kind"):
        m.sync_error("dns")
    with pytest.raises(ValueError):
        m.webhook_request("maybe")


def test_metrics_accept_str_enums_such_as_planning_verbs() -> None:
    from reconciler.plan.model import Verb

    m = Metrics()
    m.action(Verb.START, "ok")
    assert metric(m.render().decode(), "reconciler_actions_total", action="start", result="ok")


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.set_objects_managed(3)
    assert metric(first.render().decode(), "reconciler_objects_managed") == 3
    assert metric(second.render().decode(), "reconciler_objects_managed") == 0
    assert b"python_gc" not in first.render()  # nothing from the global registry


def test_every_plan_verb_is_an_action_label() -> None:
    from reconciler.plan.model import Verb

    assert set(ACTIONS) == {verb.value for verb in Verb}
