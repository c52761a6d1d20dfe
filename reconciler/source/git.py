"""The only module that talks to git (GitPython): where a source tree stands, and clones.

Two jobs. ``revision_of`` labels a local source directory with the commit it is checked out
at. ``sync`` keeps a clone of a remote source (a ``GitSource``) in a cache directory and
brings its work tree to exactly the commit the source names, so that the rest of the
reconciler only ever reads plain files from a local directory.

Failures come out as two exception types, because a long-lived service must treat them
differently: ``SourceUnavailable`` (the remote cannot be reached, git timed out, another
sync holds the cache: try again later, keep running what runs) and ``SourceError`` (no such
repository, branch, tag, commit or sub-directory, refused credentials: retrying will not
help until someone changes the source or the remote). Both derive from ``SourceFailure``.

Design notes (docs/sources.md has the long form):

- Every git command runs with an explicit ``GIT_DIR`` and ``GIT_WORK_TREE`` (and the other
  variables that could point git at another repository), so a reconciler started from a
  git hook, where ``GIT_DIR`` is already set, can never fetch into or clean the wrong tree.
- Nothing may prompt: ``GIT_TERMINAL_PROMPT=0``, ``GIT_ASKPASS=/bin/true``, ssh in
  ``BatchMode``. Every git process is killed (with its children) when the sync's time is up.
- A clone is made in a temporary directory and renamed into place once its first fetch has
  completed, so a process killed mid-clone leaves only a temporary directory, removed by
  the next sync. A cache that fails its health check, or in which a local git operation
  fails, is thrown away and cloned again, once per sync.
- One ``flock`` per cache directory: two processes (or threads) syncing the same source
  take turns instead of racing in one work tree.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import git

from reconciler.core.errors import SourceError, SourceFailure, SourceUnavailable

__all__ = [
    "Checkout",
    "GitSource",
    "SourceError",
    "SourceFailure",
    "SourceUnavailable",
    "default_cache_dir",
    "revision_of",
    "sync",
]


class _Broken(Exception):
    """The local cache (not the remote) looks damaged: throw it away and clone again."""


def revision_of(path: str) -> str:
    """The commit that ``path`` is checked out at (``+dirty`` if it has local changes).

    Empty when ``path`` is not inside a git work tree: a plain directory has no revision.
    """
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return ""
    try:
        try:
            sha = repo.head.commit.hexsha[:12]
        except ValueError:  # a repository with no commits yet
            return ""
        root = repo.working_tree_dir or path
        relative = os.path.relpath(os.path.abspath(path), root)
        scope = None if relative == "." else relative
        dirty = repo.is_dirty(untracked_files=True, path=scope)
        return f"{sha}+dirty" if dirty else sha
    finally:
        repo.close()  # reading the commit started a `git cat-file` that would outlive us


# -- the source and its checkout -------------------------------------------------------------

#: Url schemes git may use for a source. ``ext::`` and other remote helpers run programs,
#: so they are refused here and, belt and braces, through ``GIT_ALLOW_PROTOCOL``.
_SCHEMES = frozenset({"https", "http", "ssh", "git+ssh", "ssh+git", "git", "file"})
_ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
#: ``user@host:path``: git's scp-like ssh syntax (a colon before any slash).
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?[^/:]+:")
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{4,63}$")
_HEAD_FILE = re.compile(r"^(?:ref: refs/\S+|[0-9a-f]{40}|[0-9a-f]{64})\n?$")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/reconciler/git`` (``~/.cache/...``): clones are disposable."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reconciler" / "git"


def _check_url(url: str) -> None:
    """Refuse urls git would read as options or as a command-running remote helper."""
    if not url or url != url.strip() or any(ord(c) < 32 for c in url):
        raise SourceError(f"invalid git url {url!r}: empty or contains blanks/control characters")
    if url.startswith("-"):
        raise SourceError(f"invalid git url {url!r}: starts with '-'")
    if "::" in url.split("/", 1)[0]:
        raise SourceError(f"invalid git url {url!r}: remote helpers ('transport::') are refused")
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            allowed = ", ".join(sorted(_SCHEMES))
            raise SourceError(f"invalid git url {url!r}: scheme {scheme!r} is not one of {allowed}")


def _check_ref(ref: str) -> None:
    """The rules of ``git check-ref-format``, plus no leading '-' (it would be an option)."""
    if ref == "":
        return
    bad = (
        ref.startswith(("-", "/"))
        or ref.endswith(("/", ".", ".lock"))
        or ref == "@"
        or any(
            part == "" or part.startswith(".") or part.endswith(".lock") for part in ref.split("/")
        )
        or ".." in ref
        or "@{" in ref
        or any(ord(c) < 32 or ord(c) == 127 or c in " ~^:?*[\\" for c in ref)
    )
    if bad:
        raise SourceError(f"invalid git ref {ref!r}: not a valid branch, tag or commit name")


def _normal_path(path: str) -> str:
    """``path`` as a clean relative POSIX path ("" for the root); escapes are refused."""
    if "\\" in path or any(ord(c) < 32 for c in path):
        raise SourceError(f"invalid sub-directory {path!r}: use '/' and printable characters")
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise SourceError(f"invalid sub-directory {path!r}: must be relative to the repository")
    if ".." in pure.parts:
        raise SourceError(f"invalid sub-directory {path!r}: '..' would leave the repository")
    if ".git" in pure.parts:
        raise SourceError(f"invalid sub-directory {path!r}: '.git' is git's, not the source's")
    text = pure.as_posix()
    return "" if text == "." else text


@dataclass(frozen=True)
class GitSource:
    """Where manifests come from: a repository, a ref in it, a sub-directory of it.

    ``url`` is an https, http, ssh (``ssh://`` or ``user@host:path``), ``git://`` or
    ``file://`` url, or a plain path to a repository (made absolute when syncing). ``ref`` is
    a branch, a tag (``refs/heads/x`` and ``refs/tags/x`` settle a name that is both; a plain
    name is looked up as a branch first), or a full or abbreviated commit; empty means the
    remote's default branch. ``path`` is the sub-directory holding the manifests ("" is the
    repository's root). ``cache_dir`` holds one clone per source, see ``work_tree``.
    Malformed values raise ``SourceError`` here, before any git runs.
    """

    url: str
    ref: str = ""
    path: str = ""
    cache_dir: Path = field(default_factory=default_cache_dir)

    def __post_init__(self) -> None:
        _check_url(self.url)
        _check_ref(self.ref)
        object.__setattr__(self, "path", _normal_path(self.path))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    @property
    def remote(self) -> str:
        """The url git is given: a plain path made absolute, anything else as written."""
        if "://" in self.url or _SCP_LIKE.match(self.url):
            return self.url
        return os.path.abspath(os.path.expanduser(self.url))

    @property
    def work_tree(self) -> Path:
        """This source's own clone: ``<cache_dir>/<repo name>-<hash>``.

        The hash covers the url, the ref and the path, so two sources never share a work
        tree: syncing one can never rewrite files another is reading. The name in front is
        only there to make the cache readable to a person.
        """
        identity = "\0".join((self.remote, self.ref, self.path))
        digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
        stem = re.sub(r"\.git$", "", self.remote.rstrip("/").rsplit("/", 1)[-1])
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem.rsplit(":", 1)[-1])[:40].lstrip(".") or "repo"
        return self.cache_dir / f"{stem}-{digest}"


@dataclass(frozen=True)
class Checkout:
    """The outcome of a sync: a work tree at exactly one commit.

    ``root`` is the work tree, ``manifests`` the source's sub-directory in it (checked to be
    a directory inside ``root``), ``revision`` the full commit sha, ``ref`` what was checked
    out, fully qualified (``refs/heads/main``, ``refs/tags/v1``, or the sha for a commit),
    and ``changed`` whether ``revision`` differs from the one the last completed sync of this
    source produced (true on the first): the service's cue to reconcile.
    """

    root: Path
    manifests: Path
    revision: str
    ref: str
    changed: bool


# -- running git -----------------------------------------------------------------------------

#: Settings that keep the user's or the system's git configuration from changing what a
#: checkout contains or from starting helpers: no hooks, no fsmonitor daemon, no
#: submodules, no line-ending conversion, garbage collection in the foreground (it is then
#: under the timeout too, and leaves no detached process behind).
_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.autocrlf=false",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "gc.autoDetach=false",
    "advice.detachedHead=false",
    "credential.interactive=false",
)

#: Checked before ``_PERMANENT``: http answers that say "later", not "never".
_TEMPORARY_FIRST = ("returned error: 408", "returned error: 429")
_TEMPORARY = (
    "could not resolve",
    "connection refused",
    "connection reset",
    "connection timed out",
    "timed out",
    "unable to connect",
    "failed to connect",
    "network is unreachable",
    "no route to host",
    "temporary failure",
    "the remote end hung up",
    "early eof",
    "unexpected disconnect",
    "rpc failed",
    "returned error: 5",
    "broken pipe",
    "ssl",
    "gnutls",
    "operation too slow",
    "could not read from remote repository",
    "unable to access",
)
_PERMANENT = (
    "does not appear to be a git repository",
    "repository not found",
    "not found",
    "does not exist",
    "not exported",
    "no such repository",
    "access denied",
    "authentication failed",
    "terminal prompts disabled",
    "could not read username",
    "could not read password",
    "permission denied",
    "host key verification failed",
    "returned error: 4",
    "not allowed",
    "unsupported protocol",
)


def _protocol_config(url: str) -> tuple[str, ...]:
    """Wire protocol version 0 for ``git://``, git's default (2) for everything else.

    git writes each pkt-line of a request with its own ``write`` and does not set
    ``TCP_NODELAY`` on a ``git://`` socket, so every request of several lines waits for the
    server's delayed ACK (40 ms on Linux). Protocol 2 sends two such requests per fetch
    (``ls-refs``, then ``fetch``); protocol 0 opens with a one-line request and the server
    answers with its refs at once. Measured against ``git daemon`` on 127.0.0.1: a fetch
    with nothing new takes ~15 ms instead of ~60 ms. The cost, all refs advertised on every
    fetch, is small for the repositories a ``git daemon`` serves. https is not affected
    (curl sets ``TCP_NODELAY``) and keeps protocol 2 and its ref filtering.
    """
    return ("protocol.version=0",) if url.lower().startswith("git://") else ()


def _redact(text: str, url: str) -> str:
    """``text`` with the password (token) of ``url`` blanked: messages end up in logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    if parts.password is None:
        return text
    netloc = parts.netloc.rsplit("@", 1)
    safe = urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc[-1]}"))
    return text.replace(url, safe).replace(parts.password, "***")


