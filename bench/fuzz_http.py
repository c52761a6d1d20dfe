"""Fuzz the HTTP API of ``reconciler run``: random requests, headers and bodies, and slow
clients, against a real server on 127.0.0.1 (``daemon.http.serve``).

A crash is an answer of 500 (a handler raised), an exception logged by the server, a
state change nobody was entitled to (a suspend, a trigger), or a server that stops
answering ``/healthz``. Slow clients (a request sent a few bytes at a time, or left half
sent) are held open while ``/healthz`` is asked: its slowest answer is in the figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import socket
import threading
import time

from bench.fuzz import Figures, peak_rss_mb
from reconciler.daemon.http.auth import signed_headers
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.server import serve
from reconciler.daemon.http.status import StatusBoard
from reconciler.daemon.http.webhook import sign

SECRET = "fuzz-secret"
_PATHS = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/status",
    "/suspend",
    "/resume",
    "/hooks/git",
    "/",
    "/status?x=" + "y" * 5000,
    "/%00",
    "/../../etc/passwd",
    "*",
    "http://evil.example/status",
    "/" + "a" * 70_000,
)
_METHODS = (
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "DELETE",
    "PATCH",
    "OPTIONS",
    "TRACE",
    "G\x00T",
    "X" * 300,
)
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3}) ", re.MULTILINE)
_VERSIONS = ("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", "", "FOO/1.1")


class _Errors(logging.Handler):
    """Counts what the server logs with a traceback: a handler that raised."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record.getMessage()[:300])


