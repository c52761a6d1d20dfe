"""``reconciler run`` as a real process: real git repositories (bare, served by ``git daemon``
on 127.0.0.1), a real engine, real HTTP. Each test runs its own service instance and stops
it (SIGTERM, then SIGKILL) and everything it made.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.core import labels as L

from .conftest import RECONCILER_BIN, Rig, free_port, wait_for

SECRET = "s3cret-for-tests"

RC = """\
apiVersion: v1
kind: ReplicationController
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{app: web}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: sample/frontend:1.0
          command: ["sh", "-c"]
          args:
            - mkdir -p /www && echo {greeting} > /www/index.html && exec httpd -f -p 8080 -h /www
          env: [{{name: GREETING, value: "{greeting}"}}]
          ports: [{{containerPort: 8080, name: http}}]
"""


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


class Repo:
    """A bare repository and a work tree that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "manifests.git"
        self.work = root / "work"
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(root, "clone", "-q", str(self.bare), str(self.work))
        git(self.work, "checkout", "-q", "-b", "main")

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "origin", "main")
        return git(self.work, "rev-parse", "HEAD")[:12]


class GitDaemon:
    """``git daemon`` on 127.0.0.1 serving a directory; stoppable and restartable."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

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
                str(self.base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _listening(self.port), timeout=10, what="git daemon")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process = None


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Service:
    """One ``reconciler run`` process and its HTTP side."""

    def __init__(self, rig: Rig, source: str, *extra: str) -> None:
        self.rig = rig
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = rig.root / f"run-{self.port}.log"
        self.args = [
            str(RECONCILER_BIN),
            "run",
            "--source",
            source,
            "--instance",
            rig.instance,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--cache-dir",
            str(rig.root / "cache"),
            "--grace-period",
            "0",
            "--webhook-secret",
            SECRET,
            *extra,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        env = {**os.environ, **self.rig.env}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        wait_for(self.healthy, timeout=30, what=f"the service to serve\n{self.output()}")
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"reconciler run exited {self.process.returncode}:\n{self.output()}")
        return self.get("/healthz")[0] == 200

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except OSError:
            return 0, ""

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(self.url + path, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def status(self) -> dict[str, Any]:
        code, text = self.get("/status")
        assert code == 200, text
        return dict(json.loads(text))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> float:
        """Signal the process; how long it took to exit."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        return time.monotonic() - started


def push_payload() -> bytes:
    return json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


def github_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


@pytest.fixture
def services(rig: Rig) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def make(source: str, *extra: str) -> Service:
        service = Service(rig, source, *extra)
        started.append(service)
        return service.start()

    yield make
    for service in started:
        with contextlib.suppress(Exception):
            service.stop(signal.SIGKILL, timeout=10)


@pytest.fixture
def repo(rig: Rig) -> Repo:
    made = Repo(rig.root)
    made.commit({"web/controller.yaml": RC.format(replicas=2, greeting="v1")}, "first")
    return made


def greetings(rig: Rig) -> dict[str, str]:
    """Pod -> GREETING of its web container, for running pods."""
    found = {}
    for c in rig.containers(f"{L.CONTAINER}=web", running_only=True):
        env = rig.api.inspect_container(c["Id"])["Config"]["Env"]
        found[c["Labels"][L.POD]] = next(
            (e.split("=", 1)[1] for e in env if e.startswith("GREETING=")), ""
        )
    return found


