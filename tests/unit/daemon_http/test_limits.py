"""The server's bounds on slow, large and numerous clients (``daemon.http.limits``), through
real sockets on 127.0.0.1. ``bench/slowclients.py`` measures the same at 500 clients."""

from __future__ import annotations

import socket
import time

import pytest

from reconciler.daemon.http.limits import MAX_HEADER_BYTES

from .client import Start, request


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def test_a_slowloris_client_is_cut_off_at_the_deadline_and_healthz_still_answers(
    api: Start,
) -> None:
    a = api(request_deadline=1.0)
    slow = [connect(a.server.port) for _ in range(20)]
    for conn in slow:
        conn.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # and never the end
    assert request(a.server, "GET", "/healthz").status == 200  # answered meanwhile
    for conn in slow:
        conn.settimeout(8)  # shorter than the server's per-read timeout (10 s)
        with conn:
            conn.sendall(b"X-Slow: 1\r\n")  # a byte now and then keeps a read timeout away
            data = read_all(conn)  # end of file from the server, else socket.timeout here
        assert not data.startswith(b"HTTP/1.1 200")


def test_headers_beyond_the_budget_are_431(api: Start) -> None:
    a = api()
    with connect(a.server.port) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        for _ in range(MAX_HEADER_BYTES // len(line) + 2):
            conn.sendall(line)
        conn.sendall(b"\r\n")
        answer = read_all(conn)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    ok = request(a.server, "GET", "/healthz", headers={"X-Filler": "a" * 1000})
    assert ok.status == 200  # a normal header is fine


def test_an_overlong_request_line_ends_the_connection_quietly(
    api: Start, capfd: pytest.CaptureFixture[str]
) -> None:
    a = api()
    with connect(a.server.port) as conn:
        conn.sendall(b"GET /" + b"a" * (MAX_HEADER_BYTES + 10) + b" HTTP/1.1\r\n\r\n")
        answer = read_all(conn)
    assert not answer.startswith(b"HTTP/1.1 200")
    assert request(a.server, "GET", "/healthz").status == 200
    assert "Traceback" not in capfd.readouterr().err


def test_connections_past_the_cap_get_a_503_at_once(api: Start) -> None:
    a = api(max_connections=3, request_deadline=30.0)
    held = [connect(a.server.port) for _ in range(3)]
    for conn in held:
        conn.sendall(b"GET /status HTTP/1.1\r\n")  # each holds a thread
    time.sleep(0.3)  # let the server take all three
    try:
        busy = request(a.server, "GET", "/healthz")
        assert busy.status == 503 and busy.headers["Retry-After"] == "1"
    finally:
        for conn in held:
            conn.close()
    deadline = time.monotonic() + 10
    while request(a.server, "GET", "/healthz").status != 200:
        assert time.monotonic() < deadline, "the slots were never freed"
        time.sleep(0.05)
