"""What a git source is (``GitSource``) and what a sync hands back (``Checkout``).

Pure: no git runs here. A malformed url, ref or sub-directory is refused when the value is
made, before any process starts, because git would read a url or ref beginning with ``-``
as an option, and ``ext::`` remotes run programs.

The url may carry a credential (``https://TOKEN@host/repo``, ``https://user:TOKEN@...``,
``ssh://TOKEN@...``): git needs it whole, a person must never see it. ``redacted`` is how
the whole package shows a url, or a text that may quote it (git's stderr), to anyone: the
source's messages, its repr and the name of its clone's directory.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from reconciler.core.errors import SourceError
from reconciler.core.redact import redact, url_secrets

#: Url schemes git may use for a source. ``ext::`` and other remote helpers run programs,
#: so they are refused here and, belt and braces, through ``GIT_ALLOW_PROTOCOL``
#: (``runner``).
_SCHEMES = frozenset({"https", "http", "ssh", "git+ssh", "ssh+git", "git", "file"})
#: ``user@host:path``: git's scp-like ssh syntax (a colon before any slash).
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?[^/:]+:")


#: The user information of a url (``TOKEN@``, ``user:TOKEN@``), once ``scheme://`` is cut
#: off: up to the last ``@`` before the path, as ``core.redact`` reads it.
_USERINFO = re.compile(r"^[^/?#]*@")


def redacted(text: str, url: str) -> str:
    """``text`` (a url, a message quoting one, git's stderr) as it may be shown: without the
    credentials of ``url`` nor those of any url in it. Messages reach the log and /status."""
    return redact(text, url_secrets(url))


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/reconciler/git`` (``~/.cache/...``): clones are disposable."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reconciler" / "git"


def _check_url(url: str) -> None:
    """Refuse urls git would read as options or as a command-running remote helper."""
    shown = redacted(url, url)
    if not url or url != url.strip() or any(ord(c) < 32 for c in url):
        raise SourceError(f"invalid git url {shown!r}: empty or contains blanks/control characters")
    if url.startswith("-"):
        raise SourceError(f"invalid git url {shown!r}: starts with '-'")
    if "::" in url.split("/", 1)[0]:
        raise SourceError(f"invalid git url {shown!r}: remote helpers ('transport::') are refused")
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            allowed = ", ".join(sorted(_SCHEMES))
            raise SourceError(
                f"invalid git url {shown!r}: scheme {scheme!r} is not one of {allowed}"
            )


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

    def __repr__(self) -> str:
        """The dataclass's repr, but with the url's credentials hidden: sources get logged."""
        return (
            f"GitSource(url={redacted(self.url, self.url)!r}, ref={self.ref!r}, "
            f"path={self.path!r}, cache_dir={self.cache_dir!r})"
        )

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
        only there to make the cache readable to a person (the repository's name, or the
        host's when the url has no path).
        """
        identity = "\0".join((self.remote, self.ref, self.path))
        digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
        # The name leaves the user information out: a url with no path (``https://TOKEN@host``)
        # would otherwise write the token into every cache path a message shows.
        scheme, separator, rest = self.remote.partition("://")
        named = scheme + separator + _USERINFO.sub("", rest) if separator else self.remote
        stem = re.sub(r"\.git$", "", named.rstrip("/").rsplit("/", 1)[-1])
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
