"""The socket side (``daemon.http.server``): body limits, HEAD, garbage, errors, logging,
threads, stopping, binding. Real sockets on 127.0.0.1 (and ::1 where there is one); no mocks.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.server import MAX_BODY_BYTES, serve
from reconciler.daemon.http.status import StatusBoard

from .client import Start, github, metric, push_body, request, scrape


def test_head_is_get_without_a_body(api: Start) -> None:
    a = api()
    resp = request(a.server, "HEAD", "/healthz")
    assert resp.status == 200
    assert resp.body == b""
    assert resp.headers["Content-Length"] == "3"


def test_oversized_body_is_413(api: Start) -> None:
    a = api()
    body = b" " * (MAX_BODY_BYTES + 1)
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
    try:

        def one(i: int) -> int:
            kind = i % 4
            if kind == 0:
                return request(a.server, "GET", "/status").status
            if kind == 1:
                return request(a.server, "GET", "/metrics").status
            if kind == 2:  # 50 pushes, each of its own commit (a delivery counts once)
                body = push_body({"ref": "refs/heads/main", "after": f"{i:040x}"})
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
    again = serve(
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
        serve(
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
        server = serve(
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
