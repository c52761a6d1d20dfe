"""The only package that talks to git (GitPython): where a source tree stands, and clones.

Two jobs. ``revision_of`` labels a local source directory with the commit it is checked out
at. ``sync`` keeps a clone of a remote source (a ``GitSource``) in a cache directory and
brings its work tree to exactly the commit the source names, so that the rest of the
reconciler only ever reads plain files from a local directory.

Failures come out as two exception types, because a long-lived service must treat them
differently: ``SourceUnavailable`` (the remote cannot be reached, git timed out, another
sync holds the cache: try again later, keep running what runs) and ``SourceError`` (no such
repository, branch, tag, commit or sub-directory, refused credentials: retrying will not
help until someone changes the source or the remote). Both derive from ``SourceFailure``
(``core.errors``). Their messages reach the log and ``/status``: every url and every line
of git's stderr in them goes through ``core.redact`` first (``source.redacted``), so a
token written into the source's url, as the password or as the user name, is never shown.

May import: ``core`` and GitPython (``git``), which nothing else in the project imports
(an import-linter contract); nothing of the stages above ``core``.

The modules, in the order a sync uses them; callers import only the names re-exported here
(``from reconciler.source.git import sync``), never from the modules themselves:

- ``source``: the ``GitSource`` value, its pure url/ref/path checks, ``Checkout``.
- ``runner``: running one git command, pinned to one clone, never prompting, under the
  sync's deadline; ``failures``: what git's failures mean (later, never, damaged cache).
- ``cache``: the cache directory on disk: its lock, its health check, the litter of
  killed syncs, the revision the last sync completed.
- ``resolve``: a ref to a commit, fetching no more than it needs.
- ``update``: ``sync`` itself: lock, clone or update, check out, clean, re-clone once.
- ``revision``: ``revision_of``, and ``repository_of`` (the work tree a path is in).
- ``signatures``: ``verify``, whether a commit is signed by a key the operator allows.

GitPython costs a command that reads a plain directory (``diff DIR``) a third of its
start-up: ``sync``, ``verify``, ``SignaturePolicy``, ``Verdict`` (and the ``GitSource``
values, which only a git source needs) are imported from their modules on first use
(``__getattr__``), and ``revision_of`` looks for a repository before it imports GitPython.

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

import importlib
import os
from typing import TYPE_CHECKING, Any

# Without a git executable, importing GitPython raises (and `reconciler apply DIR` on a
# machine without git would end in an internal error): let it import, and fail only where
# git is really needed (``revision_of`` then says "no revision"; a sync says git is missing).
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from reconciler.core.errors import SourceError, SourceFailure, SourceUnavailable
from reconciler.source.git.revision import repository_of, revision_of

if TYPE_CHECKING:
    from reconciler.source.git.signatures import SignaturePolicy, Verdict, verify
    from reconciler.source.git.source import Checkout, GitSource, default_cache_dir
    from reconciler.source.git.update import sync

#: name -> the module (of this package) that defines it, imported when the name is read
_ON_FIRST_USE = {
    "sync": "update",
    "verify": "signatures",
    "SignaturePolicy": "signatures",
    "Verdict": "signatures",
    "Checkout": "source",
    "GitSource": "source",
    "default_cache_dir": "source",
}


def __getattr__(name: str) -> Any:
    """The names that need GitPython (or only a git source), imported when first read
    (PEP 562)."""
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_ON_FIRST_USE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Checkout",
    "GitSource",
    "SignaturePolicy",
    "SourceError",
    "SourceFailure",
    "SourceUnavailable",
    "Verdict",
    "default_cache_dir",
    "repository_of",
    "revision_of",
    "sync",
    "verify",
]
