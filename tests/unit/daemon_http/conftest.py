"""The ``api`` fixture: real servers on 127.0.0.1 port 0, stopped (quickly) after each test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.server import Server, serve
from reconciler.daemon.http.status import StatusBoard

from .client import SECRET, Api, Start


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

        server = serve(
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
