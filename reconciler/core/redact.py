"""Keeping credentials out of everything the reconciler prints, logs or serves.

Two rules, one module, used by every output:

- **URLs**: the user information of every URL in a text is replaced by ``***``, the whole
  of it, not just a password: GitHub tokens are often written as the user name
  (``https://TOKEN@github.com/org/repo``), and ``ssh://TOKEN@host/repo`` the same. A git
  error quotes the remote, a status page shows the source: both go through
  :func:`redact`.
- **Env values**: a variable whose name looks secret (``*PASSWORD*``, ``*PASS``,
  ``*PASSWD*``, ``*TOKEN*``, ``*SECRET*``, ``*KEY*``, ``*CREDENTIAL*``) or whose value does
  (a URL with credentials, a ``--password=...``-style option) is shown as ``******``
  (:func:`mask_env`) where a value is shown at all, and as a digest marker
  (``<secret sha256:...>``, :func:`secret_marker`) in what is kept or compared: the spec
  label on the infra container, the field changes of a plan (:func:`redact_spec`).
- **Secrets and ConfigMaps**: their values never enter a spec, a label or a plan; a pod's
  spec carries a digest of what it uses (:func:`digest`), so a change rolls the pod and
  shows as ``<secret changed>`` with the two short digests.

A digest is not encryption: a short, guessable password can be found again from its
digest by trying candidates. Use long random secrets (``openssl rand -base64 32``).

:func:`redact` runs in linear time on any input, hostile ones included: it is one regular
expression whose every attempt is bounded (see ``_URL_USERINFO``), because a label value of
megabytes reaches it from a manifest, and a quadratic scan there would stall the service.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: ``://userinfo@``, whatever the scheme (hiding too much is harmless). Linear: the pattern
#: starts with a literal, so the engine jumps from one ``://`` to the next; the user
#: information stops at the first ``/ ? #`` or blank, which the next ``://`` contains, so no
#: two attempts scan the same stretch of text; and its runs between ``@`` are matched
#: possessively (``*+``, ``++``), so a failed attempt never backtracks. The *last* ``@``
#: ends the user information: a password holding an unescaped ``@`` is hidden whole.
_URL_USERINFO = re.compile(r"://(?:[^/?#\s@]*+@)++")

SECRET_MARKERS = ("PASSWORD", "PASSWD", "TOKEN", "SECRET", "KEY", "CREDENTIAL")
MASK = "******"
REDACTED = "***"
#: ``<secret sha256:0123456789abcdef>``: what a secret value becomes in a spec label or a plan
SECRET_MARKER_PREFIX = "<secret sha256:"
DIGEST_LENGTH = 16  # hex digits of a digest: 64 bits, to tell a change, not to identify


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
    """Whether an env var's name says its value is a credential: ``*PASSWORD*``,
    ``*PASSWD*``, ``*PASS``, ``*TOKEN*``, ``*SECRET*``, ``*KEY*`` (so ``*_KEY`` and
    ``*_KEY_*``), ``*CREDENTIAL*``. Hiding too much is harmless; hiding too little is not."""
    upper = name.upper()
    return upper.endswith("PASS") or any(marker in upper for marker in SECRET_MARKERS)


#: option names that carry a credential after ``=``: ``--password=...``, ``-token=...``
_SECRET_OPTION_MARKERS = ("PASS", "TOKEN", "SECRET", "KEY", "CREDENTIAL", "AUTH")


def looks_secret(value: str) -> bool:
    """Whether a value itself carries a credential, whatever its variable is called: a URL
    with user information (``postgres://app:pw@db/app``), or an option such as
    ``--password=...`` or ``--api-key=...``. Linear in the length of ``value``: one scan
    for ``://`` (then the bounded URL pattern), one split on blanks, one ``partition`` per
    word."""
    if "://" in value and _URL_USERINFO.search(value):
        return True
    if "=" not in value or "-" not in value:
        return False
    for word in value.split():
        if not word.startswith("-"):
            continue
        option, equals, _ = word.partition("=")
        if equals:
            upper = option.upper()
            if any(marker in upper for marker in _SECRET_OPTION_MARKERS):
                return True
    return False


def is_secret_env(name: str, value: Any) -> bool:
    """A variable to keep out of every output: by its name, or by its value."""
    return is_secret_name(name) or (isinstance(value, str) and looks_secret(value))


def mask_env(name: str, value: Any) -> Any:
    """Hide values of variables whose names (or values) look secret, in every output."""
    return MASK if value is not None and is_secret_env(name, value) else value


def digest(value: str | bytes, context: str = "") -> str:
    """``sha256:<16 hex>`` of ``value`` (after ``context``, which keeps equal values of
    different keys apart): what specs, labels and plans hold instead of a secret."""
    data = value.encode() if isinstance(value, str) else value
    hasher = hashlib.sha256(b"reconciler-digest-v1\0")
    hasher.update(context.encode())
    hasher.update(b"\0")
    hasher.update(data)
    return "sha256:" + hasher.hexdigest()[:DIGEST_LENGTH]


def secret_marker(value: str | bytes, context: str = "") -> str:
    """``<secret sha256:...>``: a secret value as a label or a plan may show it."""
    return f"<secret {digest(value, context)}>"


def is_secret_marker(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_MARKER_PREFIX) and value[-1] == ">"


def marker_digest(marker: str) -> str:
    """``sha256:...`` of a ``<secret sha256:...>`` marker."""
    return marker[len("<secret ") : -1]


def redact_env_value(name: str, value: Any) -> Any:
    """The value as a spec label keeps it: a digest marker when it looks secret."""
    if isinstance(value, str) and not is_secret_marker(value) and is_secret_env(name, value):
        return secret_marker(value)
    return value


def redact_args(args: Any) -> Any:
    """``command`` or ``args`` with every secret-looking word replaced by its marker."""
    if not isinstance(args, list):
        return args
    return [secret_marker(a) if isinstance(a, str) and looks_secret(a) else a for a in args]


def redact_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A normalised pod spec fit for a Docker label and a plan: every env value whose name
    or content looks secret, and every such word of ``command`` and ``args``, becomes its
    digest marker. Values from Secrets never reach a spec (only their digests do)."""
    result = dict(spec)
    containers = []
    for container in spec.get("containers", []):
        if not isinstance(container, Mapping):
            containers.append(container)
            continue
        changed = dict(container)
        env = container.get("env")
        if isinstance(env, list):
            changed["env"] = [
                {**e, "value": redact_env_value(str(e.get("name")), e["value"])}
                if isinstance(e, Mapping) and "value" in e
                else e
                for e in env
            ]
        for key in ("command", "args"):
            if key in container:
                changed[key] = redact_args(container[key])
        containers.append(changed)
    if "containers" in spec:
        result["containers"] = containers
    return result