#: Lines git adds to every transport failure; they say nothing about this one.
_BOILERPLATE = (
    "Please make sure you have the correct access rights",
    "and the repository exists.",
)


def _stderr_of(error: git.GitCommandError) -> str:
    """git's own message, without GitPython's ``stderr: '...'`` wrapping, on one line."""
    text = str(error.stderr).strip()
    text = text.removeprefix("stderr:").strip().removeprefix("'").removesuffix("'")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line.removeprefix("fatal: ").removeprefix("error: ") for line in lines]
    return "; ".join(lines)[:500] or f"git exited with {error.status}"


def _shown(message: str) -> str:
    """``message`` without git's boilerplate advice, for people (classify the full text)."""
    parts = [part for part in message.split("; ") if not part.startswith(_BOILERPLATE)]
    if len(parts) > 1:
        parts = [part for part in parts if part != "Could not read from remote repository."]
    return "; ".join(parts)


def _killed(error: git.GitCommandError) -> bool:
    """Whether git died of a signal: GitPython's ``kill_after_timeout`` or someone else."""
    return (isinstance(error.status, int) and error.status < 0) or "Timeout:" in str(error.stderr)


def _disk_error(error: OSError, what: str) -> SourceFailure:
    """A file-system failure in the cache: a full disk passes, a permission problem stays."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EAGAIN):
        return SourceUnavailable(f"{what}: {error}")
    return SourceError(f"{what}: {error}")


class _Git:
    """git commands in one clone, with the environment and time limit every one of them gets.

    GitPython runs each command (``Git.execute``) and kills it, children included, once the
    sync's deadline passes (``kill_after_timeout``).
    """

    def __init__(self, work_tree: Path, url: str, deadline: float, timeout: float) -> None:
        self.work_tree = work_tree
        self.git_dir = work_tree / ".git"
        self.url = url
        self.deadline = deadline
        self.timeout = timeout
        self.runner = git.Git(str(work_tree))
        self.config = _CONFIG + _protocol_config(url)
        ssh = os.environ.get("GIT_SSH_COMMAND") or "ssh"
        connect = max(1, min(int(timeout), 60))
        self.env = {
            # Pin git to this clone whatever the caller's environment says.
            "GIT_DIR": str(self.git_dir),
            "GIT_WORK_TREE": str(work_tree),
            "GIT_INDEX_FILE": str(self.git_dir / "index"),
            "GIT_OBJECT_DIRECTORY": str(self.git_dir / "objects"),
            "GIT_COMMON_DIR": str(self.git_dir),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": "",
            "GIT_NAMESPACE": "",
            "GIT_CONFIG_PARAMETERS": "",
            "GIT_CONFIG_COUNT": "0",
            # Never ask anyone for anything.
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/true",
            "SSH_ASKPASS": "/bin/true",
            "GCM_INTERACTIVE": "never",
            "GIT_SSH_COMMAND": f"{ssh} -o BatchMode=yes -o ConnectTimeout={connect}",
            "GIT_ALLOW_PROTOCOL": _ALLOWED_PROTOCOLS,
        }

    def _remaining(self, what: str) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise SourceUnavailable(f"{what} {self.shown_url}: out of time ({self.timeout:g} s)")
        return remaining

    @property
    def shown_url(self) -> str:
        return _redact(self.url, self.url)

    def local(self, *args: str) -> str:
        """A command that only touches the clone: any failure means the clone is damaged."""
        what = f"git {args[0]}"
        try:
            return self._execute(args, what)
        except git.GitCommandError as error:
            if _killed(error):
                raise SourceUnavailable(
                    f"{what} in the cache of {self.shown_url} did not finish within "
                    f"{self.timeout:g} s"
                ) from error
            raise _Broken(f"{what}: {_stderr_of(error)}") from error

    def quiet(self, *args: str) -> str | None:
        """A local query whose failure is an answer (``rev-parse --verify``): None."""
        try:
            return self._execute(args, f"git {args[0]}")
        except git.GitCommandError as error:
            if _killed(error):
                raise SourceUnavailable(
                    f"git {args[0]} did not finish within {self.timeout:g} s"
                ) from error
            return None

    def network(self, *args: str) -> str:
        """A command that talks to the remote; its failure is classified by git's message.

        Timeouts and the usual network errors are temporary; a missing repository or
        refused credentials are permanent; anything else may be a damaged clone.
        """
        what = f"git {args[0]}"
        try:
            return self._execute(args, what)
        except git.GitCommandError as error:
            message = _redact(_stderr_of(error), self.url)
            lowered = message.lower()
            if _killed(error):
                raise SourceUnavailable(
                    f"{what} {self.shown_url}: no answer within {self.timeout:g} s (git was killed)"
                ) from error
            if "couldn't find remote ref" in lowered:
                raise _MissingRemoteRef(message) from error
            shown = f"{what} {self.shown_url}: {_shown(message)}"
            if any(marker in lowered for marker in _TEMPORARY_FIRST):
                raise SourceUnavailable(shown) from error
            if any(marker in lowered for marker in _PERMANENT):
                raise SourceError(shown) from error
            if any(marker in lowered for marker in _TEMPORARY):
                raise SourceUnavailable(shown) from error
            raise _Broken(shown) from error

    def _execute(self, args: tuple[str, ...], what: str) -> str:
        command = ["git"]
        for setting in self.config:
            command += ["-c", setting]
        command += args
        try:
            return self.runner.execute(
                command,
                kill_after_timeout=self._remaining(what),
                env=self.env,
                strip_newline_in_stdout=True,
            )
        except git.GitCommandNotFound as error:
            raise SourceError(f"cannot run git: {error}") from error


class _MissingRemoteRef(Exception):
    """The remote has no ref of the name fetched: permanent, but the caller words it."""


# -- the cache on disk -----------------------------------------------------------------------


@contextlib.contextmanager
def _locked(lock_path: Path, deadline: float, what: str) -> Iterator[None]:
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


def _delete(path: Path) -> None:
    """Delete a file, a symlink or a directory tree, whichever ``path`` is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _remove(path: Path) -> None:
    """Delete a clone, renaming it aside first so that a crash leaves only litter."""
    if not path.exists() and not path.is_symlink():
        return
    trash = path.with_name(f"{path.name}.trash-{uuid.uuid4().hex[:8]}")
    os.rename(path, trash)
    _delete(trash)