def test_a_commit_is_applied_within_one_poll_and_health_endpoints_answer(
    rig: Rig, repo: Repo, services: Callable[..., Service]
) -> None:
    service = services(str(repo.bare), "--interval", "1", "--resync", "30")
    wait_for(
        lambda: greetings(rig) == {"web-0": "v1", "web-1": "v1"},
        timeout=60,
        what="first convergence",
    )
    wait_for(lambda: service.get("/readyz")[0] == 200, timeout=30, what="readiness")
    code, metrics = service.get("/metrics")
    assert code == 200
    for series in (
        "reconciler_reconcile_duration_seconds",
        "reconciler_actions_total",
        "reconciler_last_successful_sync_timestamp_seconds",
        "reconciler_hosts_up",
    ):
        assert series in metrics, series
    revision = repo.commit({"web/controller.yaml": RC.format(replicas=3, greeting="v2")})
    started = time.monotonic()
    wait_for(
        lambda: set(greetings(rig).values()) == {"v2"} and len(greetings(rig)) == 3,
        timeout=90,
        what="the commit to be applied",
    )
    elapsed = time.monotonic() - started
    status = service.status()
    assert revision in json.dumps(status), status
    # level-triggered: applied within a poll interval plus the rollout itself
    assert elapsed < 60, elapsed

    # the revision is recorded on the host for a restarted service
    def markers() -> list[str]:
        found = rig.api.containers(
            all=True,
            filters={"label": [*L.ownership_filters(rig.instance), f"{L.ROLE}={L.ROLE_STATE}"]},
        )
        return [m["Labels"][L.REVISION] for m in found]

    wait_for(lambda: markers() == [revision], timeout=30, what="the revision marker")
    took = service.stop()
    assert took < 15, f"SIGTERM took {took:.1f}s"


def test_webhook_triggers_at_once_and_a_bad_signature_fetches_nothing(
    rig: Rig, repo: Repo, services: Callable[..., Service]
) -> None:
    daemon = GitDaemon(rig.root)
    daemon.start()
    try:
        url = f"git://127.0.0.1:{daemon.port}/manifests.git"
        service = services(url, "--interval", "600", "--resync", "600")
        wait_for(lambda: len(greetings(rig)) == 2, timeout=60, what="first convergence")
        repo.commit({"web/controller.yaml": RC.format(replicas=1, greeting="v1")})
        body = push_payload()
        assert service.post("/hooks/git", body, github_headers(body, "wrong")) == 401
        assert service.post("/hooks/git", body, {"X-GitHub-Event": "push"}) == 401
        time.sleep(2)
        assert len(greetings(rig)) == 2, "an unsigned webhook made the service fetch"
        started = time.monotonic()
        assert service.post("/hooks/git", body, github_headers(body)) in (200, 202, 204)
        wait_for(lambda: list(greetings(rig)) == ["web-0"], timeout=30, what="webhook apply")
        assert time.monotonic() - started < 15
    finally:
        daemon.stop()


def test_a_watched_directory_edit_is_applied_in_seconds(
    rig: Rig, services: Callable[..., Service]
) -> None:
    source = rig.root / "watched"
    (source / "web").mkdir(parents=True)
    (source / "web" / "controller.yaml").write_text(RC.format(replicas=1, greeting="one"))
    services(str(source), "--resync", "600")
    wait_for(lambda: greetings(rig) == {"web-0": "one"}, timeout=60, what="first convergence")
    (source / "web" / ".controller.yaml.swp").write_text("editor noise")
    (source / "web" / "controller.yaml").write_text(RC.format(replicas=1, greeting="two"))
    started = time.monotonic()
    wait_for(lambda: greetings(rig) == {"web-0": "two"}, timeout=30, what="the edit")
    assert time.monotonic() - started < 10


def test_invalid_commit_changes_nothing_then_a_fix_applies(
    rig: Rig, repo: Repo, services: Callable[..., Service]
) -> None:
    service = services(str(repo.bare), "--interval", "1", "--resync", "30")
    wait_for(lambda: len(greetings(rig)) == 2, timeout=60, what="first convergence")
    before = rig.ids()
    broken = RC.format(replicas=2, greeting="bad").replace("containers:", "contianers:")
    repo.commit({"web/controller.yaml": broken}, "typo")
    error = json.dumps(
        wait_for(lambda: service.status().get("last_error"), timeout=30, what="the error")
    )
    assert "contianers" in error and "controller.yaml" in error, error
    time.sleep(2)
    assert rig.ids() == before
    repo.commit({"web/controller.yaml": RC.format(replicas=2, greeting="fixed")}, "fix")
    wait_for(lambda: set(greetings(rig).values()) == {"fixed"}, timeout=90, what="the fix")


def test_a_killed_container_comes_back_by_events_not_resync(
    rig: Rig, repo: Repo, services: Callable[..., Service]
) -> None:
    services(str(repo.bare), "--interval", "600", "--resync", "600")
    wait_for(lambda: len(greetings(rig)) == 2, timeout=60, what="first convergence")
    victim = rig.client.containers.get(rig.name("web-1", "web"))
    victim.remove(force=True)
    started = time.monotonic()
    wait_for(lambda: len(greetings(rig)) == 2, timeout=30, what="the container to come back")
    assert time.monotonic() - started < 15


