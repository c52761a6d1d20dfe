"""The status board (``daemon.http.status``): what ``/status`` and ``/readyz`` show.

Through a real server where the answer is HTTP's (``/readyz``, ``/status``), on the board
alone where it is the board's bookkeeping. No mocks.
"""

from __future__ import annotations

import json
import time

from reconciler.core.redact import redact
from reconciler.daemon.http.status import MAX_KEPT_VALIDATION_ERRORS, StatusBoard

from .client import Start, request


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
    assert len(error["validation_errors"]) == MAX_KEPT_VALIDATION_ERRORS
    assert error["validation_error_count"] == 1000


def test_sync_finished_measures_the_pass_when_no_duration_is_given() -> None:
    board = StatusBoard()
    board.sync_started()
    time.sleep(0.02)
    seconds = board.sync_finished(ok=True)
    assert 0.02 <= seconds < 5
    assert board.snapshot()["sync"]["last_duration_seconds"] == seconds
    assert board.snapshot()["sync"]["in_progress"] is False


def test_redact() -> None:
    """The board redacts with the shared redactor (``core.redact``): every URL's user info."""
    text = "git clone https://u:p@h/x and ssh://git@h/y"
    assert redact(text) == "git clone https://***@h/x and ssh://***@h/y"
    assert redact("no urls here, user@example.com") == "no urls here, user@example.com"
    board = StatusBoard("https://bot:ghp_token123@github.com/ops/manifests.git")
    board.set_host("h1", False, text)
    board.set_error("git", text, [text])
    snapshot = board.snapshot()
    assert snapshot["source"]["url"] == "https://***@github.com/ops/manifests.git"
    assert snapshot["hosts"]["h1"]["error"] == redact(text)
    assert snapshot["last_error"]["message"] == redact(text)
    assert snapshot["last_error"]["validation_errors"] == [redact(text)]
