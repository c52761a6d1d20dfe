"""Real git remotes on 127.0.0.1 for the tests of ``source.git``: nothing mocked.

``Upstream`` is a bare repository made with the git CLI, ``Daemon`` serves a directory of
them over ``git://`` (``git daemon``), ``HttpsRemote`` over https (``git http-backend``
behind a TLS listener and a Basic-auth check, with a certificate made for the test).
Every server listens on 127.0.0.1 only and is stopped by the test that started it;
``processes_under`` finds whatever a test left running in its directory. Shared by the
test modules of ``source.git``, which import them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

#: The helper git commands run with no user or system configuration and a fixed identity.
HELPER_ENV = {
    **{key: value for key, value in os.environ.items() if not key.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def run_git(*args: str, cwd: Path | None = None) -> str:
    """Run the git CLI for set-up; fail the test with git's message if it fails."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=HELPER_ENV, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        pytest.fail(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Upstream:
    """A bare repository (the remote) and a scratch clone that commits and pushes to it."""

    def __init__(self, root: Path, name: str = "repo") -> None:
        self.name = name
        self.bare = root / "served" / f"{name}.git"
        self.scratch = root / "scratch" / name
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        run_git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        self.scratch.mkdir(parents=True)
        run_git("init", "--quiet", "--initial-branch=main", cwd=self.scratch)
        run_git("remote", "add", "origin", str(self.bare), cwd=self.scratch)

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or, for None, delete) files, commit everything; return the sha."""
        for name, text in files.items():
            target = self.scratch / name
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        run_git("add", "--all", cwd=self.scratch)
        run_git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.scratch)
        return run_git("rev-parse", "HEAD", cwd=self.scratch)

    def push(self, *refs: str, force: bool = False) -> None:
        flags = ["--force"] if force else []
        run_git("push", "--quiet", *flags, "origin", *(refs or ("main",)), cwd=self.scratch)

    def switch(self, branch: str, start: str = "HEAD") -> None:
        run_git("checkout", "--quiet", "-B", branch, start, cwd=self.scratch)

    def head(self) -> str:
        return run_git("rev-parse", "HEAD", cwd=self.scratch)


class Daemon:
    """``git daemon`` serving a directory on 127.0.0.1, in its own process group."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                f"--base-path={self.base}",
                "--export-all",
                "--informative-errors",
            ],
            cwd=self.base,
            env=HELPER_ENV,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"git daemon on port {self.port} exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"git daemon on port {self.port} did not start listening")
                time.sleep(0.02)

    def stop(self) -> None:
        """Terminate the daemon and every child it forked (one process group)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # whatever ignored TERM, or was slow
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def processes_under(directory: Path) -> list[str]:
    """Processes (other than this one) whose working directory is inside ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
            if cwd != str(directory) and not cwd.startswith(f"{directory}/"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state != "Z":
            found.append(f"{entry.name}: {command}")
    return found


# -- https: git http-backend behind TLS and Basic auth -----------------------------------------


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl), valid for a day."""
    certificate, key = directory / "cert.pem", directory / "key.pem"
    command = ["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    command += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    command += ["-keyout", str(key), "-out", str(certificate)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"openssl could not make a certificate: {done.stderr}")
    return certificate, key


class _GitOverHttp(BaseHTTPRequestHandler):
    """One request of git's smart HTTP protocol, answered by ``git http-backend`` (CGI).

    Without an ``Authorization`` carrying ``token`` (as the user name or as the password,
    the two ways a token is written into a url) the answer is 401, as a forge's would be.
    """

    served: Path
    token: str

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _authorized(self) -> bool:
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return self.token in (user, password)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _answer(self) -> None:
        body = self._body()
        if not self._authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        url = urlsplit(self.path)
        environment = {
            **HELPER_ENV,
            "GIT_PROJECT_ROOT": str(self.served),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "REMOTE_USER": "git",
            "REMOTE_ADDR": "127.0.0.1",
        }
        done = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=environment,
            cwd=self.served,
            capture_output=True,
            timeout=60,
        )
        head, _, content = done.stdout.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "status":
                self.send_header(name, value.strip())
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: object) -> None:
        pass


class HttpsRemote:
    """The repositories under ``served`` over https on 127.0.0.1, for one ``token``.

    git trusts the certificate through ``GIT_SSL_CAINFO`` (``ca_file``), which the test
    sets in the environment, as an operator would for a private forge.
    """

    def __init__(self, served: Path, token: str, certificates: Path) -> None:
        self.ca_file, key = make_certificate(certificates)
        handler = type("Handler", (_GitOverHttp,), {"served": served, "token": token})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
