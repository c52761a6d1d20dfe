"""Whether a commit is signed by a key the operator allows: :func:`verify`.

``reconciler run --verify-signatures`` applies a revision only when its commit carries a
good signature by an allowed key; any other revision is held exactly like an invalid one.
git itself does the cryptography (``git log --format=%G?``, which runs ``ssh-keygen -Y
verify`` or ``gpg --verify``); this module only pins what git trusts and words its answer:

- **SSH** (``gpg.format=ssh``): ``--allowed-signers FILE`` in git's ``allowed_signers``
  format (``principal key-type key``, see ssh-keygen(1)). Only ``G`` passes: git reports a
  good signature by a key that is not in the file as ``U``.
- **GPG**: ``--gpg-keyring FILE``, public keys as ``gpg --export`` writes them. They are
  imported into a keyring of the service's own (under the cache directory, re-made when
  the file changes); git then runs gpg with that ``GNUPGHOME`` and nothing else, so the
  user's own keyring and trust settings never count. A good signature by a key in it passes
  (``G``, or ``U``: gpg's "good, but no trust path", which is all a keyring without a web
  of trust can say); an unknown key is ``E`` ("cannot check") and is held.

Only the commit the ref points at is checked (as Flux does): a signed commit vouches for
its whole tree, whoever wrote the commits before it.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.errors import SourceError
from reconciler.source.git.runner import Git

#: ``%G?`` letters, worded for a person; ``G`` is the only one that always passes.
_WHY = {
    "N": "is not signed",
    "B": "has a bad signature (the commit or its signature was altered)",
    "U": "is signed by a key that is not allowed",
    "X": "has an expired signature",
    "Y": "is signed by an expired key",
    "R": "is signed by a revoked key",
    "E": "is signed by a key that is not allowed (not in the keyring: cannot be checked)",
}


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """Which keys may sign: an SSH ``allowed_signers`` file, a GPG public keyring, or both."""

    allowed_signers: Path | None = None
    gpg_keyring: Path | None = None

    def check(self) -> None:
        """Refuse a policy that could never pass, or names a file that is not there."""
        if self.allowed_signers is None and self.gpg_keyring is None:
            raise SourceError(
                "--verify-signatures needs --allowed-signers FILE (SSH keys) "
                "or --gpg-keyring FILE (GPG public keys)"
            )
        for path in (self.allowed_signers, self.gpg_keyring):
            if path is not None and not path.is_file():
                raise SourceError(f"{path}: no such file")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer about one commit: ``ok``, git's ``%G?`` letter, who signed with which
    key (when git could tell), and, when not ok, why, in words."""

    ok: bool
    status: str
    signer: str = ""
    key: str = ""
    reason: str = ""


def verify(
    root: Path, revision: str, policy: SignaturePolicy, url: str = "", timeout: float = 30.0
) -> Verdict:
    """Check the signature of ``revision`` in the clone at ``root`` against ``policy``."""
    policy.check()
    git_ = Git(root, url or str(root), time.monotonic() + timeout, timeout)
    settings = ["gpg.ssh.allowedSignersFile=" + str(_absolute(policy.allowed_signers))]
    git_.env["GNUPGHOME"] = str(_keyring_home(root.parent, policy.gpg_keyring))
    git_.config = (*git_.config, *settings)
    answer = git_.local("log", "-1", "--format=%G?%x00%GS%x00%GK%x00%GF", revision, "--")
    status, signer, key, fingerprint = [*answer.split("\0"), "", "", "", ""][:4]
    status = status.strip() or "N"
    key = fingerprint or key
    kind = _signature_kind(git_, revision)
    ok = status == "G" or (status == "U" and kind == "gpg" and policy.gpg_keyring is not None)
    if ok:
        return Verdict(True, status, signer, key)
    short = revision[:12]
    why = _WHY.get(status, f"has a signature git cannot check ({status})")
    if kind == "ssh" and policy.allowed_signers is None:
        why = "is signed with an SSH key, and no --allowed-signers file is configured"
    elif kind == "gpg" and policy.gpg_keyring is None:
        why = "is signed with a GPG key, and no --gpg-keyring file is configured"
    by = f" (key {key})" if key and status not in ("N",) else ""
    return Verdict(False, status, signer, key, f"commit {short} {why}{by}")


def _absolute(path: Path | None) -> str:
    """The allowed-signers setting: the file, or ``/dev/null`` (nobody) when there is none."""
    return str(path.expanduser().absolute()) if path is not None else "/dev/null"


def _signature_kind(git_: Git, revision: str) -> str:
    """``ssh``, ``gpg`` or ``""`` (unsigned): read from the commit object's ``gpgsig``."""
    raw = git_.local("cat-file", "commit", revision)
    header = raw.split("\n\n", 1)[0]
    if "-----BEGIN SSH SIGNATURE-----" in header:
        return "ssh"
    if "-----BEGIN PGP SIGNATURE-----" in header:
        return "gpg"
    return ""


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """gpg on ``home``, never starting an agent, never prompting."""
    try:
        return subprocess.run(
            ["gpg", "--batch", "--quiet", "--no-autostart", "--homedir", str(home), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"cannot run gpg: {exc}") from exc


def _keyring_home(cache: Path, keyring: Path | None) -> Path:
    """A ``GNUPGHOME`` holding exactly the keys of ``keyring`` (an empty one without it).

    Named after the keyring file's content, so a changed file gets a fresh keyring and a
    key removed from the file is trusted no more; made aside and renamed into place.
    """
    content = keyring.read_bytes() if keyring is not None else b""
    home = cache / f"gnupg-{hashlib.sha256(content).hexdigest()[:16]}"
    if home.is_dir():
        return home
    cache.mkdir(parents=True, exist_ok=True)
    making = home.with_name(home.name + f".new-{time.monotonic_ns()}")
    making.mkdir(mode=0o700)
    if keyring is not None:
        imported = _gpg(making, "--import", str(keyring))
        # gpg exits 2 on any complaint, such as no agent to talk to (none is needed to
        # import public keys, and its socket path may be too long): the keys listed decide
        listed = _gpg(making, "--list-keys", "--with-colons")
        if not any(line.startswith("pub:") for line in listed.stdout.splitlines()):
            raise SourceError(
                f"{keyring}: no public key could be imported: {imported.stderr.strip()[:300]}"
            )
    try:
        making.rename(home)
    except OSError:  # another sync made it first
        subprocess.run(["rm", "-rf", str(making)], check=False)
    return home
