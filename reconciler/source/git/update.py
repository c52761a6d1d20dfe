"""``sync``: a source's clone brought to exactly the commit its ref names now.

The order of the steps is what makes a sync safe to kill at any moment: the cache's lock
first, then the litter of killed syncs swept, a new clone made aside and renamed into place
only once fetched, and the revision recorded as synced only after checkout, clean and the
sub-directory check all passed, so that no caller ever sees a half-done sync as a change.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import git

from reconciler.core.errors import SourceError, SourceFailure, SourceUnavailable
from reconciler.source.git import cache
from reconciler.source.git.failures import Broken, MissingRemoteRef, disk_error
from reconciler.source.git.resolve import ALL_REFS, Target, fetch, resolve
from reconciler.source.git.runner import Git
from reconciler.source.git.source import Checkout, GitSource, redacted


def sync(source: GitSource, timeout: float = 60.0) -> Checkout:
    """Bring the source's clone to exactly the commit its ref names now, and return it.

    The first call clones; later ones fetch what the ref needs (one round trip when nothing
    changed; none for a commit already present), check the commit out (a branch as a
    branch, a tag or commit as a detached HEAD), discard local changes and delete every
    untracked and ignored file (``git clean -ffdx``). ``timeout`` bounds the whole call:
    waiting for another sync of the same source, and every git process, which is killed
    when the time is up. Raises ``SourceUnavailable`` (try again later) or ``SourceError``
    (the source itself is wrong).
    """
    deadline = time.monotonic() + timeout
    url = source.remote
    cache_dir = source.cache_dir.expanduser().absolute()
    work_tree = cache_dir / source.work_tree.name
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_error(error, f"cannot create the git cache {cache_dir}") from error
    try:
        with cache.locked(cache.lock_file(work_tree), deadline, redacted(url, url)):
            cache.sweep(work_tree)
            return _sync_locked(source, Git(work_tree, url, deadline, timeout))
    except OSError as error:
        raise disk_error(error, f"git cache {work_tree}") from error


def _sync_locked(source: GitSource, git_: Git) -> Checkout:
    """``sync`` under the cache's lock: clone if needed, update, and re-clone once if broken."""
    cloned = False
    if not cache.healthy(git_.work_tree, git_.url):
        cache.remove(git_.work_tree)
        _clone(git_)
        cloned = True
    else:
        cache.clear_stale_locks(git_.git_dir)
    try:
        return _update(source, git_, fetched=cloned)
    except Broken as error:
        if cloned:
            raise SourceError(
                f"sync of {git_.shown_url} failed in a fresh clone: {error}"
            ) from error
    # The clone is damaged in a way the health check could not see: start again, once.
    cache.remove(git_.work_tree)
    _clone(git_)
    try:
        return _update(source, git_, fetched=True)
    except Broken as error:
        raise SourceError(f"sync of {git_.shown_url} failed in a fresh clone: {error}") from error


def _clone(git_: Git) -> None:
    """Clone into a temporary directory, then rename it into place.

    ``git init`` plus one fetch of every branch and tag; nothing is checked out yet. Only a
    clone whose fetch completed is ever renamed to the cache's name, so a killed clone never
    looks like a usable cache.
    """
    final = git_.work_tree
    temporary = cache.temporary_name(final)
    temporary.mkdir()
    fresh = Git(temporary, git_.url, git_.deadline, git_.timeout)
    try:
        try:
            fresh.local("init", "--quiet")
            fresh.local("config", "remote.origin.url", git_.url)
        except Broken as error:  # git cannot even make an empty repository here
            raise SourceError(f"cannot create a clone in {final.parent}: {error}") from error
        try:
            fetch(fresh, ALL_REFS, prune=False)
        except Broken as error:
            # Nothing local can be damaged in a brand-new repository: the trouble is on
            # the remote's side or on the way, and not one git names: assume it passes.
            raise SourceUnavailable(str(error)) from error
        except MissingRemoteRef as error:  # not expected with wildcard refspecs
            raise SourceError(f"git fetch {git_.shown_url}: {error}") from error
        os.rename(temporary, final)
    finally:
        if temporary.exists():
            cache.delete(temporary)


def _update(source: GitSource, git_: Git, fetched: bool) -> Checkout:
    """Fetch what the ref needs, resolve it to a commit, check that out, and clean."""
    try:
        repo = git.Repo(str(git_.work_tree))
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise Broken(f"not a git repository: {error}") from error
    try:
        target = resolve(source.ref, git_, repo, fetched)
    finally:
        repo.close()
    if target.kind == "branch":
        git_.local(
            "checkout",
            "--quiet",
            "--force",
            "--no-recurse-submodules",
            "-B",
            target.name,
            target.sha,
        )
    else:
        git_.local(
            "checkout", "--quiet", "--force", "--no-recurse-submodules", "--detach", target.sha
        )
    git_.local("clean", "-ffdxq")
    manifests = _manifests(source, git_, target)
    # Recorded last: a sync that raised has not handed this revision to anyone yet.
    previous = cache.synced(git_.work_tree)
    cache.record_synced(git_.work_tree, target.sha)
    if previous != target.sha:
        _maintain(git_)
    return Checkout(
        root=git_.work_tree,
        manifests=manifests,
        revision=target.sha,
        ref=target.qualified,
        changed=previous != target.sha,
    )


def _maintain(git_: Git) -> None:
    """``git maintenance run --auto``: pack loose objects now and then, best effort.

    Every fetch of a small change leaves loose objects; left alone, thousands of them slow
    every later command. This runs in the foreground (``gc.autoDetach=false``), so no
    process outlives the sync, and under the sync's deadline. Its failure is not the
    sync's: the checkout is already complete.
    """
    with contextlib.suppress(SourceFailure):
        git_.quiet("maintenance", "run", "--auto", "--quiet")


def _manifests(source: GitSource, git_: Git, target: Target) -> Path:
    """The source's sub-directory, checked to exist and to stay in the work tree.

    ``path`` itself has no ``..`` (``GitSource`` refused it), but a symlink committed in
    the repository could still point anywhere: the resolved path must be inside the work
    tree, and not inside ``.git``.
    """
    if not source.path:
        return git_.work_tree
    at = f"{target.qualified} ({target.sha[:12]}) of {git_.shown_url}"
    manifests = git_.work_tree / source.path
    root = git_.work_tree.resolve()
    resolved = manifests.resolve()
    try:
        inside = resolved.relative_to(root)
    except ValueError:
        raise SourceError(
            f"sub-directory {source.path!r} leads outside the repository (a symlink) at {at}"
        ) from None
    if inside.parts[:1] == (".git",):
        raise SourceError(f"sub-directory {source.path!r} leads into .git at {at}")
    if not resolved.exists():
        raise SourceError(f"sub-directory {source.path!r} does not exist at {at}")
    if not resolved.is_dir():
        raise SourceError(f"sub-directory {source.path!r} is not a directory at {at}")
    return manifests
