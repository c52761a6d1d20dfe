"""What a failed git command means: try later, give up, or throw the clone away.

A long-lived service must tell these apart (see the package's docstring), and git says
which only in the words of its stderr, so the markers below are matched against git's own
message, once ``redacted`` (git may quote the remote's url). Two internal exceptions never
leave the package: ``Broken`` (the local clone is damaged: ``update`` clones again) and
``MissingRemoteRef`` (``resolve`` words it, or tries the name as the other kind of ref).
"""

from __future__ import annotations

import errno

import git

from reconciler.core.errors import SourceError, SourceFailure, SourceUnavailable
from reconciler.source.git.source import redacted


class Broken(Exception):
    """The local cache (not the remote) looks damaged: throw it away and clone again."""


class MissingRemoteRef(Exception):
    """The remote has no ref of the name fetched: permanent, but the caller words it."""


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

#: Lines git adds to every transport failure; they say nothing about this one.
_BOILERPLATE = (
    "Please make sure you have the correct access rights",
    "and the repository exists.",
)


def stderr_of(error: git.GitCommandError) -> str:
    """git's own message, without GitPython's ``stderr: '...'`` wrapping, on one line."""
    text = str(error.stderr).strip()
    text = text.removeprefix("stderr:").strip().removeprefix("'").removesuffix("'")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line.removeprefix("fatal: ").removeprefix("error: ") for line in lines]
    return "; ".join(lines)[:500] or f"git exited with {error.status}"


def _for_people(message: str) -> str:
    """``message`` without git's boilerplate advice, for people (classify the full text)."""
    parts = [part for part in message.split("; ") if not part.startswith(_BOILERPLATE)]
    if len(parts) > 1:
        parts = [part for part in parts if part != "Could not read from remote repository."]
    return "; ".join(parts)


def killed(error: git.GitCommandError) -> bool:
    """Whether git died of a signal: GitPython's ``kill_after_timeout`` or someone else."""
    return (isinstance(error.status, int) and error.status < 0) or "Timeout:" in str(error.stderr)


def network_failure(
    error: git.GitCommandError, what: str, url: str, timeout: float
) -> SourceFailure | MissingRemoteRef | Broken:
    """What a failed command that talked to ``url`` means, as the exception to raise.

    Timeouts and the usual network errors are temporary; a missing repository or refused
    credentials are permanent; anything else may be a damaged clone.
    """
    message = redacted(stderr_of(error), url)
    lowered = message.lower()
    if killed(error):
        return SourceUnavailable(
            f"{what} {redacted(url, url)}: no answer within {timeout:g} s (git was killed)"
        )
    if "couldn't find remote ref" in lowered:
        return MissingRemoteRef(message)
    shown = f"{what} {redacted(url, url)}: {_for_people(message)}"
    if any(marker in lowered for marker in _TEMPORARY_FIRST):
        return SourceUnavailable(shown)
    if any(marker in lowered for marker in _PERMANENT):
        return SourceError(shown)
    if any(marker in lowered for marker in _TEMPORARY):
        return SourceUnavailable(shown)
    return Broken(shown)


def disk_error(error: OSError, what: str) -> SourceFailure:
    """A file-system failure in the cache: a full disk passes, a permission problem stays."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EAGAIN):
        return SourceUnavailable(f"{what}: {error}")
    return SourceError(f"{what}: {error}")
