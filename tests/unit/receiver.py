"""A notification receiver on 127.0.0.1 for the tests: records every POST, and can answer
500, or hang until released, on demand. A real HTTP server (``http.server``), no mocks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """``url`` receives POSTs; ``bodies`` holds them; ``answer`` and ``hang`` steer it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.answer = 200  # the status of the next answers
        self.hang = threading.Event()  # set: every request waits for ``release``
        self.release = threading.Event()
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.received:
                    receiver.attempts += 1
                if receiver.hang.is_set():
                    receiver.release.wait(30)
                status = receiver.answer
                if status < 300:
                    with receiver.received:
                        receiver.bodies.append(json.loads(body))
                        receiver.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def kinds(self) -> list[str]:
        with self.received:
            return [b.get("kind") or b.get("reconciler", {}).get("kind") for b in self.bodies]

    def wait_for(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first body of ``kind``, waiting for it."""
        with self.received:
            found = self.received.wait_for(
                lambda: any(
                    (b.get("kind") or b.get("reconciler", {}).get("kind")) == kind
                    for b in self.bodies
                ),
                timeout,
            )
            assert found, f"no {kind} notification; got {self.kinds()}"
            return next(
                b for b in self.bodies if (b.get("kind") or b["reconciler"]["kind"]) == kind
            )

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
