"""Real git remotes on 127.0.0.1 for the tests of ``source.git``: nothing mocked.

``Upstream`` is a bare repository made with the git CLI, ``Daemon`` serves a directory of
them over ``git://`` (``git daemon``). Every server listens on 127.0.0.1 only and is stopped
by the test that started it; ``processes_under`` finds whatever a test left running in its
directory. Shared by the test modules of ``source.git``, which import them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

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