def _body(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return b""
    if kind == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
    if kind == 2:  # deeply nested JSON
        depth = rng.choice((10, 1000, 100_000))
        return b"[" * depth + b"]" * depth
    if kind == 3:
        ref = rng.choice(("refs/heads/main", "refs/heads/x\nINFO forged", "", None, 7, "r" * 300))
        return json.dumps({"ref": ref, "after": f"{rng.getrandbits(160):040x}"}).encode()
    if kind == 4:  # larger than the 1 MiB limit, or just under
        return b"x" * rng.choice((1024 * 1024 - 1, 1024 * 1024 + 1, 3 * 1024 * 1024))
    return b"payload=" + json.dumps({"ref": "refs/heads/main"}).encode()


def _headers(rng: random.Random, path: str, body: bytes) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = [("Host", rng.choice(("127.0.0.1", "evil.example", "")))]
    choices: list[tuple[str, str]] = [
        ("Content-Length", str(len(body))),
        ("Content-Length", rng.choice(("-1", "abc", "99999999999999999999", "1", "0"))),
        ("Transfer-Encoding", "chunked"),
        ("Expect", "100-continue"),
        ("Authorization", rng.choice((f"Bearer {SECRET}", "Bearer x", "Basic Zm9vOmJhcg==", ""))),
        ("X-Hub-Signature-256", sign(SECRET, body)),
        ("X-Hub-Signature-256", "sha256=" + "0" * 64),
        ("X-GitHub-Event", rng.choice(("push", "ping", "\x00"))),
        ("X-GitHub-Delivery", str(rng.getrandbits(64))),
        ("X-Gitlab-Token", rng.choice((SECRET, "nope"))),
        ("X-Gitlab-Event", "Push Hook"),
        ("Origin", rng.choice(("http://evil.example", "null", "http://127.0.0.1", "::"))),
        ("Sec-Fetch-Site", rng.choice(("cross-site", "same-origin", "none", "x" * 100))),
        ("Content-Type", rng.choice(("application/json", "application/x-www-form-urlencoded"))),
        ("X-Reconciler-Timestamp", rng.choice(("0", "1e9", "-5", "99999999999999", "x"))),
        ("X-" + "h" * rng.randint(1, 9000), "v"),
        ("Bad\x01Name", "v"),
        ("X-Value", "a" * rng.choice((10, 70_000))),
    ]
    headers += rng.sample(choices, rng.randint(0, 6))
    if rng.random() < 0.1:  # a signed control request (it is allowed: count it)
        headers += list(signed_headers(SECRET, body, path.partition("?")[0]).items())
    if rng.random() < 0.05:
        headers += [(f"X-N{i}", "v") for i in range(150)]  # more than http.server allows
    return headers


def _credentialed(headers: list[tuple[str, str]], body: bytes) -> bool:
    """Whether a request carries something that may change the state: the secret (as a
    bearer token, a GitLab token, a body signature) or a timestamped signature."""
    good = {
        ("Authorization", f"Bearer {SECRET}"),
        ("X-Gitlab-Token", SECRET),
        ("X-Hub-Signature-256", sign(SECRET, body)),
    }
    return any(h in good or h[0] == "X-Reconciler-Signature-256" for h in headers)


def _request_bytes(rng: random.Random) -> tuple[str, bytes, bool]:
    """(description, the request's bytes, whether it carries credentials)."""
    method, path = rng.choice(_METHODS), rng.choice(_PATHS)
    body = _body(rng) if rng.random() < 0.6 else b""
    headers = _headers(rng, path, body)
    version = "HTTP/1.1" if rng.random() < 0.8 else rng.choice(_VERSIONS)
    lines = [f"{method} {path} {version}".strip()]
    lines += [f"{name}: {value}" for name, value in headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    description = f"{method[:10]} {path[:40]} ({len(body)} bytes)"
    return description, head + body, _credentialed(headers, body)


def _exchange(port: int, data: bytes, slow: bool, timeout: float = 15.0) -> bytes:
    """Send ``data`` (slowly: a few bytes at a time) and read the answer until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may answer (413) and close early
            if slow:
                for start in range(0, min(len(data), 64), 4):
                    sock.sendall(data[start : start + 4])
                    time.sleep(0.005)
                sock.sendall(data[64:])
            else:
                sock.sendall(data)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def _healthz_seconds(port: int) -> float:
    started = time.perf_counter()
    answer = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", False, 30)
    if not answer.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"/healthz answered {answer[:80]!r}")
    return time.perf_counter() - started


def _stalled_clients(port: int, count: int) -> list[socket.socket]:
    """Connections that send half a request and stop: each holds a server thread."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(
            b"POST /hooks/git HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nx"
        )
        held.append(sock)
    return held


def fuzz_http(inputs: int, seed: int, stalled: int = 20) -> Figures:
    """``inputs`` random requests against a real server, then ``stalled`` clients left
    half-sent while /healthz is asked; the figures say what broke."""
    rng = random.Random(seed)
    figures = Figures("http", seed)
    board, metrics = StatusBoard("https://example.com/ops.git", "main"), Metrics()
    suspends: list[bool] = []
    triggers: list[str] = []
    errors = _Errors()
    logger = logging.getLogger("reconciler.daemon.http")
    logger.addHandler(errors)
    server = serve(
        "127.0.0.1",
        0,
        board,
        metrics,
        webhook_secret=SECRET,
        on_trigger=triggers.append,
        on_suspend=suspends.append,
    )
    began = time.perf_counter()
    statuses: dict[str, int] = {}
    healthz: list[float] = []
    try:
        for number in range(inputs):
            description, data, credentialed = _request_bytes(rng)
            slow = rng.random() < 0.1
            changes = len(suspends) + len(triggers)
            started = time.perf_counter()
            try:
                answer = _exchange(server.port, data, slow)
            except OSError as exc:
                answer = f"(connection error: {exc})".encode()
            figures.timed(description, started)
            found = _STATUS.findall(answer)  # the last one: "100 Continue" may come first
            status = found[-1].decode() if found else "-"
            statuses[status] = statuses.get(status, 0) + 1
            if status == "500":
                figures.crashes.append(f"input {number} ({description}): 500 {answer[:200]!r}")
            if len(suspends) + len(triggers) > changes and not credentialed:
                figures.crashes.append(f"input {number} ({description}): changed the state")
            if number % 100 == 0:
                healthz.append(_healthz_seconds(server.port))
        held = _stalled_clients(server.port, stalled)
        try:
            healthz.extend(_healthz_seconds(server.port) for _ in range(5))
        finally:
            for sock in held:
                sock.close()
        figures.notes.update(
            statuses=dict(sorted(statuses.items())),
            healthz_slowest_s=round(max(healthz), 4),
            state_changes=len(suspends),
            triggers=len(triggers),
            threads_after=threading.active_count(),
        )
        figures.crashes += [f"logged: {record}" for record in errors.records]
    except AssertionError as exc:
        figures.crashes.append(f"server stopped answering: {exc}")
    finally:
        server.stop()
        logger.removeHandler(errors)
    figures.seconds = time.perf_counter() - began
    figures.max_rss_mb = peak_rss_mb()
    return figures
