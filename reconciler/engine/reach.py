"""Why an engine does not answer, said so that the reader knows what to do next.

``requests`` reports a missing socket as ``('Connection aborted.', FileNotFoundError(2, …))``
and a refused TLS handshake as three nested exception reprs. The cause is at the bottom of
the chain (``__cause__``/``__context__`` and the wrapped exceptions in ``args``):
:func:`explain_unreachable` finds it and words it with the host's name and url, and, for
the local socket, how to start an engine or point at another one.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlparse

from reconciler.engine.ssh import last_failure
from reconciler.source.hosts import Host

#: What to do when the engine a url names does not answer, by scheme.
_START_LOCAL = (
    "start Docker there (`systemctl start docker`, or `dockerd &`; scripts/docker-up does "
    "both on Debian), or point DOCKER_HOST or --hosts at an engine that runs"
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception under it, breadth first, each once."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        queue.extend(a for a in current.args if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        if isinstance(reason, BaseException):
            queue.append(reason)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                queue.append(linked)


def _tls_reason(error: ssl.SSLError, host: Host) -> str:
    text = f"{getattr(error, 'reason', '') or ''} {error}".lower().replace("_", " ")
    verify = getattr(error, "verify_message", "") or ""
    if isinstance(error, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
        ca = host.tls.ca if host.tls and host.tls.ca else "the system's CAs"
        return (
            f"TLS: the engine's certificate is not trusted by {ca} ({verify or error}): "
            "check tls.ca in the hosts file"
        )
    if "certificate required" in text or "handshake failure" in text or "bad certificate" in text:
        return (
            "TLS: the engine refused the handshake: it wants a client certificate it trusts "
            "(tls.cert and tls.key in the hosts file, signed by the CA the engine verifies with)"
        )
    if "wrong version number" in text or "record layer failure" in text:
        return "TLS: the engine does not speak TLS on this port (a plain tcp:// engine?)"
    return f"TLS: {error}"


def explain_unreachable(host: Host, exc: BaseException) -> str:
    """One line: which host, which url, what went wrong and, where it helps, what to do."""
    scheme = urlparse(host.url).scheme
    where = f"host {host.name}: the Docker engine at {host.url} does not answer"
    local = f"; {_START_LOCAL}" if scheme == "unix" else ""
    if scheme == "ssh":
        said = last_failure(host)
        return f"{where}: ssh: {said}" if said else f"{where}: {exc}"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return f"host {host.name} ({host.url}): {_tls_reason(cause, host)}"
        if isinstance(cause, FileNotFoundError):
            return f"{where}: no such socket{local}"
        if isinstance(cause, PermissionError):
            return (
                f"{where}: permission denied on the socket (run as root, or as a member of "
                "the socket's group, usually docker)"
            )
        if isinstance(cause, ConnectionRefusedError):
            return f"{where}: connection refused (no engine listens there){local}"
        if isinstance(cause, socket.gaierror):
            return f"{where}: cannot resolve its name ({cause.strerror})"
        if isinstance(cause, TimeoutError | socket.timeout):
            return f"{where}: timed out (powered off, firewalled, or overloaded?)"
        if isinstance(cause, ConnectionResetError):
            return f"{where}: the connection was reset (a TLS engine reached without tls:?)"
    return f"{where}: {exc}"