def _sweep(work_tree: Path) -> None:
    """Remove what killed syncs left: half-made clones and half-deleted ones."""
    litter = re.compile(re.escape(work_tree.name) + r"\.(?:tmp|trash)-[0-9a-f]{8}")
    for path in work_tree.parent.glob(f"{work_tree.name}.*-*"):
        if litter.fullmatch(path.name):
            _delete(path)


def _healthy(work_tree: Path, url: str) -> bool:
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


def _clear_stale_locks(git_dir: Path) -> None:
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


def _read_ref(repo: git.Repo, refname: str) -> str | None:
    """The sha a local ref holds (loose or packed), read by GitPython without a process."""
    try:
        return git.SymbolicReference.dereference_recursive(repo, refname)
    except (ValueError, OSError):
        return None


def _synced_file(work_tree: Path) -> Path:
    """Where the last completed sync's revision is kept: beside the clone, not in it.

    Outside the clone so that it survives a re-clone: a damaged cache replaced by a fresh
    clone of the same commit is not a change worth reconciling for.
    """
    return work_tree.with_name(f"{work_tree.name}.synced")


def _synced(work_tree: Path) -> str:
    try:
        return _synced_file(work_tree).read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _record_synced(work_tree: Path, revision: str) -> None:
    """Write the completed revision atomically: a crash leaves the old one or the new one."""
    final = _synced_file(work_tree)
    temporary = final.with_name(f"{final.name}.tmp")
    temporary.write_text(revision + "\n", encoding="ascii")
    os.replace(temporary, final)


