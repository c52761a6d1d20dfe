"""The HTTP side of ``reconciler run``: a real server on 127.0.0.1, real HTTP requests.

No mocks: every test starts :func:`httpapi.serve` on port 0 through the ``api`` fixture,
which stops each server it started (and checks that the stop was quick), and talks to it
with ``http.client`` or ``urllib``. The callbacks are plain recorders.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.redact import redact
from reconciler.daemon.http import metrics as httpmetrics
from reconciler.daemon.http import server as httpapi
from reconciler.daemon.http import status as httpstatus
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.server import Server
from reconciler.daemon.http.status import StatusBoard
from reconciler.daemon.http.webhook import pushed_branch, pushed_ref, sign

SECRET = "s3cret-for-tests"
PUSH = {"ref": "refs/heads/main", "after": "0" * 40, "repository": {"name": "manifests"}}


@dataclass
class Api:
    """One running server with its board, metrics and what its callbacks received."""

    server: Server
    board: StatusBoard
    metrics: Metrics
    triggers: list[str] = field(default_factory=list)
    suspends: list[bool] = field(default_factory=list)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


Start = Callable[..., Api]


@pytest.fixture
def api() -> Iterator[Start]:
    """A factory of servers; every one it made is stopped after the test, within 1 s."""
    started: list[Server] = []

    def start(
        secret: str | None = SECRET,
        on_trigger: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> Api:
        board, metrics = StatusBoard("https://example.com/ops/manifests.git", "main"), Metrics()
        triggers: list[str] = []
        suspends: list[bool] = []

        def suspend(flag: bool) -> None:
            suspends.append(flag)
            board.set_suspended(flag)
            metrics.set_suspended(flag)

        server = httpapi.serve(
            "127.0.0.1",
            0,
            board,
            metrics,
            webhook_secret=secret,
            on_trigger=on_trigger or triggers.append,
            on_suspend=suspend,
            **kwargs,
        )
        started.append(server)
        return Api(server, board, metrics, triggers, suspends)

    yield start
    for server in started:
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 1.0


def request(
    server: Server,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def github(body: bytes, event: str = "push", secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": sign(secret, body),
    }


def push_body(payload: Mapping[str, Any] = PUSH) -> bytes:
    return json.dumps(payload).encode()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, found by name and exact labels."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def scrape(server: Server) -> str:
    resp = request(server, "GET", "/metrics")
    assert resp.status == 200
    return resp.text


# ----------------------------------------------------------------------- liveness, readiness


def test_healthz_answers_ok(api: Start) -> None:
    a = api()
    resp = request(a.server, "GET", "/healthz")
    assert (resp.status, resp.text) == (200, "ok\n")
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert request(a.server, "GET", "/healthz?verbose=1").status == 200


def test_head_is_get_without_a_body(api: Start) -> None:
    a = api()
    resp = request(a.server, "HEAD", "/healthz")
    assert resp.status == 200
    assert resp.body == b""
    assert resp.headers["Content-Length"] == "3"


def test_readyz_is_503_until_a_sync_succeeds(api: Start) -> None:
    a = api()
    resp = request(a.server, "GET", "/readyz")
    assert resp.status == 503
    assert "no successful sync yet" in resp.text

    a.board.sync_started()
    assert "first sync is running" in request(a.server, "GET", "/readyz").text

    a.board.set_error("validation", "revision abc is invalid: 2 error(s)")
    a.board.sync_finished(ok=False)
    resp = request(a.server, "GET", "/readyz")
    assert resp.status == 503
    assert "last error (validation): revision abc is invalid" in resp.text

    a.board.sync_started("abc")
    a.board.sync_finished(ok=True, applied_revision="abc")
    resp = request(a.server, "GET", "/readyz")
    assert (resp.status, resp.text) == (200, "ok\n")

    # a later failure does not take readiness away: what was applied still runs
    a.board.sync_started()
    a.board.set_error("git", "fetch failed")
    a.board.sync_finished(ok=False)
    assert request(a.server, "GET", "/readyz").status == 200


# ---------------------------------------------------------------------------------- metrics


def test_metrics_exposes_every_series_with_zeroes_first(api: Start) -> None:
    a = api()
    resp = request(a.server, "GET", "/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == httpmetrics.METRICS_CONTENT_TYPE
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
    for action in httpmetrics.ACTIONS:
        assert metric(text, "reconciler_actions_total", action=action, result="failed") == 0
    for kind in httpmetrics.SYNC_ERROR_KINDS:
        assert metric(text, "reconciler_sync_errors_total", kind=kind) == 0
    for result in httpmetrics.WEBHOOK_RESULTS:
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
    with pytest.raises(ValueError, match="unknown action 'restart'"):
        m.action("restart", "ok")
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


# ----------------------------------------------------------------------------------- status


def test_status_is_the_board_snapshot_as_json(api: Start) -> None:
    a = api()
    b = a.board
    b.set_source("https://bot:ghp_token123@github.com/ops/manifests.git", "main", "prod")
    b.sync_started()
    b.set_desired_revision("abc123")
    b.set_host("h1", True)
    b.set_host("h2", False, "connection refused")
    b.set_pending(3)
    b.record_actions(ok=2, failed=1)
    b.set_error(
        "validation",
        "fetch of https://bot:ghp_token123@github.com/x failed",
        ["web/rc.yaml:15:7: error: unknown field", "web/pod.yaml:3:1: error: bad name"],
    )
    b.sync_finished(ok=False, duration=1.25, applied_revision="abc123")

    resp = request(a.server, "GET", "/status")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    data = json.loads(resp.body)
    assert data == b.snapshot()
    assert data["source"] == {
        "url": "https://***@github.com/ops/manifests.git",
        "branch": "main",
        "path": "prod",
    }
    assert "ghp_token123" not in resp.text
    assert data["revision"] == {"desired": "abc123", "applied": "abc123"}
    assert data["sync"]["synced_once"] is False
    assert data["sync"]["last_result"] == "failed"
    assert data["sync"]["last_duration_seconds"] == 1.25
    assert data["sync"]["last_started"].endswith("Z")
    assert data["pending_changes"] == 3
    assert data["hosts"]["h1"]["reachable"] is True
    assert data["hosts"]["h1"]["last_seen"] is not None
    assert data["hosts"]["h2"] == {
        "reachable": False,
        "error": "connection refused",
        "last_seen": None,
    }
    assert data["last_error"]["kind"] == "validation"
    assert data["last_error"]["validation_errors"][0].startswith("web/rc.yaml:15:7")
    assert data["last_error"]["validation_error_count"] == 2
    assert data["counters"]["actions_ok"] == 2
    assert data["counters"]["syncs_failed"] == 1
    assert data["suspended"] is False

    b.sync_started()
    b.sync_finished(ok=True, applied_revision="def456")
    b.clear_error()
    b.retain_hosts(["h1"])
    data = json.loads(request(a.server, "GET", "/status").body)
    assert data["last_error"] is None
    assert data["sync"]["synced_once"] is True
    assert data["sync"]["last_successful"] is not None
    assert data["revision"]["applied"] == "def456"
    assert list(data["hosts"]) == ["h1"]


def test_host_last_seen_survives_an_outage() -> None:
    board = StatusBoard()
    board.set_host("h1", True)
    seen = board.snapshot()["hosts"]["h1"]["last_seen"]
    board.set_host("h1", False, "timeout")
    assert board.snapshot()["hosts"]["h1"] == {
        "reachable": False,
        "error": "timeout",
        "last_seen": seen,
    }


def test_status_keeps_the_first_validation_errors_and_the_total() -> None:
    board = StatusBoard()
    lines = [f"a.yaml:{i}:1: error: bad" for i in range(1, 1001)]
    board.set_error("validation", "invalid", lines)
    error = board.snapshot()["last_error"]
    assert len(error["validation_errors"]) == httpstatus.MAX_KEPT_VALIDATION_ERRORS
    assert error["validation_error_count"] == 1000


def test_sync_finished_measures_the_pass_when_no_duration_is_given() -> None:
    board = StatusBoard()
    board.sync_started()
    time.sleep(0.02)
    seconds = board.sync_finished(ok=True)
    assert 0.02 <= seconds < 5
    assert board.snapshot()["sync"]["last_duration_seconds"] == seconds
    assert board.snapshot()["sync"]["in_progress"] is False


# --------------------------------------------------------------------------------- webhooks


def test_github_push_with_a_good_signature_triggers_once(api: Start) -> None:
    a = api()
    body = push_body()
    resp = request(a.server, "POST", "/hooks/git", body, github(body))
    assert resp.status == 202
    assert a.triggers == ["webhook: github push to refs/heads/main"]
    assert "triggered" in resp.text
    text = scrape(a.server)
    assert metric(text, "reconciler_webhook_requests_total", result="accepted") == 1
    assert a.board.snapshot()["counters"]["triggers"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Hub-Signature-256": sign("wrong secret", push_body())}, id="wrong"),
        pytest.param({"X-Hub-Signature-256": "sha256="}, id="empty-digest"),
        pytest.param({"X-Hub-Signature-256": "garbage"}, id="malformed"),
        pytest.param({"X-Hub-Signature-256": "sha256=\u00e9\u00e9"}, id="non-ascii"),
        pytest.param({"X-Hub-Signature": "sha1=0123456789abcdef"}, id="sha1-only"),
        pytest.param({}, id="unsigned"),
        pytest.param({"X-Reconciler-Signature-256": sign(SECRET, b"other")}, id="generic-wrong"),
    ],
)
def test_bad_or_missing_signature_is_401_and_does_not_trigger(
    api: Start, headers: dict[str, str]
) -> None:
    a = api()
    all_headers = {"X-GitHub-Event": "push", "Content-Type": "application/json", **headers}
    resp = request(a.server, "POST", "/hooks/git", push_body(), all_headers)
    assert resp.status == 401
    assert a.triggers == []
    assert metric(scrape(a.server), "reconciler_webhook_requests_total", result="unauthorized")


def test_signature_covers_the_exact_body(api: Start) -> None:
    a = api()
    body = push_body()
    headers = github(body)
    tampered = body.replace(b"main", b"prod")
    assert request(a.server, "POST", "/hooks/git", tampered, headers).status == 401
    assert a.triggers == []


def test_unauthenticated_garbage_gets_401_not_400(api: Start) -> None:
    """The signature is checked before parsing: unsigned callers learn nothing else."""
    a = api()
    resp = request(a.server, "POST", "/hooks/git", b"{not json", {"X-GitHub-Event": "push"})
    assert resp.status == 401


def test_github_ping_answers_200_without_triggering(api: Start) -> None:
    a = api()
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    resp = request(a.server, "POST", "/hooks/git", body, github(body, event="ping"))
    assert resp.status == 200
    assert "ignored" in resp.text
    assert a.triggers == []
    assert metric(scrape(a.server), "reconciler_webhook_requests_total", result="ignored") == 1


def test_other_github_events_are_ignored(api: Start) -> None:
    a = api()
    body = json.dumps({"action": "opened"}).encode()
    resp = request(a.server, "POST", "/hooks/git", body, github(body, event="pull_request"))
    assert resp.status == 200
    assert a.triggers == []


def test_github_form_encoded_payload_is_accepted(api: Start) -> None:
    a = api()
    body = urllib.parse.urlencode({"payload": json.dumps(PUSH)}).encode()
    headers = {**github(body), "Content-Type": "application/x-www-form-urlencoded"}
    assert request(a.server, "POST", "/hooks/git", body, headers).status == 202
    assert a.triggers == ["webhook: github push to refs/heads/main"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("Push Hook", "webhook: gitlab push to refs/heads/main"),
        ("Tag Push Hook", "webhook: gitlab tag push to refs/tags/v1.2"),
    ],
)
def test_gitlab_token_ok_triggers(api: Start, event: str, reason: str) -> None:
    a = api()
    ref = "refs/tags/v1.2" if event.startswith("Tag") else "refs/heads/main"
    body = push_body({"object_kind": "push", "ref": ref})
    headers = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": event}
    resp = request(a.server, "POST", "/hooks/git", body, headers)
    assert resp.status == 202
    assert a.triggers == [reason]


@pytest.mark.parametrize("token", ["wrong", "", SECRET + "x", SECRET[:-1]])
def test_gitlab_wrong_token_is_401(api: Start, token: str) -> None:
    a = api()
    headers = {"X-Gitlab-Token": token, "X-Gitlab-Event": "Push Hook"}
    assert request(a.server, "POST", "/hooks/git", push_body(), headers).status == 401
    assert a.triggers == []


def test_gitlab_non_push_events_are_ignored(api: Start) -> None:
    a = api()
    headers = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Merge Request Hook"}
    body = push_body({"object_kind": "merge_request"})
    assert request(a.server, "POST", "/hooks/git", body, headers).status == 200
    assert a.triggers == []


def test_generic_signature_triggers_even_with_an_empty_body(api: Start) -> None:
    a = api()
    headers = {"X-Reconciler-Signature-256": sign(SECRET, b"")}
    assert request(a.server, "POST", "/hooks/git", b"", headers).status == 202
    body = push_body({"ref": "refs/heads/main"})
    headers = {"X-Reconciler-Signature-256": sign(SECRET, body)}
    assert request(a.server, "POST", "/hooks/git", body, headers).status == 202
    assert a.triggers == ["webhook: generic push", "webhook: generic push to refs/heads/main"]


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"a string"', b"\xff\xfe", b"", b"{" * 100_000]
)
def test_malformed_json_is_400(api: Start, body: bytes) -> None:
    a = api()
    resp = request(a.server, "POST", "/hooks/git", body, github(body))
    assert resp.status == 400
    assert a.triggers == []
    assert metric(scrape(a.server), "reconciler_webhook_requests_total", result="bad_request")


def test_oversized_body_is_413(api: Start) -> None:
    a = api()
    body = b" " * (httpapi.MAX_BODY_BYTES + 1)
    req = urllib.request.Request(
        a.server.url + "/hooks/git", data=body, headers=github(body), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=5)
    assert caught.value.code == 413
    caught.value.close()
    assert a.triggers == []
    assert metric(scrape(a.server), "reconciler_webhook_requests_total", result="bad_request")


def test_oversized_declared_length_is_refused_before_the_body_is_sent(api: Start) -> None:
    a = api()
    for extra in ({}, {"Expect": "100-continue"}):
        conn = http.client.HTTPConnection("127.0.0.1", a.server.port, timeout=5)
        try:
            conn.putrequest("POST", "/hooks/git")
            conn.putheader("Content-Length", str(10 * 1024 * 1024 * 1024))
            for name, value in extra.items():
                conn.putheader(name, value)
            conn.endheaders()
            assert conn.getresponse().status == 413
        finally:
            conn.close()
    assert a.triggers == []


def test_a_smaller_limit_can_be_configured(api: Start) -> None:
    a = api(max_body_bytes=100)
    body = push_body({"ref": "refs/heads/main", "pad": "x" * 200})
    assert request(a.server, "POST", "/hooks/git", body, github(body)).status == 413


def test_bad_content_length_is_400(api: Start) -> None:
    a = api()
    with socket.create_connection(("127.0.0.1", a.server.port), timeout=5) as sock:
        sock.sendall(b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert a.triggers == []


def test_chunked_body_is_411(api: Start) -> None:
    a = api()
    # One write of the whole request: the server may answer 411 and close before reading
    # the body, which would break a client that sends the chunks one by one.
    raw = (
        b"POST /hooks/git HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", a.server.port), timeout=5) as conn:
        conn.sendall(raw)
        reply = b""
        while b"\r\n" not in reply:
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.split(b"\r\n", 1)[0].split()[1] == b"411", reply


def test_branch_filter_ignores_other_refs(api: Start) -> None:
    a = api(branch="main")
    for ref in ("refs/heads/feature", "refs/tags/v1"):
        body = push_body({"ref": ref})
        resp = request(a.server, "POST", "/hooks/git", body, github(body))
        assert resp.status == 200
        assert "ignored" in resp.text
    assert a.triggers == []
    body = push_body()
    assert request(a.server, "POST", "/hooks/git", body, github(body)).status == 202
    body = push_body({"no": "ref"})
    assert request(a.server, "POST", "/hooks/git", body, github(body)).status == 202
    assert a.triggers == ["webhook: github push to refs/heads/main", "webhook: github push"]


def test_webhook_while_suspended_still_triggers_and_says_so(api: Start) -> None:
    a = api()
    a.board.set_suspended(True)
    body = push_body()
    resp = request(a.server, "POST", "/hooks/git", body, github(body))
    assert resp.status == 202
    assert "suspended" in resp.text
    assert len(a.triggers) == 1


@pytest.mark.parametrize("secret", [None, ""])
def test_webhook_without_a_secret_does_not_exist(api: Start, secret: str | None) -> None:
    a = api(secret=secret)
    body = push_body()
    assert request(a.server, "POST", "/hooks/git", body, github(body)).status == 404
    assert request(a.server, "GET", "/hooks/git").status == 404
    assert a.triggers == []


def test_pushed_ref_and_branch() -> None:
    assert pushed_ref(PUSH) == "refs/heads/main"
    assert pushed_branch(PUSH) == "main"
    assert pushed_branch({"ref": "refs/heads/feature/x"}) == "feature/x"
    assert pushed_ref({"ref": "refs/tags/v1"}) == "refs/tags/v1"
    assert pushed_branch({"ref": "refs/tags/v1"}) is None
    bad_refs: list[Any] = ["", 3, None, "refs/heads/a\nFAKE LOG LINE", "refs/heads/a b", "r" * 256]
    payloads: list[dict[str, Any]] = [{}] + [{"ref": ref} for ref in bad_refs]
    for payload in payloads:
        assert pushed_ref(payload) is None
        assert pushed_branch(payload) is None


# ------------------------------------------------------------------------- suspend, resume


def test_suspend_and_resume_are_open_without_a_secret(api: Start) -> None:
    a = api(secret=None)
    resp = request(a.server, "POST", "/suspend")
    assert (resp.status, resp.text) == (200, "suspended\n")
    assert metric(scrape(a.server), "reconciler_suspended") == 1
    assert json.loads(request(a.server, "GET", "/status").body)["suspended"] is True
    assert request(a.server, "POST", "/resume").text == "resumed\n"
    assert a.suspends == [True, False]
    assert metric(scrape(a.server), "reconciler_suspended") == 0


def test_suspend_and_resume_need_the_signature_with_a_secret(api: Start) -> None:
    a = api()
    assert request(a.server, "POST", "/suspend").status == 401
    bad = {"X-Reconciler-Signature-256": sign("nope", b"")}
    assert request(a.server, "POST", "/resume", b"", bad).status == 401
    # a GitHub signature or GitLab token is not enough for these
    gitlab = {"X-Gitlab-Token": SECRET}
    assert request(a.server, "POST", "/suspend", b"", gitlab).status == 401
    assert a.suspends == []

    signed = {"X-Reconciler-Signature-256": sign(SECRET, b"")}
    assert request(a.server, "POST", "/suspend", b"", signed).status == 200
    body = b'{"why": "maintenance"}'
    with_body = {"X-Reconciler-Signature-256": sign(SECRET, body)}
    assert request(a.server, "POST", "/resume", body, with_body).status == 200
    assert a.suspends == [True, False]


# ----------------------------------------------------------------------- routing and errors


def test_unknown_path_is_404_and_wrong_method_is_405(api: Start) -> None:
    a = api()
    assert request(a.server, "GET", "/nope").status == 404
    assert request(a.server, "GET", "/").status == 404
    resp = request(a.server, "POST", "/healthz")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, HEAD"
    resp = request(a.server, "GET", "/suspend")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert request(a.server, "DELETE", "/status").status == 405
    assert request(a.server, "PUT", "/hooks/git").status == 405


def test_unsupported_method_and_garbage_get_plain_answers(api: Start) -> None:
    a = api()
    resp = request(a.server, "BREW", "/healthz")
    assert resp.status == 501
    assert resp.headers["Content-Type"].startswith("text/plain")
    with socket.create_connection(("127.0.0.1", a.server.port), timeout=5) as sock:
        sock.sendall(b"this is not http\r\n\r\n")
        answer = sock.makefile("rb").read()
    # http.server takes an unparseable request line for HTTP/0.9: a bare body, no status line
    assert answer.startswith(b"Bad request version")
    assert b"Traceback" not in answer


def test_a_failing_callback_is_a_500_without_a_traceback(
    api: Start, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(reason: str) -> None:
        raise RuntimeError("the loop's secret internals")

    a = api(on_trigger=explode)
    body = push_body()
    with caplog.at_level(logging.ERROR, logger="reconciler.daemon.http.server"):
        resp = request(a.server, "POST", "/hooks/git", body, github(body))
    assert (resp.status, resp.text) == (500, "internal error\n")
    assert "Traceback" not in resp.text
    assert any("the loop's secret internals" in (r.exc_text or "") for r in caplog.records)
    assert request(a.server, "GET", "/healthz").status == 200  # still serving


def test_access_log_goes_to_logging_at_debug(
    api: Start, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    a = api()
    with caplog.at_level(logging.DEBUG, logger="reconciler.daemon.http.server"):
        request(a.server, "GET", "/healthz")
        deadline = time.monotonic() + 2
        while not any("/healthz" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no access log record"
            time.sleep(0.01)
    record = next(r for r in caplog.records if "/healthz" in r.getMessage())
    assert record.levelno == logging.DEBUG
    assert "/healthz" not in capsys.readouterr().err  # not http.server's stderr print


# ----------------------------------------------------------------------- threads, stopping


def test_concurrent_requests(api: Start) -> None:
    a = api()
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            a.board.sync_started()
            a.board.set_host(f"h{i % 5}", i % 2 == 0)
            a.metrics.action("create", "ok")
            a.board.sync_finished(ok=True, applied_revision=str(i))
            i += 1
            time.sleep(0.0005)  # a busy loop would starve the server threads of the GIL

    writer = threading.Thread(target=churn)
    writer.start()
    body = push_body()
    try:

        def one(i: int) -> int:
            kind = i % 4
            if kind == 0:
                return request(a.server, "GET", "/status").status
            if kind == 1:
                return request(a.server, "GET", "/metrics").status
            if kind == 2:
                return request(a.server, "POST", "/hooks/git", body, github(body)).status
            return request(a.server, "GET", "/healthz").status

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(one, range(200)))
    finally:
        stop.set()
        writer.join()
    assert statuses.count(202) == 50
    assert set(statuses) == {200, 202}
    assert len(a.triggers) == 50


def test_a_blocked_callback_does_not_block_other_requests_or_stop(api: Start) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(reason: str) -> None:
        entered.set()
        release.wait(10)

    a = api(on_trigger=slow)
    body = push_body()
    hook = threading.Thread(
        target=lambda: request(a.server, "POST", "/hooks/git", body, github(body))
    )
    hook.start()
    try:
        assert entered.wait(5)
        assert request(a.server, "GET", "/healthz").status == 200
        began = time.monotonic()
        a.server.stop()
        assert time.monotonic() - began < 1.0
    finally:
        release.set()
        hook.join(5)


def test_stop_releases_the_port(api: Start) -> None:
    a = api()
    port = a.server.port
    assert port > 0
    assert a.server.url == f"http://127.0.0.1:{port}"
    assert request(a.server, "GET", "/healthz").status == 200
    began = time.monotonic()
    a.server.stop()
    assert time.monotonic() - began < 1.0
    a.server.stop()  # twice is fine
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    again = httpapi.serve(
        "127.0.0.1",
        port,
        StatusBoard(),
        Metrics(),
        webhook_secret=None,
        on_trigger=lambda reason: None,
        on_suspend=lambda flag: None,
    )
    with again:
        assert again.port == port
        assert request(again, "GET", "/healthz").status == 200


def test_a_busy_port_raises_oserror(api: Start) -> None:
    a = api()
    with pytest.raises(OSError):
        httpapi.serve(
            "127.0.0.1",
            a.server.port,
            StatusBoard(),
            Metrics(),
            webhook_secret=None,
            on_trigger=lambda reason: None,
            on_suspend=lambda flag: None,
        )


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = httpapi.serve(
            "::1",
            0,
            StatusBoard(),
            Metrics(),
            webhook_secret=None,
            on_trigger=lambda reason: None,
            on_suspend=lambda flag: None,
        )
    except OSError:
        pytest.skip("cannot bind ::1 here")
    with server:
        assert server.url == f"http://[::1]:{server.port}"
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
            assert resp.read() == b"ok\n"


def test_redact() -> None:
    assert redact("git clone https://u:p@h/x and ssh://git@h/y") == (
        "git clone https://***@h/x and ssh://***@h/y"
    )
    assert redact("no urls here, user@example.com") == "no urls here, user@example.com"
