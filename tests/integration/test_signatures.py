"""``--verify-signatures``: real keys (``ssh-keygen``, ``gpg``), real signed commits (``git
commit -S``), a real bare repository; the service's hosts are in memory (no Docker needed).

Signed by an allowed key: applied. Unsigned, or signed by a key that is not allowed: held
exactly like an invalid revision (nothing applied, the last good one keeps running,
``/status`` says which commit and why).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.errors import SourceError
from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.settings import Settings
from reconciler.source.git import SignaturePolicy, verify
from reconciler.source.hosts import Host

from ..unit.daemon_http.client import metric
from ..unit.memory_runtime import MemoryHost

RC = """apiVersion: v1
kind: ReplicationController
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{app: web}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: app, image: "web:1"}}]
"""


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout.strip()


class SignedRepo:
    """A bare repository, a work tree pushing to it, and two SSH keys: one allowed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bare = root / "manifests.git"
        self.work = root / "work"
        run("git", "init", "-q", "--bare", "-b", "main", str(self.bare))
        run("git", "clone", "-q", str(self.bare), str(self.work))
        for setting in (
            "user.name=Ops",
            "user.email=ops@example.invalid",
            "gpg.format=ssh",
            "commit.gpgsign=false",
        ):
            key, value = setting.split("=", 1)
            run("git", "config", key, value, cwd=self.work)
        run("git", "checkout", "-q", "-b", "main", cwd=self.work)
        for name in ("allowed", "stranger"):
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(root / name))
        self.signers = root / "allowed_signers"
        public = (root / "allowed.pub").read_text().strip()
        self.signers.write_text(f"ops@example.invalid {public}\n")

    def commit(self, replicas: int, key: str | None, *git_options: str) -> str:
        (self.work / "web.yaml").write_text(RC.format(replicas=replicas))
        run("git", "add", "-A", cwd=self.work)
        sign = ["-c", f"user.signingkey={self.root / key}", "commit", "-S"] if key else ["commit"]
        run("git", *git_options, *sign, "-q", "-m", f"replicas {replicas}", cwd=self.work)
        run("git", "push", "-q", "origin", "main", cwd=self.work)
        return run("git", "rev-parse", "HEAD", cwd=self.work)


@pytest.fixture
def repo(tmp_path: Path) -> SignedRepo:
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is needed (Debian: openssh-client)")
    return SignedRepo(tmp_path)


