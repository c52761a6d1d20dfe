"""The list calls of observing (``GET /containers/json``, ``GET /volumes``), with the
standard library's ``http.client`` alone.

Why not docker-py: importing it (with requests and urllib3) costs a no-op ``reconciler
diff`` more than its list call and its interpreter together, and observing is all a no-op
pass does. So every observe — the CLI's and the service's alike, one list path — goes
through :class:`EngineLister`, and docker-py is imported only when another call is made
(``engine.host`` opens its client on first use).

The lister speaks HTTP/1.1 to the engine as docker-py would: the same url
(``/v<api_version>/...``), parameters and filters; over the unix socket, plain tcp (a
connect timeout of ``CONNECT_TIMEOUT``, the request timeout after), TLS with the hosts
file's ``tls:`` settings, or through ``ssh`` (``engine.ssh``'s process socket). One
connection per host, kept alive between passes and held by one caller at a time; one that
the engine closed while idle is opened again once. Failures become ours exactly as
``engine.client.call`` words them: ``HostUnavailable`` with ``reach.explain_unreachable``'s
words, ``NotFound`` and ``ApplyError`` with the engine's own message.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlparse

from reconciler.core.errors import ApplyError, HostUnavailable, NotFound
from reconciler.engine.client import CONNECT_TIMEOUT
from reconciler.engine.reach import explain_unreachable
from reconciler.engine.ssh import SSHProcessSocket
from reconciler.source.hosts import Host

#: Failures of a kept-alive connection that the engine may have closed while it was idle:
#: the request is sent once more on a new connection (a list call changes nothing). A
#: timeout is not one of them: a host that stopped answering is not asked twice.
_STALE = (ConnectionError, http.client.HTTPException, ssl.SSLEOFError)


def engine_message(status: int, reason: str, body: bytes) -> str:
    """The engine's words for a refused request: its JSON ``message``, else its text (as
    docker-py's ``explanation``), else the status."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        said = json.loads(text)
    except ValueError:
        return text or f"{status} {reason}"
    message = said.get("message") if isinstance(said, dict) else None
    return str(message) if message else f"{status} {reason}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _TCPConnection(http.client.HTTPConnection):
    """Plain tcp: ``CONNECT_TIMEOUT`` to connect, the request timeout to read."""

    def __init__(self, host: str, port: int, timeout: float, **kwargs: Any) -> None:
        super().__init__(host, port, timeout=min(CONNECT_TIMEOUT, timeout), **kwargs)
        self.read_timeout = timeout

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _TLSConnection(_TCPConnection, http.client.HTTPSConnection):
    """TLS as the hosts file says (the CA, the client certificate, whether to verify), with
    plain tcp's two timeouts (the handshake is part of connecting)."""

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout, context=context)


class _PipeFile:
    """What ``makefile`` gives ``http.client`` for an ssh process: its stdout, which a
    response's close must not close (the connection is kept for the next request)."""

    def __init__(self, sock: SSHProcessSocket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock.reader(), name)

    def close(self) -> None:
        """The pipe stays open: it belongs to the connection, not to one response."""


class _SSHLink:
    """An ssh process as the socket of an ``http.client`` connection."""

    def __init__(self, host: Host) -> None:
        self.process = SSHProcessSocket(host)
        self.process.connect()

    def sendall(self, data: bytes) -> None:
        self.process.sendall(data)

    def makefile(self, *_: Any, **__: Any) -> Any:
        return _PipeFile(self.process)

    def settimeout(self, _timeout: float | None) -> None:
        """A pipe has no timeout; ssh's own ``ConnectTimeout`` bounds the connecting."""

    def close(self) -> None:
        self.process.close()


class _SSHConnection(http.client.HTTPConnection):
    def __init__(self, host: Host, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.ssh_host = host

    def connect(self) -> None:
        self.sock = _SSHLink(self.ssh_host)


def tls_context(host: Host) -> ssl.SSLContext:
    """The hosts file's ``tls:`` as an SSL context, as docker-py's ``TLSConfig`` applies
    it: its CA (else ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi's bundle, as
    requests would), its client certificate, no check at all with ``verify: false``."""
    cfg = host.tls
    assert cfg is not None
    if not cfg.verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=cfg.ca or _default_bundle())
    if cfg.cert and cfg.key:
        context.load_cert_chain(cfg.cert, cfg.key)
    return context


def _default_bundle() -> str | None:
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        import certifi
    except ImportError:  # pragma: no cover - requests depends on it
        return None
    return str(certifi.where())


def _connection(host: Host, timeout: float) -> http.client.HTTPConnection:
    url = urlparse(host.url)
    if url.scheme == "unix":  # as docker-py: what follows unix://, from the root
        return _UnixConnection("/" + host.url.split("://", 1)[1].lstrip("/"), timeout)
    if url.scheme == "ssh":
        return _SSHConnection(host, timeout)
    if url.scheme not in ("tcp", "http", "https"):
        raise HostUnavailable(
            f"host {host.name} ({host.url}): Invalid bind address protocol: {host.url}"
        )
    address = url.hostname or "localhost"
    tls = host.tls is not None or url.scheme == "https"
    port = url.port or (2376 if tls else 2375)
    if tls:
        context = tls_context(host) if host.tls is not None else ssl.create_default_context()
        return _TLSConnection(address, port, timeout, context)
    return _TCPConnection(address, port, timeout)


class EngineLister:
    """The list calls to one engine over one kept-alive connection (opened on first use).

    ``on_request`` gets the method of every request answered, as ``DockerHost`` counts
    its calls. Thread-safe: one request at a time per host.
    """

    def __init__(self, host: Host, timeout: float, on_request: Callable[[str], None]) -> None:
        self.host = host
        self.timeout = timeout
        self.on_request = on_request
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def get(self, what: str, path: str, params: Mapping[str, str | int]) -> bytes:
        """The body of ``GET /v<version><path>?<params>``, read whole (``what`` names the
        call in an error)."""
        target = f"/v{self.host.api_version}{path}?{urlencode(params)}"
        with self._lock:
            try:
                status, reason, body = self._request(target)
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise HostUnavailable(explain_unreachable(self.host, exc)) from exc
        self.on_request("GET")
        if status == 404:
            raise NotFound(f"{what}: {engine_message(status, reason, body)}")
        if status >= 400:
            raise ApplyError(f"{what}: {engine_message(status, reason, body)}")
        return body

    def _request(self, target: str) -> tuple[int, str, bytes]:
        reused = self._connection is not None
        try:
            return self._exchange(target)
        except _STALE:
            if not reused:
                raise
            self._drop()
            return self._exchange(target)

    def _exchange(self, target: str) -> tuple[int, str, bytes]:
        if self._connection is None:
            self._connection = _connection(self.host, self.timeout)
        connection = self._connection
        connection.request("GET", target, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if response.will_close:
            self._drop()
        return response.status, response.reason, body

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
