"""The cache directory on disk: one clone per source, and what sits beside it.

For a clone ``<cache_dir>/<name>`` (``GitSource.work_tree``) the cache holds
``<name>.lock`` (the ``flock`` two syncs of one source take turns on), ``<name>.synced``
(the revision the last completed sync produced) and, after a killed sync,
``<name>.tmp-<hex>`` (a clone being made) or ``<name>.trash-<hex>`` (one being deleted),
swept by the next sync. The cache is disposable: anything here that looks wrong is thrown
away and cloned again, never repaired.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import git

from reconciler.core.errors import SourceUnavailable

_HEAD_FILE = re.compile(r"^(?:ref: refs/\S+|[0-9a-f]{40}|[0-9a-f]{64})\n?$")


@contextlib.contextmanager
def locked(lock_path: Path, deadline: float, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``; give up (temporarily) at ``deadline``."""
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SourceUnavailable(
                        f"another sync of {what} still holds {lock_path}"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(descriptor)


def delete(path: Path) -> None:
    """Delete a file, a symlink or a directory tree, whichever ``path`` is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove(path: Path) -> None:
    """Delete a clone, renaming it aside first so that a crash leaves only litter."""
    if not path.exists() and not path.is_symlink():
        return
    trash = path.with_name(f"{path.name}.trash-{uuid.uuid4().hex[:8]}")
    os.rename(path, trash)
    delete(trash)


def lock_file(work_tree: Path) -> Path:
    """The file whose ``flock`` (``locked``) guards ``work_tree``: beside it, never removed."""
    return work_tree.with_name(f"{work_tree.name}.lock")


def temporary_name(work_tree: Path) -> Path:
    """Where a new clone of ``work_tree`` is made before it is renamed into place."""
    return work_tree.with_name(f"{work_tree.name}.tmp-{uuid.uuid4().hex[:8]}")


def sweep(work_tree: Path) -> None:
    """Remove what killed syncs left: half-made clones and half-deleted ones."""
    litter = re.compile(re.escape(work_tree.name) + r"\.(?:tmp|trash)-[0-9a-f]{8}")
    for path in work_tree.parent.glob(f"{work_tree.name}.*-*"):
        if litter.fullmatch(path.name):
            delete(path)


def healthy(work_tree: Path, url: str) -> bool:
    """Whether ``work_tree`` is a clone of ``url`` that git can work in (cheap, no process).

    Checks the layout (GitPython opens it), HEAD's syntax and the origin url. Damage this
    cannot see (a truncated pack, say) makes a later git command fail, which also leads to
    a fresh clone.
    """
    git_dir = work_tree / ".git"
    try:
        head = (git_dir / "HEAD").read_text(encoding="ascii")
        if not _HEAD_FILE.match(head):
            return False
        repo = git.Repo(str(work_tree))
        try:
            if repo.bare:
                return False
            reader = repo.config_reader("repository")
            origin = str(reader.get_value('remote "origin"', "url", ""))
        finally:
            repo.close()
    except Exception:  # any failure to read it at all means: not usable, clone again
        return False
    return origin == url


def clear_stale_locks(git_dir: Path) -> None:
    """Delete git's lock files: we hold the cache's flock, so their writers are dead.

    A git killed at the timeout (or with the whole process) leaves ``index.lock`` and the
    like behind, and every later command in the clone would refuse to run.
    """
    for name in (
        "index.lock",
        "HEAD.lock",
        "config.lock",
        "packed-refs.lock",
        "shallow.lock",
        "ORIG_HEAD.lock",
        "FETCH_HEAD.lock",
    ):
        with contextlib.suppress(FileNotFoundError):
            (git_dir / name).unlink()
    for lock in (git_dir / "refs").rglob("*.lock"):
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _synced_file(work_tree: Path) -> Path:
    """Where the last completed sync's revision is kept: beside the clone, not in it.

    Outside the clone so that it survives a re-clone: a damaged cache replaced by a fresh
    clone of the same commit is not a change worth reconciling for.
    """
    return work_tree.with_name(f"{work_tree.name}.synced")


def synced(work_tree: Path) -> str:
    """The revision the last completed sync of this clone produced ("" if none did)."""
    try:
        return _synced_file(work_tree).read_text(encoding="ascii").strip()
    except OSError:
        return ""


def record_synced(work_tree: Path, revision: str) -> None:
    """Write the completed revision atomically: a crash leaves the old one or the new one."""
    final = _synced_file(work_tree)
    temporary = final.with_name(f"{final.name}.tmp")
    temporary.write_text(revision + "\n", encoding="ascii")
    os.replace(temporary, final)
