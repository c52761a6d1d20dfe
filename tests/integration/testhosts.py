"""Extra Docker hosts for the integration tests, each with its own engine and address.

A thin wrapper around ``scripts/testhosts``: host ``hI`` is a dockerd inside network namespace
``rt-hI`` answering on ``tcp://10.231.0.1I:2375``, with the local ``sample/*`` and
``reconciler/*`` images copied in. ``TestHosts.up(n)`` returns the hosts file the reconciler's
``--hosts`` reads; ``stop``/``start`` take one host's engine down and back (its containers
restart per their restart policy); ``down`` removes everything.

The session fixture ``test_hosts`` brings up ``RECONCILER_TEST_HOSTS`` hosts (default 3) and
always tears them down. It needs root and network namespaces: without them it skips, except
under ``CI=true``, where it fails. There is one set of hosts per machine: a session holds
``/run/reconciler-testhosts.session.lock`` while it uses them, and a second session waits for
it (up to ``RECONCILER_TESTHOSTS_WAIT`` seconds, default 1200). To use it from a test module::

    from tests.integration.testhosts import TestHosts, test_hosts

    __all__ = ["test_hosts"]  # the fixture is imported to be found, not called


    def test_something(test_hosts: TestHosts) -> None: ...
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import docker
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "testhosts"
DEFAULT_COUNT = 3
#: Held by the session that uses the machine's (only) set of hosts; see ``TestHosts.acquire``.
SESSION_LOCK = Path("/run/reconciler-testhosts.session.lock")
#: API version of the engines the script starts (Debian's docker.io 20.10).
API_VERSION = "1.41"


class TestHostsError(RuntimeError):
    """``scripts/testhosts`` failed; the message carries its output."""


class TestHosts:
    """The hosts ``scripts/testhosts`` brings up, and their life cycle."""

    __test__ = False  # a helper, not a test class, whatever its name says

    def __init__(self, script: Path = SCRIPT) -> None:
        self.script = script
        self.hosts_file: Path | None = None
        #: One dict per host: ``name`` (h1), ``url`` (tcp://10.231.0.11:2375), ``address``
        #: (10.231.0.11) and ``labels`` ({"zone": "a"}), as in the hosts file.
        self.hosts: list[dict[str, Any]] = []
        self._lock: IO[str] | None = None

    # -- one user at a time ------------------------------------------------------------------
    def acquire(self, timeout: float = 1200.0) -> None:
        """Become the machine's one user of the hosts, waiting while another session is.

        There is one set of hosts per machine: two test sessions at once would tear down each
        other's hosts. The lock is an flock, so it goes with the process however that ends.
        """
        if self._lock is not None:
            return
        handle = SESSION_LOCK.open("a+")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    holder = SESSION_LOCK.read_text().strip() or "?"
                    raise TestHostsError(
                        f"another test session ({holder}) has held the test hosts for over "
                        f"{timeout:.0f}s ({SESSION_LOCK})"
                    ) from None
                time.sleep(1.0)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n")
        handle.flush()
        self._lock = handle

    def release(self) -> None:
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            self._lock.truncate(0)
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()
        self._lock = None

    # -- life cycle --------------------------------------------------------------------------
    def up(self, n: int = DEFAULT_COUNT) -> Path:
        """Bring up hosts h1..hn (after removing any left over); return the hosts file."""
        try:
            output = self._run("up", str(n), timeout=300)
        except BaseException:
            # A failed or interrupted start leaves nothing behind.
            self.down(check=False)
            raise
        lines = output.strip().splitlines()
        if not lines:
            raise TestHostsError("scripts/testhosts up printed no hosts file")
        path = Path(lines[-1])
        loaded = yaml.safe_load(path.read_text())
        self.hosts = [dict(entry) for entry in loaded["hosts"]]
        self.hosts_file = path
        return path

    def down(self, check: bool = True) -> None:
        """Stop and remove every host (and whatever a crashed run left); idempotent."""
        self.hosts = []
        self.hosts_file = None
        try:
            self._run("down", timeout=180)
        except (TestHostsError, subprocess.TimeoutExpired):
            if check:
                raise

    def stop(self, name: str) -> None:
        """Stop one host's dockerd (``h2`` or ``rt-h2``); its address refuses connections."""
        self._run("stop", self.host(name)["name"], timeout=60)

    def start(self, name: str) -> None:
        """Start a stopped host's dockerd again on the same data; wait until it answers."""
        self._run("start", self.host(name)["name"], timeout=120)

    def tls(self, name: str, directory: Path | None) -> None:
        """Restart one host's engine with TLS only (``--tlsverify`` on port 2376, with the
        ca.pem, server-cert.pem, server-key.pem, cert.pem and key.pem of ``directory``) or,
        with None, as it was (plain tcp on 2375)."""
        target = str(directory) if directory is not None else "off"
        self._run("tls", self.host(name)["name"], target, timeout=120)

    def command(self, name: str, *argv: str) -> list[str]:
        """A command line that runs ``argv`` in the host's network namespace, with
        ``DOCKER_HOST`` set to its engine's unix socket (the process becomes ``argv``)."""
        return [str(self.script), "exec", self.host(name)["name"], *argv]

    # -- views -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [str(entry["name"]) for entry in self.hosts]

    def host(self, name: str) -> dict[str, Any]:
        """The entry of host ``h2``, also found as ``rt-h2`` (its namespace)."""
        short = name.removeprefix("rt-")
        for entry in self.hosts:
            if entry["name"] == short:
                return entry
        raise KeyError(f"no test host {name!r} (have {', '.join(self.names) or 'none'})")

    def url(self, name: str) -> str:
        return str(self.host(name)["url"])

    def address(self, name: str) -> str:
        return str(self.host(name)["address"])

    def api(self, name: str, timeout: int = 30) -> docker.APIClient:
        """A low-level SDK client for one host's engine."""
        return docker.APIClient(base_url=self.url(name), version=API_VERSION, timeout=timeout)

    # -- the script --------------------------------------------------------------------------
    def _run(self, *args: str, timeout: float) -> str:
        env = dict(os.environ)
        if self._lock is not None:
            env["RECONCILER_TESTHOSTS_SESSION"] = "1"  # the script: we are the session
        completed = subprocess.run(
            [str(self.script), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            raise TestHostsError(
                f"scripts/testhosts {' '.join(args)} exited {completed.returncode}:\n"
                f"{completed.stderr}{completed.stdout}"
            )
        return completed.stdout


@functools.cache
def unavailable() -> str | None:
    """Why the test hosts cannot run on this machine, or None when they can (asked once)."""
    if os.geteuid() != 0:
        return "the test hosts need root (network namespaces, iptables, dockerd)"
    if shutil.which("ip") is None and shutil.which("apt-get") is None:
        return "the test hosts need iproute2 (`ip netns`), and apt-get is not there to install it"
    try:
        # Installs what is missing, then really creates (and deletes) a namespace.
        completed = subprocess.run(
            [str(SCRIPT), "check"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scripts/testhosts check failed: {exc}"
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip()
        return f"the test hosts cannot run here: {detail}"
    return None


def host_count() -> int:
    text = os.environ.get("RECONCILER_TEST_HOSTS", str(DEFAULT_COUNT))
    try:
        count = int(text)
    except ValueError:
        raise pytest.UsageError(f"RECONCILER_TEST_HOSTS={text!r} is not a number") from None
    if count < 1:
        raise pytest.UsageError(f"RECONCILER_TEST_HOSTS={count} must be at least 1")
    return count


class _Shared:
    """The one set of hosts of this process, shared by every module that imports the fixture.

    A module that imports ``test_hosts`` defines its own copy of the fixture, and pytest keeps
    one instance per definition; there is only one set of hosts per machine, so the copies
    share it: the first brings the hosts up, the last to finish takes them down.
    """

    hosts: TestHosts | None = None
    users = 0


@pytest.fixture(scope="session")
def test_hosts(request: pytest.FixtureRequest) -> Iterator[TestHosts]:
    """``RECONCILER_TEST_HOSTS`` (default 3) extra hosts for the whole session, then gone."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the multi-host tests must run)", pytrace=False)
        pytest.skip(reason)
    # Only now (a machine without root skips above, whatever its engine): the local engine,
    # with the sample images on it, that the hosts get copies of.
    request.getfixturevalue("docker_client")
    if _Shared.hosts is None:
        hosts = TestHosts()
        hosts.acquire(float(os.environ.get("RECONCILER_TESTHOSTS_WAIT", "1200")))
        # Belt and braces: pytest runs the finally below on failures and on ^C; atexit covers
        # an interpreter that exits some other way with the hosts still up.
        atexit.register(_down_quietly, hosts)
        try:
            hosts.up(host_count())
        except BaseException:
            atexit.unregister(_down_quietly)
            hosts.release()
            raise  # up() has already taken down what it started
        _Shared.hosts = hosts
    _Shared.users += 1
    try:
        yield _Shared.hosts
    finally:
        _Shared.users -= 1
        if _Shared.users == 0:
            shared, _Shared.hosts = _Shared.hosts, None
            try:
                if shared is not None:
                    shared.down()
            finally:
                atexit.unregister(_down_quietly)
                if shared is not None:
                    shared.release()


def _down_quietly(hosts: TestHosts) -> None:
    with contextlib.suppress(Exception):
        hosts.down(check=False)
    hosts.release()
