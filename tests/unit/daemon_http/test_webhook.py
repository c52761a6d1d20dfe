"""``POST /hooks/git``: signatures and tokens, events, payloads, the branch filter.

End to end through a real server (``daemon.http.webhook`` decides, ``daemon.http.endpoints``
answers), plus the pure functions on their own. No mocks: the trigger callback is a list.
"""

from __future__ import annotations

import email.message
import json
import urllib.parse
from typing import Any

import pytest

from reconciler.daemon.http.auth import signed_headers
from reconciler.daemon.http.webhook import _authenticate, pushed_branch, pushed_ref, sign

from .client import PUSH, SECRET, Start, github, metric, push_body, request, scrape


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


def test_the_first_credential_header_decides() -> None:
    """A wrong GitHub signature is refused even beside a right generic one."""
    body = push_body()
    headers = email.message.Message()
    headers["X-Hub-Signature-256"] = sign("wrong secret", body)
    headers["X-Reconciler-Signature-256"] = sign(SECRET, body)
    assert _authenticate(headers, body, SECRET) == (None, "X-Hub-Signature-256 does not match")
    del headers["X-Hub-Signature-256"]
    assert _authenticate(headers, body, SECRET) == ("generic", "")


# -- each delivery once --------------------------------------------------------------------------
def test_a_delivery_id_is_accepted_once(api: Start) -> None:
    a = api()
    body = push_body()
    headers = github(body, delivery="6f1b9d3c-0000-4000-8000-000000000001")
    assert request(a.server, "POST", "/hooks/git", body, headers).status == 202
    again = request(a.server, "POST", "/hooks/git", body, headers)
    assert again.status == 200  # 2xx: the git host must not mark the hook as failing
    assert "already accepted" in again.text
    assert len(a.triggers) == 1
    assert metric(scrape(a.server), "reconciler_webhook_requests_total", result="ignored") == 1


def test_a_signed_body_replayed_under_another_delivery_id_is_accepted_once(api: Start) -> None:
    # the delivery header is not signed: a captured push resent with a made-up id is the
    # same body, which the signature does cover
    a = api()
    body = push_body()
    assert request(a.server, "POST", "/hooks/git", body, github(body)).status == 202
    assert request(a.server, "POST", "/hooks/git", body, github(body)).status == 200
    other = push_body({"ref": "refs/heads/main", "after": "1" * 40})
    assert request(a.server, "POST", "/hooks/git", other, github(other)).status == 202
    assert len(a.triggers) == 2


def test_a_generic_delivery_may_be_signed_with_a_timestamp_and_is_accepted_once(
    api: Start,
) -> None:
    a = api()
    headers = signed_headers(SECRET, b"", "/hooks/git")
    assert request(a.server, "POST", "/hooks/git", b"", headers).status == 202
    assert request(a.server, "POST", "/hooks/git", b"", headers).status == 401
    wrong = signed_headers("nope", b"", "/hooks/git")
    assert request(a.server, "POST", "/hooks/git", b"", wrong).status == 401
    assert a.triggers == ["webhook: generic push"]


def test_a_generic_delivery_id_is_accepted_once(api: Start) -> None:
    a = api()
    headers = {"X-Reconciler-Signature-256": sign(SECRET, b""), "X-Reconciler-Delivery": "d-1"}
    assert request(a.server, "POST", "/hooks/git", b"", headers).status == 202
    assert request(a.server, "POST", "/hooks/git", b"", headers).status == 200
    other = {**headers, "X-Reconciler-Delivery": "d-2"}
    assert request(a.server, "POST", "/hooks/git", b"", other).status == 202
    assert len(a.triggers) == 2
