"""How long and how much a client may take: the server's bounds, apart from its dispatch.

Every connection is served by a thread of its own (``http.server``); a client that stalls
holds that thread. Three bounds keep stalled or hostile clients from holding the service:

- **time**: each read or write may wait ``timeout`` seconds (the handler's), and the whole
  exchange, from accepting the connection to the last byte of the answer, at most
  :data:`REQUEST_DEADLINE` seconds. The :class:`Reaper`, one thread for all connections,
  shuts down the socket of one that overruns, so a client sending a byte every few seconds
  (slowloris) is cut off too, which a per-read timeout alone would never do;
- **size**: the request line and headers together at most :data:`MAX_HEADER_BYTES`
  (:class:`BoundedReader`; the standard library alone allows 100 lines of 64 KiB), bodies
  at most ``max_body_bytes`` (``server``);
- **count**: at most :data:`MAX_CONNECTIONS` connections at once; the next one gets a 503
  written without a thread.

``bench/slowclients.py`` measures what this gives: ``/healthz`` while 500 slow clients hold
connections (docs/operations.md has the figures).
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import socket
import threading
import time
from typing import Any, Final

#: Seconds from accepting a connection to the end of its answer.
REQUEST_DEADLINE: Final = 20.0
#: Bytes of request line and headers together (nginx allows 4 buffers of 8 KiB).
MAX_HEADER_BYTES: Final = 32 * 1024
#: Connections served at once; each holds a thread while it lasts.
MAX_CONNECTIONS: Final = 1024


class Reaper:
    """One thread that shuts down the sockets of connections past their deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._sockets: dict[int, socket.socket] = {}
        self._ids = itertools.count()
        self._stopped = False
        self.reaped = 0  # connections cut off, for tests and benchmarks
        self._thread = threading.Thread(target=self._run, name="http-reaper", daemon=True)
        self._thread.start()

    def watch(self, sock: socket.socket, seconds: float) -> int:
        """Cut ``sock`` off ``seconds`` from now unless :meth:`forget` is called first."""
        with self._cond:
            key = next(self._ids)
            self._sockets[key] = sock
            heapq.heappush(self._heap, (time.monotonic() + seconds, key))
            if self._heap[0][1] == key:
                self._cond.notify()
            return key

    def forget(self, key: int) -> None:
        with self._cond:
            self._sockets.pop(key, None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, key = heapq.heappop(self._heap)
                    sock = self._sockets.pop(key, None)
                    if sock is not None:
                        self.reaped += 1
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)


class BoundedReader:
    """The connection's reader, with a budget for the request line and headers.

    ``http.server`` reads them with ``readline``; once :meth:`headers_done` is called (the
    request is parsed) reads are no longer counted, since bodies have their own limit.
    Past the budget a read raises ``http.client.LineTooLong``, which ``http.server``
    answers with 431 (headers) or which ends the connection (request line).
    """

    def __init__(self, raw: Any, budget: int) -> None:
        self._raw = raw
        self._left = budget
        self._counting = True

    def headers_done(self) -> None:
        self._counting = False

    def readline(self, limit: int = -1) -> bytes:
        if not self._counting:
            return bytes(self._raw.readline(limit))
        if self._left <= 0:
            raise http.client.LineTooLong("request headers")
        most = self._left + 1 if limit < 0 else min(limit, self._left + 1)
        line = bytes(self._raw.readline(most))
        self._left -= len(line)
        if self._left < 0:
            raise http.client.LineTooLong("request headers")
        return line

    def read(self, size: int = -1) -> bytes:
        return bytes(self._raw.read(size))

    def close(self) -> None:
        self._raw.close()
