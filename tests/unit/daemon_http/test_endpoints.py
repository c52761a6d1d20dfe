"""The routes (``daemon.http.endpoints``): what exists, what each answers, who may suspend.

Through a real server on 127.0.0.1. No mocks: the suspend callback records its calls.
"""

from __future__ import annotations

import json

import pytest

from reconciler.daemon.http.webhook import sign

from .client import SECRET, Start, github, metric, push_body, request, scrape


def test_healthz_answers_ok(api: Start) -> None:
    a = api()
    resp = request(a.server, "GET", "/healthz")
    assert (resp.status, resp.text) == (200, "ok\n")
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert request(a.server, "GET", "/healthz?verbose=1").status == 200


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


@pytest.mark.parametrize("secret", [None, ""])
def test_webhook_without_a_secret_does_not_exist(api: Start, secret: str | None) -> None:
    a = api(secret=secret)
    body = push_body()
    assert request(a.server, "POST", "/hooks/git", body, github(body)).status == 404
    assert request(a.server, "GET", "/hooks/git").status == 404
    assert a.triggers == []


def test_unknown_path_is_404_and_wrong_method_is_405(api: Start) -> None:
    a = api()
    assert request(a.server, "GET", "/nope").status == 404
    assert request(a.server, "GET", "/index.html").status == 404  # "/" is the status page
    resp = request(a.server, "POST", "/healthz")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, HEAD"
    resp = request(a.server, "GET", "/suspend")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert request(a.server, "DELETE", "/status").status == 405
    assert request(a.server, "PUT", "/hooks/git").status == 405
