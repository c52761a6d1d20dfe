"""What the HTTP tests share: a recorded server, a raw HTTP client and Prometheus parsing.

Plain functions and dataclasses, no fixture: the ``api`` fixture that starts servers is in
``conftest.py`` beside this file, and every test module imports these helpers by name.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.server import Server
from reconciler.daemon.http.status import StatusBoard
from reconciler.daemon.http.webhook import sign

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


def github(
    body: bytes, event: str = "push", secret: str = SECRET, delivery: str = ""
) -> dict[str, str]:
    """GitHub's headers for one delivery of ``body`` (a fresh delivery id unless given)."""
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
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
