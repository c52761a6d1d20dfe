"""A source's ref to one commit, fetching no more than that takes.

A sync runs every few seconds against an unchanged remote, so the common case must be
cheap: a branch costs one fetch of that branch (a round trip that brings nothing), a
pinned commit already present costs no network at all. Only a name the clone has never
seen makes it fetch every branch and tag.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Literal

import git

from reconciler.core.errors import SourceError, SourceFailure, SourceUnavailable
from reconciler.source.git.failures import Broken, MissingRemoteRef
from reconciler.source.git.runner import Git

_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{4,63}$")

#: Every branch (as ``origin``'s) and every tag: what a clone fetches.
ALL_REFS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")

_Kind = Literal["branch", "tag", "commit"]


@dataclass(frozen=True)
class Target:
    """What a ref resolved to: its kind, the name to check out, the commit."""

    kind: _Kind
    name: str
    sha: str

    @property
    def qualified(self) -> str:
        if self.kind == "branch":
            return f"refs/heads/{self.name}"
        if self.kind == "tag":
            return f"refs/tags/{self.name}"
        return self.sha


def fetch(git_: Git, refspecs: tuple[str, ...], prune: bool) -> None:
    """``git fetch origin refspecs``: only those refs, no tags beside them, no submodules."""
    # --no-auto-gc: the automatic maintenance costs a process on every fetch, even a no-op;
    # ``update`` runs it only when a new commit arrived.
    args = [
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-show-forced-updates",
        "--no-recurse-submodules",
        "--no-auto-gc",
    ]
    if prune:
        args.append("--prune")
    git_.network(*args, "origin", *refspecs)


def resolve(ref: str, git_: Git, repo: git.Repo, fetched: bool) -> Target:
    """Turn the source's ref into a commit, fetching no more than it needs.

    ``fetched`` says every branch and tag was just fetched (a fresh clone). Otherwise: the
    default branch costs an ``ls-remote`` and a fetch only if it moved; a branch or tag the
    clone already knows, a fetch of that one ref; a commit already present, nothing; any
    other name, a fetch of every branch and tag.
    """
    if ref in ("", "HEAD"):
        return _resolve_default(git_, repo, fetched)
    if ref.startswith("refs/heads/"):
        return _resolve_qualified(git_, repo, ref.removeprefix("refs/heads/"), "branch", fetched)
    if ref.startswith("refs/tags/"):
        return _resolve_qualified(git_, repo, ref.removeprefix("refs/tags/"), "tag", fetched)
    if _FULL_SHA.match(ref):
        return _resolve_commit(git_, ref, fetched)
    if not fetched:
        if _read_ref(repo, f"refs/remotes/origin/{ref}"):
            with contextlib.suppress(MissingRemoteRef):
                return _resolve_named(git_, repo, ref, "branch", fetched)
        elif _read_ref(repo, f"refs/tags/{ref}"):
            with contextlib.suppress(MissingRemoteRef):
                return _resolve_named(git_, repo, ref, "tag", fetched)
        elif _SHORT_SHA.match(ref) and (sha := _commit_of(git_, ref)):
            return Target("commit", sha, sha)  # an abbreviated commit already here
        _fetch_everything(git_)
    target = _lookup(git_, repo, ref)
    if target is None:
        raise SourceError(
            f"{git_.shown_url} has no branch, tag or commit named {ref!r}{_inventory(repo)}"
        )
    return target


def _resolve_default(git_: Git, repo: git.Repo, fetched: bool) -> Target:
    """The remote's default branch, as the remote says it is now (``ls-remote --symref``)."""
    listing = git_.network("ls-remote", "--symref", "origin", "HEAD")
    branch = ""
    sha = ""
    for line in listing.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            branch = line.removeprefix("ref: refs/heads/").removesuffix("\tHEAD")
        elif line.endswith("\tHEAD"):
            sha = line.split("\t", 1)[0]
    if not branch or not sha:
        raise SourceError(
            f"{git_.shown_url} has no default branch (an empty repository, or HEAD names a "
            "branch that does not exist): give the source a ref"
        )
    if not fetched and _read_ref(repo, f"refs/remotes/origin/{branch}") != sha:
        try:
            fetch(git_, (f"+refs/heads/{branch}:refs/remotes/origin/{branch}",), prune=False)
        except MissingRemoteRef as error:  # deleted between ls-remote and fetch
            raise SourceUnavailable(f"{git_.shown_url}: default branch moved: {error}") from error
    commit = _read_ref(repo, f"refs/remotes/origin/{branch}")
    if commit is None:
        raise Broken(f"refs/remotes/origin/{branch} missing after fetch")
    return Target("branch", branch, commit)


