"""The socket side of the HTTP API: listening, body limits, dispatch, and stopping.

:func:`serve` binds ``address:port`` and serves on its own threads; it returns a
:class:`Server` that knows its real port and stops within about 0.1 s. Each request goes
through :class:`_Handler`, which reads the body within the limits, looks the route up in
:class:`.endpoints._API` (404 for an unknown path, 405 with ``Allow`` for a wrong method),
and answers in plain text: never a traceback, never an idle keep-alive connection.

The HTTP side is self-contained on purpose (standard library, ``prometheus_client`` and
``core``, nothing of the loop; an import contract checks it), so that the loop can be built
and tested against it without either depending on the other's internals: the loop only
writes into the :class:`.status.StatusBoard` and :class:`.metrics.Metrics` it hands to
:func:`serve`, and receives ``on_trigger``/``on_suspend`` calls back.

Without a secret ``/suspend`` and ``/resume`` are refused (see :mod:`.auth`); ``/status``
and ``/metrics`` are open to whoever reaches the address: bind to 127.0.0.1 unless a proxy
stands in front (:func:`serve` logs a warning when it is not).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, cast
from urllib.parse import urlsplit

from reconciler.daemon.http.endpoints import _API, _Reply, _text
from reconciler.daemon.http.limits import (
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    REQUEST_DEADLINE,
    BoundedReader,
    Reaper,
)
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.status import StatusBoard

log = logging.getLogger(__name__)

#: The default limit on a request body; a larger one is refused with 413.
MAX_BODY_BYTES: Final = 1024 * 1024
#: An oversized body up to this size is read and dropped before the 413 goes out, so that the
#: client reads our answer instead of a connection reset; a larger one is not worth reading.
_DRAIN_LIMIT: Final = 4 * MAX_BODY_BYTES


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that carries the API and skips the reverse DNS lookup.

    ``HTTPServer.server_bind`` calls ``socket.getfqdn`` on the bind address, which can stall
    for seconds on a host with broken DNS; the name is only used in CGI variables.
    """

    daemon_threads = True  # a hung client must never keep stop() or the process waiting
    #: listen backlog; socketserver's default of 5 overflows when a scraper, a webhook burst
    #: and status calls arrive together while the GIL is busy, and clients see resets
    request_queue_size = 128
    api: _API
    reaper: Reaper
    #: connections served at once (one thread each); past it a connection gets a 503 at once
    max_connections = MAX_CONNECTIONS
    #: seconds from accepting a connection to the end of its answer (``limits``)
    request_deadline = REQUEST_DEADLINE
    _active = 0
    _active_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, up to :attr:`max_connections`; past that, a 503 written
        without a thread (it fits the socket's empty buffer) and the connection closed."""
        with self._active_lock:
            full = self._active >= self.max_connections
            if not full:
                self._active += 1
        if full:
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke a limit or went away mid-request: a debug line, never a
        traceback on stderr (socketserver's default)."""
        log.debug("connection from %s ended early", client_address, exc_info=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active -= 1

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # bind only; HTTPServer's adds getfqdn
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nbusy\n"
)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Socket side of a request: body limits, dispatch, and never a traceback out."""

    # HTTP/1.1 for ``Expect: 100-continue`` (so an oversized upload is refused before it is
    # sent), but every response closes the connection: no idle keep-alive thread to reap.
    protocol_version = "HTTP/1.1"
    server_version = "reconciler"
    sys_version = ""
    timeout = 10.0  # seconds a client may stall mid-request before its thread is freed

    @property
    def api(self) -> _API:
        return cast(_HTTPServer, self.server).api

    def setup(self) -> None:
        """The socket's per-read timeout (``timeout``) and, over the whole exchange, the
        reaper's deadline; the request line and headers read through a byte budget."""
        super().setup()
        server = cast(_HTTPServer, self.server)
        self._watch = server.reaper.watch(self.connection, server.request_deadline)
        self.rfile = BoundedReader(self.rfile, MAX_HEADER_BYTES)  # type: ignore[assignment]

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        cast(BoundedReader, self.rfile).headers_done()
        return parsed

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(_HTTPServer, self.server).reaper.forget(self._watch)

    def log_message(self, format: str, *args: Any) -> None:
        """Access and error lines go to ``logging`` at DEBUG: a scrape every 15 s is noise."""
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's errors (bad request line, unsupported method) as plain text."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        self._send(_text(code, message or phrase))

    def handle_expect_100(self) -> bool:
        length = self._declared_length()
        if isinstance(length, int) and length > self.api.max_body_bytes:
            if urlsplit(self.path).path == "/hooks/git":
                self.api.metrics.webhook_request("bad_request")
            self._send(_too_large(self.api.max_body_bytes))
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._sent = False
        try:
            self._send(self._reply(method), head=method == "HEAD")
        except (ConnectionError, TimeoutError) as exc:
            log.debug("client went away: %s", exc)
            self.close_connection = True
        except Exception:
            log.exception("error handling %s %s", method, self.path)
            if self._sent:
                self.close_connection = True
            else:
                self._send(_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"))

    def _reply(self, method: str) -> _Reply:
        path = urlsplit(self.path).path
        methods = self.api.routes.get(path)
        if methods is None:
            return _text(HTTPStatus.NOT_FOUND, "not found")
        lookup = "GET" if method == "HEAD" else method
        endpoint = methods.get(lookup)
        if endpoint is None:
            allowed = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
            return _Reply(
                HTTPStatus.METHOD_NOT_ALLOWED,
                b"method not allowed\n",
                headers=(("Allow", ", ".join(allowed)),),
            )
        body = b""
        if method == "POST":
            read = self._read_body()
            if isinstance(read, _Reply):
                if path == "/hooks/git":
                    self.api.metrics.webhook_request("bad_request")
                return read
            body = read
        return endpoint(self.headers, body)

    def _declared_length(self) -> int | _Reply:
        if self.headers.get("Transfer-Encoding") is not None:
            return _text(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not chunks")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw.strip())
        except ValueError:
            length = -1
        if length < 0:
            return _text(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        return length

    def _read_body(self) -> bytes | _Reply:
        length = self._declared_length()
        if isinstance(length, _Reply):
            return length
        limit = self.api.max_body_bytes
        if length > limit:
            if length <= _DRAIN_LIMIT:
                self._discard(length)
            return _too_large(limit)
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("body shorter than its Content-Length")
        return body

    def _discard(self, length: int) -> None:
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)

    def _send(self, reply: _Reply, head: bool = False) -> None:
        self._sent = True
        self.close_connection = True
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(reply.body)


def _too_large(limit: int) -> _Reply:
    return _text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {limit} bytes")


class Server:
    """A running API server: its real port and URL, and :meth:`stop`."""

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread, host: str) -> None:
        self._httpd = httpd
        self._thread = thread
        self._host = host
        self._stopped = False
        self._stop_lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port: the one the kernel chose when 0 was asked for."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """A URL that reaches the server from this machine (wildcard addresses -> loopback)."""
        return f"http://{self._host}:{self.port}"

    def stop(self) -> None:
        """Stop accepting, close the listening socket and return, within about 0.1 s.

        Requests still running finish on their own (daemon) threads; their connections are
        not waited for, so a stalled client cannot delay a shutdown. Calling it twice is fine.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._httpd.shutdown()  # returns once serve_forever's next poll sees the flag
        self._httpd.server_close()
        self._httpd.reaper.stop()
        self._thread.join(timeout=1.0)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _url_host(address: str) -> str:
    if address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if address == "::":
        return "[::1]"
    return f"[{address}]" if ":" in address else address


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def serve(
    address: str,
    port: int,
    board: StatusBoard,
    metrics: Metrics,
    *,
    webhook_secret: str | None,
    on_trigger: Callable[[str], None],
    on_suspend: Callable[[bool], None],
    branch: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_connections: int = MAX_CONNECTIONS,
    request_deadline: float = REQUEST_DEADLINE,
) -> Server:
    """Listen on ``address:port`` (0: any free port) and serve on a background thread.

    ``webhook_secret`` enables ``POST /hooks/git`` and protects ``/suspend`` and
    ``/resume``; an empty string counts as none. ``branch``, when given, makes pushes to any
    other ref (other branches, tags) answer "ignored" without calling ``on_trigger``; pushes
    whose payload names no ref always trigger, since a needless fetch is cheap and a missed
    one is not. ``max_connections`` and ``request_deadline`` bound slow and numerous
    clients (:mod:`.limits`). Raises ``OSError`` when the address cannot be bound.
    """
    secret = webhook_secret or None
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]  # "[::]" as written in HOST:PORT
    api = _API(board, metrics, secret, on_trigger, on_suspend, branch, max_body_bytes)
    server_class = _HTTPServer6 if ":" in address else _HTTPServer
    httpd = server_class((address, port), _Handler, bind_and_activate=False)
    httpd.api = api
    httpd.reaper = Reaper()
    httpd.max_connections = max_connections
    httpd.request_deadline = request_deadline
    try:
        httpd.server_bind()
        httpd.server_activate()
    except BaseException:
        httpd.server_close()
        raise
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="httpapi", daemon=True
    )
    thread.start()
    server = Server(httpd, thread, _url_host(address))
    if secret is None and not _is_loopback(address):
        log.warning(
            "HTTP API on %s:%d has no webhook secret: /status and /metrics are open to "
            "anyone who can reach it; /suspend, /resume and /hooks/git are refused",
            address or "*",
            server.port,
        )
    log.info("HTTP API listening on %s", server.url)
    return server
