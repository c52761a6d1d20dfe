"""Keeping credentials out of everything the reconciler prints, logs or serves.

Two rules, one module, used by every output:

- **URLs**: the user information of every URL in a text is replaced by ``***``, the whole
  of it, not just a password: GitHub tokens are often written as the user name
  (``https://TOKEN@github.com/org/repo``), and ``ssh://TOKEN@host/repo`` the same. A git
  error quotes the remote, a status page shows the source: both go through
  :func:`redact`.
- **Env values**: a variable whose name looks secret (``*PASSWORD*``, ``*TOKEN*``,
  ``*SECRET*``, ``*KEY*``) is shown as ``******`` (:func:`mask_env`).

:func:`redact` runs in linear time on any input, hostile ones included: it is one regular
expression whose every attempt is bounded (see ``_URL_USERINFO``), because a label value of
megabytes reaches it from a manifest, and a quadratic scan there would stall the service.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: ``://userinfo@``, whatever the scheme (hiding too much is harmless). Linear: the pattern
#: starts with a literal, so the engine jumps from one ``://`` to the next; the user
#: information stops at the first ``/ ? #`` or blank, which the next ``://`` contains, so no
#: two attempts scan the same stretch of text; and its runs between ``@`` are matched
#: possessively (``*+``, ``++``), so a failed attempt never backtracks. The *last* ``@``
#: ends the user information: a password holding an unescaped ``@`` is hidden whole.
_URL_USERINFO = re.compile(r"://(?:[^/?#\s@]*+@)++")

SECRET_MARKERS = ("PASSWORD", "TOKEN", "SECRET", "KEY")
MASK = "******"
REDACTED = "***"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the user information of every URL in it replaced by ``***``, and every
    string of ``secrets`` (known credentials, e.g. the configured remote's token) too."""
    result = _URL_USERINFO.sub("://***@", text) if "://" in text else text
    for secret in secrets:
        if secret:
            result = result.replace(secret, REDACTED)
    return result


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials written into ``url`` (its user information, and the user name and
    password apart), for :func:`redact`'s ``secrets``: git sometimes quotes them alone."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return ()
    rest = url[scheme_end + 3 :]
    authority = re.split(r"[/?#\s]", rest, maxsplit=1)[0]
    if "@" not in authority:
        return ()
    userinfo = authority.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    found = [userinfo, password] if password else []
    # a token written as the user name is long; a user name such as "git" or "oauth2" is no
    # secret, and replacing every "git" in a message would mangle it
    if len(user) >= 8:
        found.append(user)
    return tuple(dict.fromkeys(found))


def is_secret_name(name: str) -> bool:
    """Whether an env var's name says its value is a credential."""
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def mask_env(name: str, value: Any) -> Any:
    """Hide values of variables whose names look secret, in every output."""
    return MASK if value is not None and is_secret_name(name) else value