def _resolve_named(
    git_: Git, repo: git.Repo, name: str, kind: Literal["branch", "tag"], fetched: bool
) -> Target:
    """A branch or tag by name: fetch just that ref (unless a clone just fetched all).

    Raises ``MissingRemoteRef`` when the remote has no such ref, so that a plain name
    can still be tried as the other kind.
    """
    local = f"refs/remotes/origin/{name}" if kind == "branch" else f"refs/tags/{name}"
    remote = f"refs/heads/{name}" if kind == "branch" else f"refs/tags/{name}"
    if not fetched:
        fetch(git_, (f"+{remote}:{local}",), prune=False)
    sha = _read_ref(repo, local)
    if sha is None:
        raise MissingRemoteRef(f"no {remote}")
    if kind == "tag":
        sha = _commit_of(git_, local)  # an annotated tag is an object of its own: peel it
        if sha is None:  # damage, or a tag of a tree: a fresh clone will tell which
            raise Broken(f"tag {name!r} does not lead to a commit")
    return Target(kind, name, sha)


def _resolve_qualified(
    git_: Git, repo: git.Repo, name: str, kind: Literal["branch", "tag"], fetched: bool
) -> Target:
    """``refs/heads/x`` or ``refs/tags/x``: exactly that kind, or a clear error."""
    try:
        return _resolve_named(git_, repo, name, kind, fetched)
    except MissingRemoteRef as error:
        raise SourceError(
            f"{git_.shown_url} has no {kind} named {name!r}{_inventory(repo)}"
        ) from error


def _resolve_commit(git_: Git, sha: str, fetched: bool) -> Target:
    """A full commit id: no fetch when present (a pinned commit never changes)."""
    if (found := _commit_of(git_, sha)) is not None:
        return Target("commit", found, found)
    if not fetched:
        _fetch_everything(git_)
        if (found := _commit_of(git_, sha)) is not None:
            return Target("commit", found, found)
    # Not reachable from any branch or tag: some servers still hand it out by id. The
    # remote was just reached, so a refusal here, whatever git calls it, means "no such
    # commit"; only running out of time stays a temporary failure.
    try:
        fetch(git_, (sha,), prune=False)
    except (MissingRemoteRef, SourceFailure, Broken) as error:
        if time.monotonic() >= git_.deadline:
            raise SourceUnavailable(
                f"git fetch {git_.shown_url}: out of time ({git_.timeout:g} s)"
            ) from error
    if (found := _commit_of(git_, sha)) is not None:
        return Target("commit", found, found)
    raise SourceError(f"{git_.shown_url} has no commit {sha}")


def _fetch_everything(git_: Git) -> None:
    """Every branch and tag, pruning the ones the remote deleted."""
    try:
        fetch(git_, ALL_REFS, prune=True)
    except MissingRemoteRef as error:  # not expected with wildcard refspecs
        raise SourceError(f"git fetch {git_.shown_url}: {error}") from error


def _lookup(git_: Git, repo: git.Repo, ref: str) -> Target | None:
    """A name after a full fetch: a branch, else a tag, else an abbreviated commit."""
    for kind in ("branch", "tag"):
        with contextlib.suppress(MissingRemoteRef):
            return _resolve_named(git_, repo, ref, kind, fetched=True)
    if _SHORT_SHA.match(ref) and (sha := _commit_of(git_, ref)):
        return Target("commit", sha, sha)
    return None


def _read_ref(repo: git.Repo, refname: str) -> str | None:
    """The sha a local ref holds (loose or packed), read by GitPython without a process."""
    try:
        return git.SymbolicReference.dereference_recursive(repo, refname)
    except (ValueError, OSError):
        return None


def _commit_of(git_: Git, revision: str) -> str | None:
    """The full sha of the commit ``revision`` leads to (peeling tags), or None."""
    return git_.quiet(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
    )


def _inventory(repo: git.Repo, limit: int = 10) -> str:
    """A hint for a wrong ref: the branches and tags the clone knows (locally, no fetch)."""
    branches: list[str] = []
    tags: list[str] = []
    try:
        for reference in git.Reference.iter_items(repo):
            path = str(reference.path)
            if path.startswith("refs/remotes/origin/") and not path.endswith("/HEAD"):
                branches.append(path.removeprefix("refs/remotes/origin/"))
            elif path.startswith("refs/tags/"):
                tags.append(path.removeprefix("refs/tags/"))
    except (ValueError, OSError):
        return ""
    branches.sort()
    tags.sort()

    def shown(names: list[str]) -> str:
        more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
        return ", ".join(names[:limit]) + more if names else "none"

    return f" (branches: {shown(branches)}; tags: {shown(tags)})"
