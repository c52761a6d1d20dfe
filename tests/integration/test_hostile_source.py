"""Issue 14's hostile repositories, end to end through ``reconciler run``: real git
repositories (bare, on disk), the real loop and HTTP server, real processes and signals.

None of these reaches a Docker engine: a hostile revision is refused before any host is
observed (the in-process service gets an in-memory host, the processes a host that is
never contacted), so they need no engine and hold no lock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host

from ..unit.memory_runtime import MemoryHost
from .conftest import RECONCILER_BIN, free_port

SECRET = "root:$6$hunter2-never-to-be-shown:19000:0:99999:7:::"
POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers: [{{name: app, image: "web:1"}}]
"""
UNREACHABLE = "hosts:\n  - {name: h1, url: 'tcp://127.0.0.1:1', address: 127.0.0.1}\n"


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def repository(root: Path) -> tuple[Path, Path]:
    """A bare repository and a work tree pushing to it: (bare, work)."""
    bare, work = root / "manifests.git", root / "work"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(root, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "main")
    return bare, work


def push(work: Path) -> None:
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "hostile")
    git(work, "push", "-q", "origin", "main")


def test_symbolic_links_out_of_a_checkout_are_errors_and_nothing_is_echoed(
    tmp_path: Path,
) -> None:
    shadow = tmp_path / "host" / "shadow"
    shadow.parent.mkdir()
    shadow.write_text(f"secret: '{SECRET}'\n")
    bare, work = repository(tmp_path)
    (work / "ok.yaml").write_text(POD.format(name="ok"))
    os.symlink(shadow, work / "stolen.yaml")  # a committed link to a host file
    os.symlink("/usr", work / "usr")  # thousands of files
    os.symlink("/dev/zero", work / "zero.yaml")  # a read without end
    os.symlink(".git/config", work / "config.yaml")  # the checkout's own credentials
    push(work)
    config = RunConfig(
        source=str(bare),
        listen="127.0.0.1:0",
        hosts=[Host("h1", "tcp://127.0.0.1:1", "127.0.0.1")],
        instance="svc",
        settings=Settings(instance="svc"),
        cache_dir=tmp_path / "cache",
    )
    host = MemoryHost("h1", instance="svc", images=("web:1",))
    service = ReconcileService(config, runtimes={"h1": host})
    started = time.monotonic()
    outcome = service.run_pass("hostile commit")
    assert time.monotonic() - started < 30  # /dev/zero was read without end
    assert not outcome.ok and host.running() == {}  # nothing applied
    snapshot = json.dumps(service.board.snapshot())
    for link in ("stolen.yaml", "usr", "zero.yaml", "config.yaml"):
        assert f"{link}:1:1: error: symbolic link to" in snapshot, link
    service._start_http()
    try:
        assert service._server is not None
        with urllib.request.urlopen(f"{service._server.url}/status", timeout=10) as answer:
            status = answer.read().decode()
    finally:
        service.close()
    for text in (snapshot, status):
        assert "hunter2" not in text
        assert "[remote" not in text and "bare =" not in text


def test_a_huge_file_of_zeros_in_a_small_repository_is_refused_unread(tmp_path: Path) -> None:
    bare, work = repository(tmp_path)
    (work / "ok.yaml").write_text(POD.format(name="ok"))
    with (work / "zeros.yaml").open("wb") as zeros:  # 512 MB; compresses to about 500 KB
        for _ in range(512):
            zeros.write(bytes(1024 * 1024))
    push(work)
    # One pass of the service, in a process of its own so that its peak memory is its own
    # (git, which checks the commit out, holds the blob in memory: that is its children's)
    script = f"""
import json, resource
from pathlib import Path
from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host
from tests.unit.memory_runtime import MemoryHost
config = RunConfig(
    source={str(bare)!r},
    hosts=[Host("h1", "tcp://127.0.0.1:1", "127.0.0.1")],
    instance="svc",
    settings=Settings(instance="svc"),
    cache_dir=Path({str(tmp_path / "cache")!r}),
)
service = ReconcileService(config, runtimes={{"h1": MemoryHost("h1", instance="svc")}})
outcome = service.run_pass("zeros")
print(json.dumps([outcome.ok, json.dumps(service.board.snapshot())]))
status = open('/proc/self/status').read().splitlines()
print(next(int(line.split()[1]) for line in status if line.startswith('VmHWM:')) // 1024)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result, peak_mb = done.stdout.splitlines()[-2:]
    ok, status = json.loads(result)
    assert not ok
    assert "zeros.yaml:1:1: error: file is 536,870,912 bytes, over the 8,388,608-byte" in status
    # what the service imports takes some 100 MB; reading the file would add 512
    assert int(peak_mb) < 250, f"{peak_mb} MB: the file was read"


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_health_and_sigterm_stay_responsive_during_passes_over_hostile_text(
    tmp_path: Path,
) -> None:
    source = tmp_path / "manifests"
    source.mkdir()
    label = "a" * (7 * 1024 * 1024)  # 7 MB: it froze the service, SIGTERM unheard
    (source / "label.yaml").write_text(
        POD.format(name="big").replace("metadata:\n", f"metadata:\n  labels: {{x: {label}}}\n")
    )
    base60 = "1:" * (3 * 1024 * 1024) + "1"  # 6 MB of a number PyYAML reads in quadratic time
    (source / "number.yaml").write_text(POD.format(name="num") + f"  hostname: {base60}\n")
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(UNREACHABLE)
    port = free_port()
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [
            str(RECONCILER_BIN),
            "run",
            "--source",
            str(source),
            "--hosts",
            str(hosts),
            "--listen",
            f"127.0.0.1:{port}",
            "--resync",
            "0.5",
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "RECONCILER_STATE_DIR": str(tmp_path / "state")},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _get(f"{url}/healthz", 1)[0] == 200
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-2000:]
                time.sleep(0.1)
        # passes over the hostile tree, one after the other: every probe is answered
        for _ in range(20):
            began = time.monotonic()
            assert _get(f"{url}/healthz", 5)[0] == 200
            assert _get(f"{url}/readyz", 5)[0] == 503  # never a valid revision
            assert time.monotonic() - began < 5
            time.sleep(0.1)
        code, body = _get(f"{url}/status", 5)
        assert code == 200 and len(body) < 200_000  # the 7 MB value is not echoed
        status = json.loads(body)
        assert "label.yaml:4:" in json.dumps(status) and "number.yaml:" in json.dumps(status)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0  # the pass in progress ends, then the process
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    lines = (tmp_path / "run.log").read_text().splitlines()
    assert max(len(line) for line in lines) < 10_000  # no log line echoes a value whole


@pytest.fixture(autouse=True)
def _no_docker_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests must not reach an engine: point the default one at nothing."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
