"""The routes (``daemon.http.endpoints``): what exists, what each answers, who may suspend.

Through a real server on 127.0.0.1. No mocks: the suspend callback records its calls.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.daemon.http.auth import REPLAY_WINDOW, signed_headers
from reconciler.daemon.http.webhook import sign

from .client import SECRET, Start, github, metric, push_body, request, scrape


def test_healthz_answers_ok(api: Start) -> None:
    a = api()
    resp = request(a.server, "GET", "/healthz")
    assert (resp.status, resp.text) == (200, "ok\n")
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert request(a.server, "GET", "/healthz?verbose=1").status == 200


@pytest.mark.parametrize("secret", [None, ""])
def test_suspend_and_resume_are_refused_without_a_secret(api: Start, secret: str | None) -> None:
    a = api(secret=secret)
    for path in ("/suspend", "/resume"):
        resp = request(a.server, "POST", path)
        assert resp.status == 403
        assert "--webhook-secret" in resp.text
    assert a.suspends == []
    assert json.loads(request(a.server, "GET", "/status").body)["suspended"] is False


def test_suspend_and_resume_need_the_secret(api: Start) -> None:
    a = api()
    assert request(a.server, "POST", "/suspend").status == 401
    # a GitHub signature or GitLab token is not enough for these
    gitlab = {"X-Gitlab-Token": SECRET}
    assert request(a.server, "POST", "/suspend", b"", gitlab).status == 401
    wrong = {"Authorization": "Bearer not-the-secret"}
    assert request(a.server, "POST", "/suspend", b"", wrong).status == 401
    bad = signed_headers("nope", b"", "/resume")
    assert request(a.server, "POST", "/resume", b"", bad).status == 401
    assert a.suspends == []

    bearer = {"Authorization": f"Bearer {SECRET}"}
    resp = request(a.server, "POST", "/suspend", b"", bearer)
    assert (resp.status, resp.text) == (200, "suspended\n")
    assert metric(scrape(a.server), "reconciler_suspended") == 1
    assert json.loads(request(a.server, "GET", "/status").body)["suspended"] is True
    body = b'{"why": "maintenance"}'
    resp = request(a.server, "POST", "/resume", body, signed_headers(SECRET, body, "/resume"))
    assert (resp.status, resp.text) == (200, "resumed\n")
    assert a.suspends == [True, False]
    assert metric(scrape(a.server), "reconciler_suspended") == 0


def test_the_hmac_of_an_empty_body_alone_no_longer_authorizes(api: Start) -> None:
    # the old scheme: the same value for every request, so whoever saw one could replay it
    a = api()
    old = {"X-Reconciler-Signature-256": sign(SECRET, b"")}
    resp = request(a.server, "POST", "/suspend", b"", old)
    assert resp.status == 401
    assert "X-Reconciler-Timestamp" in resp.text
    assert a.suspends == []


def test_a_signed_control_request_is_accepted_once(api: Start) -> None:
    a = api()
    headers = signed_headers(SECRET, b"", "/suspend")
    assert request(a.server, "POST", "/suspend", b"", headers).status == 200
    replayed = request(a.server, "POST", "/suspend", b"", headers)
    assert replayed.status == 401
    assert "replay" in replayed.text
    assert a.suspends == [True]


def test_a_signed_control_request_outside_the_window_is_refused(api: Start) -> None:
    a = api()
    old = signed_headers(SECRET, b"", "/suspend", now=time.time() - REPLAY_WINDOW - 60)
    resp = request(a.server, "POST", "/suspend", b"", old)
    assert resp.status == 401
    assert "clock" in resp.text
    future = signed_headers(SECRET, b"", "/suspend", now=time.time() + REPLAY_WINDOW + 60)
    assert request(a.server, "POST", "/suspend", b"", future).status == 401
    assert a.suspends == []


@pytest.mark.parametrize(
    "site",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_requests_are_refused_even_with_the_secret(
    api: Start, site: dict[str, str]
) -> None:
    # a browser on a hostile page can reach 127.0.0.1; it cannot hide where it comes from
    a = api()
    for path in ("/suspend", "/resume"):
        headers = {**site, "Authorization": f"Bearer {SECRET}"}
        resp = request(a.server, "POST", path, b"", headers)
        assert resp.status == 403
        assert "cross-site" in resp.text
    body = push_body()
    resp = request(a.server, "POST", "/hooks/git", body, {**site, **github(body)})
    assert resp.status == 403
    assert a.suspends == [] and a.triggers == []


def test_a_form_post_from_another_site_cannot_suspend(api: Start) -> None:
    # what a hostile page's <form method=post action=http://127.0.0.1:9477/suspend> sends
    a = api()
    form = {
        "Origin": "http://evil.example",
        "Content-Type": "application/x-www-form-urlencoded",
        "Sec-Fetch-Site": "cross-site",
    }
    assert request(a.server, "POST", "/suspend", b"x=1", form).status == 403
    assert a.suspends == []


def test_a_same_origin_request_with_the_secret_is_accepted(api: Start) -> None:
    a = api()
    headers = {
        "Origin": f"http://127.0.0.1:{a.server.port}",
        "Sec-Fetch-Site": "same-origin",
        "Authorization": f"Bearer {SECRET}",
    }
    assert request(a.server, "POST", "/suspend", b"", headers).status == 200
    assert a.suspends == [True]


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


def test_the_suspend_and_resume_commands_sign_with_a_timestamp(api: Start) -> None:
    a = api()
    url = f"http://127.0.0.1:{a.server.port}"
    runner = CliRunner()
    done = runner.invoke(cli, ["suspend", "--url", url, "--webhook-secret", SECRET])
    assert (done.exit_code, done.output) == (0, "suspended\n")
    done = runner.invoke(cli, ["resume", "--url", url, "--webhook-secret", SECRET])
    assert (done.exit_code, done.output) == (0, "resumed\n")
    refused = runner.invoke(cli, ["suspend", "--url", url])  # no secret: HTTP 401, exit 1
    assert refused.exit_code == 1
    assert a.suspends == [True, False]


def test_a_signature_is_good_for_its_own_route_only(api: Start) -> None:
    a = api()
    for_resume = signed_headers(SECRET, b"", "/resume")
    assert request(a.server, "POST", "/suspend", b"", for_resume).status == 401
    assert a.suspends == []