def test_git_unreachable_then_back_the_service_survives_and_catches_up(
    rig: Rig, repo: Repo, services: Callable[..., Service]
) -> None:
    daemon = GitDaemon(rig.root)
    daemon.start()
    url = f"git://127.0.0.1:{daemon.port}/manifests.git"
    service = services(url, "--interval", "1", "--resync", "30")
    try:
        wait_for(lambda: len(greetings(rig)) == 2, timeout=60, what="first convergence")
        daemon.stop()
        repo.commit({"web/controller.yaml": RC.format(replicas=1, greeting="v1")})
        wait_for(
            lambda: "git" in json.dumps(service.status().get("last_error") or ""),
            timeout=30,
            what="the git error in status",
        )
        assert service.get("/healthz")[0] == 200
        daemon.start()
        wait_for(lambda: list(greetings(rig)) == ["web-0"], timeout=90, what="catching up")
    finally:
        daemon.stop()


def test_kill_9_mid_apply_then_restart_converges_without_duplicates(
    rig: Rig, repo: Repo, services: Callable[..., Service]
) -> None:
    repo.commit({"web/controller.yaml": RC.format(replicas=6, greeting="v1")})
    first = services(str(repo.bare), "--interval", "1", "--resync", "30")
    wait_for(lambda: len(rig.containers()) >= 3, timeout=60, what="the apply to start")
    first.stop(signal.SIGKILL)
    services(str(repo.bare), "--interval", "1", "--resync", "30")
    wait_for(lambda: len(greetings(rig)) == 6, timeout=120, what="convergence after restart")
    time.sleep(2)
    pods = rig.pods()
    assert pods == {f"web-{i}": ["POD", "web"] for i in range(6)}, pods


def settled_passes(service: Service, quiet: float = 5.0, timeout: float = 120.0) -> int:
    """The number of passes started (``/status`` counters), once none is running and none
    has started for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        status = service.status()
        count = int(status["counters"]["syncs_started"])
        if count != last or status["sync"]["in_progress"]:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return count
        if time.monotonic() > deadline:
            pytest.fail(f"passes never settled (last count {last})\n{service.output()}")
        time.sleep(0.2)


def pass_lines(service: Service) -> str:
    return "\n".join(line for line in service.output().splitlines() if " pass" in line)


def test_a_pass_that_removes_pods_is_not_woken_again_by_its_own_events(
    rig: Rig, repo: Repo, services: Callable[..., Service]
) -> None:
    """Removing pods (scale down), recreating them (rollout): the kill/die/stop/destroy
    events of the containers the pass removed itself start no second, no-op pass; a
    container removed by hand still wakes one."""
    service = services(str(repo.bare), "--interval", "1", "--resync", "600")
    wait_for(lambda: len(greetings(rig)) == 2, timeout=60, what="first convergence")
    before = settled_passes(service)

    repo.commit({"web/controller.yaml": RC.format(replicas=1, greeting="v1")}, "scale down")
    wait_for(lambda: rig.pods() == {"web-0": ["POD", "web"]}, timeout=60, what="the prune")
    after_prune = settled_passes(service)
    assert after_prune == before + 1, pass_lines(service)  # the poll's pass, and no other

    repo.commit({"web/controller.yaml": RC.format(replicas=1, greeting="v2")}, "rollout")
    wait_for(lambda: greetings(rig) == {"web-0": "v2"}, timeout=60, what="the rollout")
    after_rollout = settled_passes(service)
    assert after_rollout == after_prune + 1, pass_lines(service)
    assert service.status()["counters"].get("own_events_ignored", 0) > 0

    # someone else's removal is no echo: it wakes a pass, which brings the container back
    rig.client.containers.get(rig.name("web-0", "web")).remove(force=True)
    wait_for(lambda: greetings(rig) == {"web-0": "v2"}, timeout=30, what="self-heal")
    assert settled_passes(service) > after_rollout, pass_lines(service)