# -- sync ------------------------------------------------------------------------------------

_Kind = Literal["branch", "tag", "commit"]


@dataclass(frozen=True)
class _Target:
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


_ALL_REFS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")


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
        raise _disk_error(error, f"cannot create the git cache {cache_dir}") from error
    try:
        with _locked(work_tree.with_name(work_tree.name + ".lock"), deadline, _redact(url, url)):
            _sweep(work_tree)
            return _sync_locked(source, _Git(work_tree, url, deadline, timeout))
    except OSError as error:
        raise _disk_error(error, f"git cache {work_tree}") from error


def _sync_locked(source: GitSource, git_: _Git) -> Checkout:
    """``sync`` under the cache's lock: clone if needed, update, and re-clone once if broken."""
    cloned = False
    if not _healthy(git_.work_tree, git_.url):
        _remove(git_.work_tree)
        _clone(git_)
        cloned = True
    else:
        _clear_stale_locks(git_.git_dir)
    try:
        return _update(source, git_, fetched=cloned)
    except _Broken as error:
        if cloned:
            raise SourceError(
                f"sync of {git_.shown_url} failed in a fresh clone: {error}"
            ) from error
    # The clone is damaged in a way the health check could not see: start again, once.
    _remove(git_.work_tree)
    _clone(git_)
    try:
        return _update(source, git_, fetched=True)
    except _Broken as error:
        raise SourceError(f"sync of {git_.shown_url} failed in a fresh clone: {error}") from error


