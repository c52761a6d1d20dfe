"""``ssh://`` engines through the system's ``ssh``, as ``docker -H ssh://…`` reaches them.

Each connection runs ``ssh … -- HOST docker system dial-stdio`` and speaks HTTP over its
stdin and stdout: authentication, ``known_hosts``, agents and ``~/.ssh/config`` are ssh's
own, so keys are checked the way the operator's ssh checks them. docker-py's own ssh
transport needs paramiko even to shell out; this one needs only the ``ssh`` program.

What the service needs on top: ``BatchMode`` (never a prompt: an unknown host key or a
passphrase is a failure, not a hang), a connect timeout, the hosts file's ``ssh:``
``identity`` and ``known_hosts`` (for a service whose home is not a user's), and ssh's own
words when it fails (``Host key verification failed.``), kept per host for
``reach.explain_unreachable``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from typing import Any
from urllib.parse import urlparse

from reconciler.source.hosts import Host

CONNECT_TIMEOUT = 5
_failures: dict[str, str] = {}
_readers: dict[str, threading.Thread] = {}
_lock = threading.Lock()


def ssh_command(host: Host) -> list[str]:
    """The ``ssh`` command line that opens ``docker system dial-stdio`` on ``host``."""
    url = urlparse(host.url)
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]
    if host.ssh is not None and host.ssh.identity:
        argv += ["-i", host.ssh.identity, "-o", "IdentitiesOnly=yes"]
    if host.ssh is not None and host.ssh.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={host.ssh.known_hosts}"]
    if url.username:
        argv += ["-l", url.username]
    if url.port:
        argv += ["-p", str(url.port)]
    return [*argv, "--", url.hostname or "", "docker system dial-stdio"]


def last_failure(host: Host, wait: float = 1.0) -> str:
    """What ssh printed when its last connection to ``host`` failed ('' if nothing)."""
    reader = _readers.get(host.name)
    if reader is not None:
        reader.join(wait)
    with _lock:
        return _failures.get(host.name, "")


class SSHProcessSocket(socket.socket):
    """One ``ssh`` process, used as the socket of one HTTP connection."""

    def __init__(self, host: Host) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.host = host
        self.proc: subprocess.Popen[bytes] | None = None

    def connect(self, *_: Any) -> None:
        self.proc = subprocess.Popen(
            ssh_command(self.host),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a ^C to the reconciler is not ssh's to handle
        )
        reader = threading.Thread(target=self._collect_errors, daemon=True)
        reader.start()
        _readers[self.host.name] = reader

    def _collect_errors(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        text = self.proc.stderr.read().decode(errors="replace").strip()
        code = self.proc.wait()
        with _lock:
            if code not in (0, None) and text:
                _failures[self.host.name] = " ".join(text.splitlines()[-3:])
            elif code == 0:
                _failures.pop(self.host.name, None)

    def sendall(self, data: Any, flags: int = 0) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, data: Any, flags: int = 0) -> int:
        self.sendall(data)
        return len(data)

    def recv(self, size: int, flags: int = 0) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.read(size)

    def reader(self) -> Any:
        """The process's stdout: the engine's answers."""
        if self.proc is None:
            self.connect()
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout

    def makefile(self, *_: Any, **__: Any) -> Any:
        stdout = self.reader()
        stdout.channel = self  # as docker-py's
        return stdout

    def close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.proc.terminate()
        super().close()
