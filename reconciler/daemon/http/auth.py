"""Who may change the service's state over HTTP: the secret, never a browser, never twice.

Pure functions over headers and bytes, and one small thread-safe memory
(:class:`Replays`), so that clients and tests sign exactly the way the server checks:

- **The secret.** ``/suspend``, ``/resume`` and every other state-changing route need the
  service's secret (``--webhook-secret``), as either ``Authorization: Bearer <secret>``
  or an HMAC-SHA256 over a timestamped request (:func:`sign_request`):
  ``X-Reconciler-Timestamp: <unix seconds, with up to 9 decimals>`` and
  ``X-Reconciler-Signature-256: sha256=HMAC(secret, "<timestamp>.POST <path>." + body)``.
  A signature is accepted within :data:`REPLAY_WINDOW` seconds of its timestamp, for its
  own route, and once: a captured request cannot be replayed, unlike an HMAC of the
  (empty) body alone, which is the same for every request.
  Without a secret these routes are refused: nothing on the listen address may pause the
  service anonymously.
- **No cross-site requests.** A browser that visits a hostile page sends the page's POST
  to 127.0.0.1 with the user's network position; it marks it with ``Origin`` (and
  ``Sec-Fetch-Site``). A request whose origin is not this server's own
  (:func:`cross_site`) is refused before anything else, credentials or not. Git hosts and
  ``reconciler suspend`` send no ``Origin``.
- **Once.** A webhook delivery id (``X-GitHub-Delivery``, ``X-Gitlab-Event-UUID``,
  ``X-Reconciler-Delivery``) and a signed body are accepted once (:class:`Replays`).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from email.message import Message
from typing import Final
from urllib.parse import urlsplit

TIMESTAMP: Final = "X-Reconciler-Timestamp"
SIGNATURE: Final = "X-Reconciler-Signature-256"
#: Seconds a timestamped signature stays good, either side of the server's clock.
REPLAY_WINDOW: Final = 300.0
#: Deliveries and signatures remembered, at most (the oldest are forgotten first).
REMEMBERED: Final = 10_000
#: How long a webhook delivery id is remembered: redeliveries come within minutes.
DELIVERY_MEMORY: Final = 3600.0


def sign_request(secret: str, body: bytes, timestamp: str, target: str) -> str:
    """The ``X-Reconciler-Signature-256`` of ``body`` sent at ``timestamp`` (unix seconds, as
    written in its header) to ``target`` (``POST /suspend``)."""
    message = f"{timestamp}.{target}.".encode() + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, path: str, now: float | None = None) -> dict[str, str]:
    """The headers that authorize ``POST path`` with ``body``: what ``reconciler suspend``
    sends. Microseconds in the timestamp keep two requests of one second apart."""
    timestamp = f"{time.time() if now is None else now:.6f}"
    return {TIMESTAMP: timestamp, SIGNATURE: sign_request(secret, body, timestamp, f"POST {path}")}


def _header_bytes(value: str) -> bytes | None:
    """A header as the bytes that were sent (``http.client`` decodes them as latin-1)."""
    try:
        return value.strip().encode("latin-1")
    except UnicodeEncodeError:
        return None


class Replays:
    """Keys (signatures, delivery ids) seen recently: each one is accepted once.

    Bounded in time (``ttl``) and size (:data:`REMEMBERED`), so that a flood of signed
    requests cannot grow it without end; thread-safe, as requests run on their own threads.
    """

    def __init__(self, ttl: float, size: int = REMEMBERED) -> None:
        self._ttl = ttl
        self._size = size
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> when it expires
        self._lock = threading.Lock()

    def first_time(self, key: str, now: float | None = None) -> bool:
        """True the first time ``key`` is seen (within ``ttl``), and remembers it."""
        when = time.monotonic() if now is None else now
        with self._lock:
            while self._seen:
                oldest, expires = next(iter(self._seen.items()))
                if expires > when and len(self._seen) < self._size:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            self._seen[key] = when + self._ttl
            return True


def authorize(
    headers: Message,
    body: bytes,
    secret: str,
    replays: Replays,
    target: str,
    now: float | None = None,
) -> str | None:
    """None when the request to ``target`` (``POST /suspend``) carries the secret (bearer)
    or a fresh, first-seen timestamped signature; else why it is refused."""
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        sent = _header_bytes(token)
        if scheme.lower() != "bearer" or sent is None:
            return "Authorization must be 'Bearer <secret>'"
        if not hmac.compare_digest(sent, secret.encode("utf-8")):
            return "wrong bearer token"
        return None
    stamp, signature = headers.get(TIMESTAMP), headers.get(SIGNATURE)
    if stamp is None or signature is None:
        return (
            f"missing credentials: send 'Authorization: Bearer <secret>', or {TIMESTAMP} and "
            f"{SIGNATURE} (HMAC-SHA256 of '<timestamp>.<body>')"
        )
    stamp = stamp.strip()
    whole, _, fraction = stamp.partition(".")
    if not (whole.isdigit() and len(whole) <= 12 and (not fraction or fraction.isdigit())):
        return f"{TIMESTAMP} must be unix seconds"
    if len(fraction) > 9:
        return f"{TIMESTAMP} must be unix seconds"
    clock = time.time() if now is None else now
    if abs(clock - float(stamp)) > REPLAY_WINDOW:
        return f"{TIMESTAMP} is more than {REPLAY_WINDOW:.0f} s away from the server's clock"
    sent = _header_bytes(signature)
    expected = sign_request(secret, body, stamp, target)
    if sent is None or not hmac.compare_digest(sent.lower(), expected.encode("ascii")):
        return f"{SIGNATURE} does not match"
    if not replays.first_time(expected):
        return "this signed request was already used (replay refused)"
    return None


def cross_site(headers: Message) -> str | None:
    """Why a request comes from another site (a browser on a hostile page), or None.

    ``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an ``Origin`` whose host and
    port are not the ``Host`` the request was sent to (``null`` included), is cross-site.
    """
    fetch_site = (headers.get("Sec-Fetch-Site") or "").strip().lower()
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:20]})"
    origin = headers.get("Origin")
    if origin is None:
        return None
    if _same_origin(origin.strip(), (headers.get("Host") or "").strip()):
        return None
    return "cross-site request refused (its Origin is not this server)"


def _same_origin(origin: str, host: str) -> bool:
    """Whether ``Origin: origin`` names the server the request's ``Host: host`` reached."""
    try:
        sent = urlsplit(origin)
        default = {"http": 80, "https": 443}.get(sent.scheme)
        reached = urlsplit("//" + host)
        if default is None or not host or sent.hostname is None or reached.hostname is None:
            return False  # "null", a file: page, no Host
        return (sent.hostname, sent.port or default) == (reached.hostname, reached.port or default)
    except ValueError:  # a port that is not a number
        return False