def _clone(git_: _Git) -> None:
    """Clone into a temporary directory, then rename it into place.

    ``git init`` plus one fetch of every branch and tag; nothing is checked out yet. Only a
    clone whose fetch completed is ever renamed to the cache's name, so a killed clone never
    looks like a usable cache.
    """
    final = git_.work_tree
    temporary = final.with_name(f"{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    temporary.mkdir()
    fresh = _Git(temporary, git_.url, git_.deadline, git_.timeout)
    try:
        try:
            fresh.local("init", "--quiet")
            fresh.local("config", "remote.origin.url", git_.url)
        except _Broken as error:  # git cannot even make an empty repository here
            raise SourceError(f"cannot create a clone in {final.parent}: {error}") from error
        try:
            _fetch(fresh, _ALL_REFS, prune=False)
        except _Broken as error:
            # Nothing local can be damaged in a brand-new repository: the trouble is on
            # the remote's side or on the way, and not one git names: assume it passes.
            raise SourceUnavailable(str(error)) from error
        except _MissingRemoteRef as error:  # not expected with wildcard refspecs
            raise SourceError(f"git fetch {git_.shown_url}: {error}") from error
        os.rename(temporary, final)
    finally:
        if temporary.exists():
            _delete(temporary)


def _fetch(git_: _Git, refspecs: tuple[str, ...], prune: bool) -> None:
    # --no-auto-gc: the automatic maintenance costs a process on every fetch, even a no-op;
    # ``_update`` runs it only when a new commit arrived.
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


def _update(source: GitSource, git_: _Git, fetched: bool) -> Checkout:
    """Fetch what the ref needs, resolve it to a commit, check that out, and clean."""
    try:
        repo = git.Repo(str(git_.work_tree))
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise _Broken(f"not a git repository: {error}") from error
    try:
        target = _resolve(source.ref, git_, repo, fetched)
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
    previous = _synced(git_.work_tree)
    _record_synced(git_.work_tree, target.sha)
    if previous != target.sha:
        _maintain(git_)
    return Checkout(
        root=git_.work_tree,
        manifests=manifests,
        revision=target.sha,
        ref=target.qualified,
        changed=previous != target.sha,
    )


def _maintain(git_: _Git) -> None:
    """``git maintenance run --auto``: pack loose objects now and then, best effort.

    Every fetch of a small change leaves loose objects; left alone, thousands of them slow
    every later command. This runs in the foreground (``gc.autoDetach=false``), so no
    process outlives the sync, and under the sync's deadline. Its failure is not the
    sync's: the checkout is already complete.
    """
    with contextlib.suppress(SourceFailure):
        git_.quiet("maintenance", "run", "--auto", "--quiet")


def _manifests(source: GitSource, git_: _Git, target: _Target) -> Path:
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


def _resolve(ref: str, git_: _Git, repo: git.Repo, fetched: bool) -> _Target:
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
            with contextlib.suppress(_MissingRemoteRef):
                return _resolve_named(git_, repo, ref, "branch", fetched)
        elif _read_ref(repo, f"refs/tags/{ref}"):
            with contextlib.suppress(_MissingRemoteRef):
                return _resolve_named(git_, repo, ref, "tag", fetched)
        elif _SHORT_SHA.match(ref) and (sha := _commit_of(git_, ref)):
            return _Target("commit", sha, sha)  # an abbreviated commit already here
        _fetch_everything(git_)
    target = _lookup(git_, repo, ref)
    if target is None:
        raise SourceError(
            f"{git_.shown_url} has no branch, tag or commit named {ref!r}{_inventory(repo)}"
        )
    return target


def _resolve_default(git_: _Git, repo: git.Repo, fetched: bool) -> _Target:
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
            _fetch(git_, (f"+refs/heads/{branch}:refs/remotes/origin/{branch}",), prune=False)
        except _MissingRemoteRef as error:  # deleted between ls-remote and fetch
            raise SourceUnavailable(f"{git_.shown_url}: default branch moved: {error}") from error
    commit = _read_ref(repo, f"refs/remotes/origin/{branch}")
    if commit is None:
        raise _Broken(f"refs/remotes/origin/{branch} missing after fetch")
    return _Target("branch", branch, commit)


def _resolve_named(
    git_: _Git, repo: git.Repo, name: str, kind: Literal["branch", "tag"], fetched: bool
) -> _Target:
    """A branch or tag by name: fetch just that ref (unless a clone just fetched all).

    Raises ``_MissingRemoteRef`` when the remote has no such ref, so that a plain name
    can still be tried as the other kind.
    """
    local = f"refs/remotes/origin/{name}" if kind == "branch" else f"refs/tags/{name}"
    remote = f"refs/heads/{name}" if kind == "branch" else f"refs/tags/{name}"
    if not fetched:
        _fetch(git_, (f"+{remote}:{local}",), prune=False)
    sha = _read_ref(repo, local)
    if sha is None:
        raise _MissingRemoteRef(f"no {remote}")
    if kind == "tag":
        sha = _commit_of(git_, local)  # an annotated tag is an object of its own: peel it
        if sha is None:  # damage, or a tag of a tree: a fresh clone will tell which
            raise _Broken(f"tag {name!r} does not lead to a commit")
    return _Target(kind, name, sha)


def _resolve_qualified(
    git_: _Git, repo: git.Repo, name: str, kind: Literal["branch", "tag"], fetched: bool
) -> _Target:
    """``refs/heads/x`` or ``refs/tags/x``: exactly that kind, or a clear error."""
    try:
        return _resolve_named(git_, repo, name, kind, fetched)
    except _MissingRemoteRef as error:
        raise SourceError(
            f"{git_.shown_url} has no {kind} named {name!r}{_inventory(repo)}"
        ) from error


def _resolve_commit(git_: _Git, sha: str, fetched: bool) -> _Target:
    """A full commit id: no fetch when present (a pinned commit never changes)."""
    if (found := _commit_of(git_, sha)) is not None:
        return _Target("commit", found, found)
    if not fetched:
        _fetch_everything(git_)
        if (found := _commit_of(git_, sha)) is not None:
            return _Target("commit", found, found)
    # Not reachable from any branch or tag: some servers still hand it out by id. The
    # remote was just reached, so a refusal here, whatever git calls it, means "no such
    # commit"; only running out of time stays a temporary failure.
    try:
        _fetch(git_, (sha,), prune=False)
    except (_MissingRemoteRef, SourceFailure, _Broken) as error:
        if time.monotonic() >= git_.deadline:
            raise SourceUnavailable(
                f"git fetch {git_.shown_url}: out of time ({git_.timeout:g} s)"
            ) from error
    if (found := _commit_of(git_, sha)) is not None:
        return _Target("commit", found, found)
    raise SourceError(f"{git_.shown_url} has no commit {sha}")


def _fetch_everything(git_: _Git) -> None:
    """Every branch and tag, pruning the ones the remote deleted."""
    try:
        _fetch(git_, _ALL_REFS, prune=True)
    except _MissingRemoteRef as error:  # not expected with wildcard refspecs
        raise SourceError(f"git fetch {git_.shown_url}: {error}") from error


def _lookup(git_: _Git, repo: git.Repo, ref: str) -> _Target | None:
    """A name after a full fetch: a branch, else a tag, else an abbreviated commit."""
    for kind in ("branch", "tag"):
        with contextlib.suppress(_MissingRemoteRef):
            return _resolve_named(git_, repo, ref, kind, fetched=True)
    if _SHORT_SHA.match(ref) and (sha := _commit_of(git_, ref)):
        return _Target("commit", sha, sha)
    return None


def _commit_of(git_: _Git, revision: str) -> str | None:
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
