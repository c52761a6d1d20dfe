"""What a git host's webhook says, and whether to believe it.

Pure functions over headers and bytes, no socket and no state, so that clients and tests
sign exactly the way the server checks (:func:`sign`), and so that the rules below sit in
one place:

- Signatures are checked before the body is parsed (an unsigned request learns nothing about
  what we accept), with :func:`hmac.compare_digest` on bytes (``compare_digest`` on ``str``
  raises on non-ASCII, which a hostile header can contain).
- The first credential header present decides (:func:`_authenticate`): one bad credential
  is never ignored because another one is good.
- A ref that cannot be a git ref is treated as absent (:func:`pushed_ref`): it ends up in
  log lines, where a newline would forge entries.

:func:`sign`, :func:`pushed_ref` and :func:`pushed_branch` are for any caller; the names
with a leading underscore are for the endpoints in :mod:`.endpoints` only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from email.message import Message
from typing import Any, Final
from urllib.parse import parse_qs

GITHUB_SIGNATURE: Final = "X-Hub-Signature-256"
GITLAB_TOKEN: Final = "X-Gitlab-Token"
GENERIC_SIGNATURE: Final = "X-Reconciler-Signature-256"


def sign(secret: str, body: bytes) -> str:
    """The value of a ``sha256=<hex>`` signature header for ``body``, as GitHub computes it.

    Exposed so that clients (tests, a ``reconciler suspend`` command) sign the same way the
    server checks.
    """
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def pushed_ref(payload: Mapping[str, Any]) -> str | None:
    """The ref a push webhook is about (``refs/heads/main``, ``refs/tags/v1``), or None.

    GitHub and GitLab both put it in ``ref``. Anything that cannot be a git ref (not a
    string, empty, over 255 characters, with whitespace or control characters) is treated
    as absent: it ends up in log lines, where a newline would forge entries.
    """
    ref = payload.get("ref")
    if not isinstance(ref, str) or not 0 < len(ref) <= 255:
        return None
    return ref if ref.isprintable() and not any(c.isspace() for c in ref) else None


def pushed_branch(payload: Mapping[str, Any]) -> str | None:
    """The branch name of a branch push (``main``); None for a tag push or no ref."""
    ref = pushed_ref(payload)
    prefix = "refs/heads/"
    return ref[len(prefix) :] if ref is not None and ref.startswith(prefix) else None


def _digest_matches(header: str, expected: str) -> bool:
    """Whether a ``sha256=<hex>`` header equals the expected one, in constant time."""
    # Header values arrive decoded as latin-1; encoding back gives the bytes that were sent.
    try:
        sent = header.strip().lower().encode("latin-1")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sent, expected.encode("ascii"))


def _authenticate(headers: Message, body: bytes, secret: str) -> tuple[str | None, str]:
    """(provider, "") when a known signature or token verifies; (None, why) when not.

    The first header present decides: a request carrying a wrong GitHub signature is refused
    even if it also carries a right generic one, so one bad credential is never ignored.
    """
    expected = sign(secret, body)
    if (value := headers.get(GITHUB_SIGNATURE)) is not None:
        ok = _digest_matches(value, expected)
        return ("github", "") if ok else (None, f"{GITHUB_SIGNATURE} does not match")
    if (value := headers.get(GITLAB_TOKEN)) is not None:
        try:
            sent = value.encode("latin-1")
        except UnicodeEncodeError:
            sent = b""
        ok = hmac.compare_digest(sent, secret.encode("utf-8"))
        return ("gitlab", "") if ok else (None, f"{GITLAB_TOKEN} does not match")
    if (value := headers.get(GENERIC_SIGNATURE)) is not None:
        ok = _digest_matches(value, expected)
        return ("generic", "") if ok else (None, f"{GENERIC_SIGNATURE} does not match")
    if headers.get("X-Hub-Signature") is not None:
        return None, f"only {GITHUB_SIGNATURE} (HMAC-SHA256) is accepted, not X-Hub-Signature"
    return None, (
        f"missing signature: send {GITHUB_SIGNATURE}, {GITLAB_TOKEN} or {GENERIC_SIGNATURE}"
    )


def _parse_payload(headers: Message, body: bytes) -> dict[str, Any] | str:
    """The webhook's JSON object, or why it could not be read.

    GitHub can be set to send ``application/x-www-form-urlencoded`` with the JSON in a
    ``payload`` field; the signature still covers the raw body, so both are accepted.
    """
    text: str | bytes = body
    if headers.get_content_type() == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return "malformed form body"
        if len(fields.get("payload", [])) != 1:
            return "form body without one 'payload' field"
        text = fields["payload"][0]
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return "body is not valid JSON"
    if not isinstance(payload, dict):
        return "body is not a JSON object"
    return payload


def _push_event(provider: str, headers: Message) -> str | None:
    """The push event's short name, or None for an event that does not trigger."""
    if provider == "github":
        return "push" if headers.get("X-GitHub-Event", "").strip() == "push" else None
    if provider == "gitlab":
        event = headers.get("X-Gitlab-Event", "").strip()
        return {"Push Hook": "push", "Tag Push Hook": "tag push"}.get(event)
    return "push"  # the generic signature means "something changed, fetch"


def _delivery(headers: Message) -> str:
    """The git host's id of this delivery, for the log line and to accept it once; "-" when
    it sends none."""
    return (
        headers.get("X-GitHub-Delivery")
        or headers.get("X-Gitlab-Event-UUID")
        or headers.get("X-Reconciler-Delivery")
        or "-"
    )