@pytest.fixture
def service(repo: SignedRepo, tmp_path: Path) -> Iterator[tuple[ReconcileService, MemoryHost]]:
    host = MemoryHost("h1", instance="sig", images=("web:1",))
    config = RunConfig(
        source=str(repo.bare),
        branch="main",
        listen="127.0.0.1:0",
        hosts=[Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11")],
        instance="sig",
        settings=Settings(instance="sig"),
        cache_dir=tmp_path / "cache",
        interval=0.1,
        resync=3600,
        verify_signatures=True,
        allowed_signers=repo.signers,
    )
    loop = ReconcileService(config, runtimes={"h1": host})
    yield loop, host
    loop.close()


def replicas(host: MemoryHost) -> int:
    return sum(1 for name in host.running() if name.endswith("_app"))


def fetch_and_pass(loop: ReconcileService, reason: str) -> None:
    loop._source.fetch_now()
    loop.run_pass(reason)


def test_signed_is_applied_unsigned_and_unknown_keys_are_held(
    repo: SignedRepo, service: tuple[ReconcileService, MemoryHost]
) -> None:
    loop, host = service
    good = repo.commit(2, "allowed")
    fetch_and_pass(loop, "signed")
    assert replicas(host) == 2
    status = loop.board.snapshot()
    assert status["revision"]["applied"] == good[:12] and status["held"] is None

    unsigned = repo.commit(3, None)
    fetch_and_pass(loop, "unsigned")
    assert replicas(host) == 2  # nothing of it applied; the signed one keeps running
    status = loop.board.snapshot()
    assert status["revision"] == {"desired": unsigned[:12], "applied": good[:12]}
    assert status["held"]["revision"] == unsigned[:12]
    assert status["held"]["kind"] == "signature"
    assert f"commit {unsigned[:12]} is not signed" in status["held"]["reason"]
    assert status["last_error"]["kind"] == "signature"
    assert status["events"]["recent"][0]["kind"] == "revision_held"
    text = loop.metrics.render().decode()
    assert metric(text, "reconciler_sync_errors_total", kind="signature") == 1

    stranger = repo.commit(4, "stranger")
    fetch_and_pass(loop, "unknown key")
    assert replicas(host) == 2
    held = loop.board.snapshot()["held"]
    assert held["revision"] == stranger[:12]
    assert "is signed by a key that is not allowed (key SHA256:" in held["reason"]

    host.exit("sig_default_web-0_app")  # the last good revision still heals drift
    fetch_and_pass(loop, "drift")
    assert host.running()["sig_default_web-0_app"] == "running"

    fixed = repo.commit(5, "allowed")
    fetch_and_pass(loop, "signed again")
    assert replicas(host) == 5
    status = loop.board.snapshot()
    assert status["revision"]["applied"] == fixed[:12]
    assert status["held"] is None and status["last_error"] is None


def test_verify_words_each_verdict(repo: SignedRepo) -> None:
    signed = repo.commit(1, "allowed")
    unsigned = repo.commit(2, None)
    stranger = repo.commit(3, "stranger")
    ssh_only = SignaturePolicy(allowed_signers=repo.signers)
    work = repo.work
    verdict = verify(work, signed, ssh_only)
    assert verdict.ok and verdict.status == "G" and verdict.signer == "ops@example.invalid"
    verdict = verify(work, unsigned, ssh_only)
    assert not verdict.ok and verdict.status == "N" and "is not signed" in verdict.reason
    verdict = verify(work, stranger, ssh_only)
    assert not verdict.ok and verdict.status == "U" and verdict.key.startswith("SHA256:")
    gpg_only = SignaturePolicy(gpg_keyring=repo.root / "empty.gpg")
    (repo.root / "empty.gpg").write_bytes(b"")
    verdict = verify(work, signed, gpg_only)
    assert not verdict.ok and "no --allowed-signers file is configured" in verdict.reason
    with pytest.raises(SourceError, match="needs --allowed-signers"):
        verify(work, signed, SignaturePolicy())


def test_gpg_signatures_against_a_keyring(repo: SignedRepo, tmp_path: Path) -> None:
    """A key pair made by gpg in a home of its own; its public key exported as the keyring."""
    if shutil.which("gpg") is None:
        pytest.fail("gpg is needed (Debian: gnupg)")
    home = tmp_path / "gnupg-signer"
    home.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(home)}
    try:
        for user in ("Ops <ops@example.invalid>", "Other <other@example.invalid>"):
            run(
                "gpg",
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                user,
                "ed25519",
                "sign",
                "never",
                env=env,
            )
        keys = run("gpg", "--list-keys", "--with-colons", env=env)
        ops, other = [line.split(":")[9] for line in keys.splitlines() if line.startswith("fpr")]
        keyring = tmp_path / "allowed.gpg"
        keyring.write_bytes(
            subprocess.run(
                ["gpg", "--export", ops],
                env={**os.environ, **env},
                capture_output=True,
                check=True,
            ).stdout
        )
        policy = SignaturePolicy(gpg_keyring=keyring)

        def gpg_commit(replicas: int, fingerprint: str) -> str:
            (repo.work / "web.yaml").write_text(RC.format(replicas=replicas))
            run("git", "add", "-A", cwd=repo.work)
            run(
                "git",
                "-c",
                "gpg.format=openpgp",
                "-c",
                f"user.signingkey={fingerprint}",
                "commit",
                "-S",
                "-q",
                "-m",
                "gpg",
                cwd=repo.work,
                env=env,
            )
            return run("git", "rev-parse", "HEAD", cwd=repo.work)

        allowed = verify(repo.work, gpg_commit(1, ops), policy)
        assert allowed.ok and allowed.signer == "Ops <ops@example.invalid>"
        refused = verify(repo.work, gpg_commit(2, other), policy)
        assert not refused.ok and refused.status == "E"
        assert "not in the keyring" in refused.reason
        unsigned = verify(repo.work, repo.commit(3, None), policy)
        assert not unsigned.ok and unsigned.status == "N"
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
