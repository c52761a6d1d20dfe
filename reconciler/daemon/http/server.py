"""The HTTP side of ``reconciler run``: liveness, readiness, metrics, status and webhooks.

The loop (``service.py``) owns every decision; this module only shows its state and turns
requests into calls. It is self-contained on purpose (standard library plus
``prometheus_client``, nothing from the rest of the package) so the loop can be built and
tested against it without either depending on the other's internals:

- the loop writes what it learns into a :class:`StatusBoard` (for ``/status`` and
  ``/readyz``) and a :class:`Metrics` (for ``/metrics``), through small methods;
- :func:`serve` runs the server on its own threads and calls back ``on_trigger(reason)``
  when a signed push webhook arrives and ``on_suspend(flag)`` for ``/suspend``/``/resume``.
  Both callbacks run on a request thread, so they must only hand the request over (set an
  event, put on a queue) and return.

Security choices, in one place:

- ``POST /hooks/git`` exists only when a webhook secret is configured. Without one it is
  404, not 403: an unauthenticated trigger would let anyone make us hammer the git remote,
  and a feature that is switched off should not be advertised as present-but-forbidden.
- Signatures are checked before the body is parsed (an unsigned request learns nothing about
  what we accept), with :func:`hmac.compare_digest` on bytes (``compare_digest`` on ``str``
  raises on non-ASCII, which a hostile header can contain).
- ``/suspend`` and ``/resume`` require the generic ``X-Reconciler-Signature-256`` header over
  the raw body (usually empty) when a secret is configured. The signature of an empty body is
  a fixed value, so it works like a bearer token derived from the secret: anyone who sees
  one such request can replay it. Keep the listener on a private network or behind TLS.
  Without a secret they are open, like ``/status``: bind to 127.0.0.1 in that case
  (:func:`serve` logs a warning when it is not).
- ``/status`` redacts credentials written into URLs (``https://user:token@host``), in the
  source and in error messages, because git errors quote the remote.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

#: What ``generate_latest`` writes: the classic text format. Spelled out rather than taken from
#: ``prometheus_client.CONTENT_TYPE_LATEST``, whose meaning changed between releases (it now
#: names format 1.0.0, which the library itself only serves when a scraper asks for it).
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
MAX_BODY_BYTES: Final = 1024 * 1024
#: An oversized body up to this size is read and dropped before the 413 goes out, so that the
#: client reads our answer instead of a connection reset; a larger one is not worth reading.
_DRAIN_LIMIT: Final = 4 * MAX_BODY_BYTES

ACTIONS: Final = ("create", "start", "recreate", "remove")
ACTION_RESULTS: Final = ("ok", "failed")
SYNC_ERROR_KINDS: Final = ("git", "host", "validation", "apply")
WEBHOOK_RESULTS: Final = ("accepted", "unauthorized", "ignored", "bad_request")

GITHUB_SIGNATURE: Final = "X-Hub-Signature-256"
GITLAB_TOKEN: Final = "X-Gitlab-Token"
GENERIC_SIGNATURE: Final = "X-Reconciler-Signature-256"

#: Validation errors kept for ``/status``: a broken repository can have thousands, and the
#: first screenful is what an operator reads; the total is kept beside them.
MAX_KEPT_VALIDATION_ERRORS: Final = 100

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with the user information of every URL in it replaced by ``***``.

    The whole user information goes, not just a password: with GitHub, a token alone is
    often written as the user name (``https://TOKEN@github.com/...``).
    """
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sign(secret: str, body: bytes) -> str:
    """The value of a ``sha256=<hex>`` signature header for ``body``, as GitHub computes it.

    Exposed so that clients (tests, a ``reconciler suspend`` command) sign the same way the
    server checks.
    """
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


# --------------------------------------------------------------------------- status board


@dataclass
class _HostHealth:
    reachable: bool
    error: str
    last_seen: float | None  # the last time it answered


@dataclass
class _LastError:
    kind: str
    message: str
    at: float
    validation_errors: list[str] = field(default_factory=list)
    validation_error_count: int = 0


class StatusBoard:
    """What the service is doing, written by the loop and read by the HTTP handlers.

    Every method takes one lock for a few assignments, so a handler never sees half of an
    update (say, a new desired revision with the old start time) and the loop never waits on
    a slow client. Times are wall-clock seconds (for display); durations come from the
    monotonic clock so that a clock step cannot make a pass last a negative time.

    The loop's calls, in the order a pass makes them::

        board.sync_started()
        board.set_desired_revision(sha)             # once fetched
        board.set_error(kind, message, lines)       # whenever a stage fails (git, validation…)
        board.set_host(name, reachable, error)      # per host, after observing
        board.set_pending(len(plan.actions))
        board.record_actions(ok=n, failed=m)
        board.sync_finished(ok=..., applied_revision=sha)
        board.clear_error()                         # after a clean pass
    """

    def __init__(self, source: str = "", branch: str = "", path: str = "") -> None:
        self._lock = threading.Lock()
        self._started = time.time()
        self._source = (source, branch, path)
        self._desired_revision = ""
        self._applied_revision = ""
        self._sync_started: float | None = None
        self._sync_started_mono: float | None = None
        self._sync_finished: float | None = None
        self._sync_duration: float | None = None
        self._last_success: float | None = None
        self._last_result: str | None = None
        self._synced_once = False
        self._hosts: dict[str, _HostHealth] = {}
        self._pending: int | None = None
        self._last_error: _LastError | None = None
        self._suspended = False
        self._counters: dict[str, int] = {
            "syncs_started": 0,
            "syncs_succeeded": 0,
            "syncs_failed": 0,
            "errors": 0,
            "triggers": 0,
            "actions_ok": 0,
            "actions_failed": 0,
        }

    # -- written by the loop

    def set_source(self, source: str, branch: str = "", path: str = "") -> None:
        """Where manifests come from: a URL or a local path, the branch, the sub-path."""
        with self._lock:
            self._source = (source, branch, path)

    def sync_started(self, desired_revision: str | None = None) -> None:
        """A pass begins. The revision may be unknown until the fetch is done."""
        with self._lock:
            self._sync_started = time.time()
            self._sync_started_mono = time.monotonic()
            self._counters["syncs_started"] += 1
            if desired_revision is not None:
                self._desired_revision = desired_revision

    def set_desired_revision(self, revision: str) -> None:
        with self._lock:
            self._desired_revision = revision

    def set_host(self, name: str, reachable: bool, error: str = "") -> None:
        """One host's health from the last observation; ``last_seen`` moves only on success."""
        with self._lock:
            before = self._hosts.get(name)
            seen = time.time() if reachable else (before.last_seen if before else None)
            self._hosts[name] = _HostHealth(reachable, "" if reachable else redact(error), seen)

    def retain_hosts(self, names: Iterable[str]) -> None:
        """Forget hosts that left the hosts file, so ``/status`` does not show them forever."""
        keep = set(names)
        with self._lock:
            for name in [n for n in self._hosts if n not in keep]:
                del self._hosts[name]

    def set_pending(self, count: int) -> None:
        """Actions in the last plan: what a dry run would still do."""
        with self._lock:
            self._pending = count

    def record_actions(self, ok: int = 0, failed: int = 0) -> None:
        with self._lock:
            self._counters["actions_ok"] += ok
            self._counters["actions_failed"] += failed

    def count(self, name: str, by: int = 1) -> None:
        """Any other counter the loop wants to show under ``counters`` in ``/status``."""
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + by

    def set_error(self, kind: str, message: str, validation_errors: Sequence[str] = ()) -> None:
        """The latest problem, kept with its time until :meth:`clear_error`.

        ``kind`` is one of :data:`SYNC_ERROR_KINDS`; ``validation_errors`` are
        ``file:line:col: message`` lines. Only the first :data:`MAX_KEPT_VALIDATION_ERRORS`
        are kept, with the total beside them.
        """
        with self._lock:
            self._last_error = _LastError(
                kind=kind,
                message=redact(message),
                at=time.time(),
                validation_errors=[
                    redact(e) for e in validation_errors[:MAX_KEPT_VALIDATION_ERRORS]
                ],
                validation_error_count=len(validation_errors),
            )
            self._counters["errors"] += 1

    def clear_error(self) -> None:
        """A clean pass: ``/status`` stops showing an error that no longer holds."""
        with self._lock:
            self._last_error = None

    def sync_finished(
        self, *, ok: bool, duration: float | None = None, applied_revision: str | None = None
    ) -> float:
        """A pass ended. Returns its duration in seconds: ``duration`` when given, else the
        monotonic time since :meth:`sync_started`.

        ``ok`` makes the service ready (``/readyz``) and sets the last successful sync time;
        ``applied_revision``, when given, is recorded whatever ``ok`` says (the loop decides
        what counts as applied, e.g. every action done but one host unreachable).
        """
        with self._lock:
            now = time.time()
            started = self._sync_started_mono
            if duration is None:
                duration = time.monotonic() - started if started is not None else 0.0
            duration = max(0.0, duration)
            self._sync_finished = now
            self._sync_duration = duration
            self._sync_started_mono = None
            self._last_result = "ok" if ok else "failed"
            if applied_revision is not None:
                self._applied_revision = applied_revision
            if ok:
                self._last_success = now
                self._synced_once = True
                self._counters["syncs_succeeded"] += 1
            else:
                self._counters["syncs_failed"] += 1
            return duration

    def set_suspended(self, suspended: bool) -> None:
        with self._lock:
            self._suspended = suspended

    # -- read by the handlers

    @property
    def suspended(self) -> bool:
        with self._lock:
            return self._suspended

    def readiness(self) -> tuple[bool, str]:
        """Ready once one pass has succeeded; before that, why not (for ``/readyz``).

        A later failure does not make the service unready: it still serves what it applied,
        and ``/status`` and the metrics say what went wrong.
        """
        with self._lock:
            if self._synced_once:
                return True, "ok"
            if self._last_error is not None:
                error = self._last_error
                return False, f"no successful sync yet; last error ({error.kind}): {error.message}"
            if self._sync_started_mono is not None:
                return False, "no successful sync yet; the first sync is running"
            return False, "no successful sync yet"

    def snapshot(self) -> dict[str, Any]:
        """Everything above as JSON-ready data, copied under the lock."""
        with self._lock:
            source, branch, path = self._source
            error = self._last_error
            return {
                "source": {"url": redact(source), "branch": branch, "path": path},
                "started": _iso(self._started),
                "suspended": self._suspended,
                "revision": {
                    "desired": self._desired_revision,
                    "applied": self._applied_revision,
                },
                "sync": {
                    "synced_once": self._synced_once,
                    "in_progress": self._sync_started_mono is not None,
                    "last_started": _iso(self._sync_started),
                    "last_finished": _iso(self._sync_finished),
                    "last_duration_seconds": self._sync_duration,
                    "last_result": self._last_result,
                    "last_successful": _iso(self._last_success),
                },
                "pending_changes": self._pending,
                "hosts": {
                    name: {
                        "reachable": h.reachable,
                        "error": h.error,
                        "last_seen": _iso(h.last_seen),
                    }
                    for name, h in sorted(self._hosts.items())
                },
                "last_error": None
                if error is None
                else {
                    "kind": error.kind,
                    "message": error.message,
                    "at": _iso(error.at),
                    "validation_errors": list(error.validation_errors),
                    "validation_error_count": error.validation_error_count,
                },
                "counters": dict(self._counters),
            }


# --------------------------------------------------------------------------------- metrics


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    """Label values are a closed set: a typo in the loop must fail loudly in tests rather than
    quietly start a new series that no dashboard queries."""
    text = str(value)
    if text not in allowed:
        raise ValueError(f"unknown {what} {text!r}; expected one of {', '.join(allowed)}")
    return text


class Metrics:
    """The ``reconciler_*`` series, in a registry of their own.

    Not the process-wide default registry: tests (and two services in one process) each get
    their own, and nothing another library registers globally leaks into ``/metrics``. Every
    labelled series with a closed set of label values starts at 0, so that ``rate()`` and
    ``absent()`` work from the first scrape instead of from the first failure.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        self._known_hosts: set[str] = set()
        self.reconcile_duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "Time one reconcile pass took, successful or not.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.actions = Counter(
            "reconciler_actions",
            "Plan actions executed, by action and result.",
            ["action", "result"],
            registry=r,
        )
        self.last_successful_sync = Gauge(
            "reconciler_last_successful_sync_timestamp_seconds",
            "Unix time of the last pass that applied the desired revision.",
            registry=r,
        )
        self.hosts_up = Gauge(
            "reconciler_hosts_up",
            "Configured hosts that answered the last observation.",
            registry=r,
        )
        self.hosts = Gauge(
            "reconciler_hosts",
            "1 if the host answered the last observation, 0 if not.",
            ["host"],
            registry=r,
        )
        self.objects_managed = Gauge(
            "reconciler_objects_managed",
            "Containers owned by this instance, as last observed on all hosts.",
            registry=r,
        )
        self.validation_errors = Gauge(
            "reconciler_validation_errors",
            "Validation errors in the current desired revision (0 when it is valid).",
            registry=r,
        )
        self.sync_errors = Counter(
            "reconciler_sync_errors", "Failed passes, by what failed.", ["kind"], registry=r
        )
        self.suspended = Gauge(
            "reconciler_suspended", "1 while reconciling is suspended, else 0.", registry=r
        )
        self.webhook_requests = Counter(
            "reconciler_webhook_requests",
            "Requests to the git webhook, by outcome.",
            ["result"],
            registry=r,
        )
        for action in ACTIONS:
            for result in ACTION_RESULTS:
                self.actions.labels(action=action, result=result)
        for kind in SYNC_ERROR_KINDS:
            self.sync_errors.labels(kind=kind)
        for outcome in WEBHOOK_RESULTS:
            self.webhook_requests.labels(result=outcome)

    def observe_duration(self, seconds: float) -> None:
        self.reconcile_duration.observe(seconds)

    def action(self, action: str, result: str, count: int = 1) -> None:
        """``action`` is create/start/recreate/remove (``planning.Verb`` values pass as is),
        ``result`` ok or failed."""
        self.actions.labels(
            action=_check(action, ACTIONS, "action"),
            result=_check(result, ACTION_RESULTS, "result"),
        ).inc(count)

    def set_last_successful_sync(self, timestamp: float | None = None) -> None:
        """Now, unless a time is given."""
        self.last_successful_sync.set(time.time() if timestamp is None else timestamp)

    def set_hosts(self, reachable: Mapping[str, bool]) -> None:
        """Every configured host and whether it answered; hosts not listed are dropped."""
        with self._lock:
            for gone in self._known_hosts - reachable.keys():
                self.hosts.remove(gone)
            for name, up in reachable.items():
                self.hosts.labels(host=name).set(1 if up else 0)
            self._known_hosts = set(reachable)
            self.hosts_up.set(sum(1 for up in reachable.values() if up))

    def set_objects_managed(self, count: int) -> None:
        self.objects_managed.set(count)

    def set_validation_errors(self, count: int) -> None:
        self.validation_errors.set(count)

    def sync_error(self, kind: str) -> None:
        """``kind`` is git, host, validation or apply."""
        self.sync_errors.labels(kind=_check(kind, SYNC_ERROR_KINDS, "sync error kind")).inc()

    def set_suspended(self, suspended: bool) -> None:
        self.suspended.set(1 if suspended else 0)

    def webhook_request(self, result: str) -> None:
        """accepted, unauthorized, ignored or bad_request; :func:`serve` calls this itself."""
        self.webhook_requests.labels(result=_check(result, WEBHOOK_RESULTS, "result")).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


# -------------------------------------------------------------------------------- webhooks


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


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _text(status: int, message: str) -> _Reply:
    return _Reply(status, (message + "\n").encode("utf-8"))


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


# ---------------------------------------------------------------------------------- server

_Endpoint = Callable[[Message, bytes], _Reply]


@dataclass
class _API:
    """The endpoints' logic, apart from the socket handling in :class:`_Handler`."""

    board: StatusBoard
    metrics: Metrics
    webhook_secret: str | None
    on_trigger: Callable[[str], None]
    on_suspend: Callable[[bool], None]
    branch: str | None
    max_body_bytes: int

    routes: dict[str, dict[str, _Endpoint]] = field(init=False)

    def __post_init__(self) -> None:
        """Path -> method -> endpoint. The webhook is absent, hence 404, without a secret."""
        table: dict[str, dict[str, _Endpoint]] = {
            "/healthz": {"GET": self.healthz},
            "/readyz": {"GET": self.readyz},
            "/metrics": {"GET": self.metrics_text},
            "/status": {"GET": self.status},
            "/suspend": {"POST": self.suspend},
            "/resume": {"POST": self.resume},
        }
        if self.webhook_secret:
            table["/hooks/git"] = {"POST": self.git_hook}
        self.routes = table

    def healthz(self, headers: Message, body: bytes) -> _Reply:
        return _text(HTTPStatus.OK, "ok")

    def readyz(self, headers: Message, body: bytes) -> _Reply:
        ready, reason = self.board.readiness()
        return _text(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, reason)

    def metrics_text(self, headers: Message, body: bytes) -> _Reply:
        return _Reply(HTTPStatus.OK, self.metrics.render(), METRICS_CONTENT_TYPE)

    def status(self, headers: Message, body: bytes) -> _Reply:
        data = json.dumps(self.board.snapshot(), indent=2, sort_keys=True) + "\n"
        return _Reply(HTTPStatus.OK, data.encode("utf-8"), "application/json")

    def suspend(self, headers: Message, body: bytes) -> _Reply:
        return self._set_suspended(headers, body, True)

    def resume(self, headers: Message, body: bytes) -> _Reply:
        return self._set_suspended(headers, body, False)

    def _set_suspended(self, headers: Message, body: bytes, suspended: bool) -> _Reply:
        if self.webhook_secret:
            value = headers.get(GENERIC_SIGNATURE)
            if value is None or not _digest_matches(value, sign(self.webhook_secret, body)):
                log.warning("refused %s: bad or missing %s", _verb(suspended), GENERIC_SIGNATURE)
                return _unauthorized(f"{GENERIC_SIGNATURE} missing or wrong")
        self.on_suspend(suspended)
        log.info("%s requested over HTTP", _verb(suspended))
        return _text(HTTPStatus.OK, "suspended" if suspended else "resumed")

    def git_hook(self, headers: Message, body: bytes) -> _Reply:
        if not self.webhook_secret:  # not routed without one; never accept unsigned anyway
            return _text(HTTPStatus.NOT_FOUND, "not found")
        provider, why = _authenticate(headers, body, self.webhook_secret)
        if provider is None:
            self.metrics.webhook_request("unauthorized")
            log.warning("refused webhook: %s", why)
            return _unauthorized(why)
        event = self._event(provider, headers)
        if event is None:
            # A ping, or an event we do not act on: authentic, so 2xx, else the git host
            # marks the delivery failed and may disable the hook.
            self.metrics.webhook_request("ignored")
            name = headers.get("X-GitHub-Event") or headers.get("X-Gitlab-Event") or "?"
            return _text(HTTPStatus.OK, f"ignored: {provider} event {name!r} does not trigger")
        payload: dict[str, Any] = {}
        if body.strip() or provider != "generic":
            parsed = _parse_payload(headers, body)
            if isinstance(parsed, str):
                self.metrics.webhook_request("bad_request")
                return _text(HTTPStatus.BAD_REQUEST, parsed)
            payload = parsed
        ref = pushed_ref(payload)
        if self.branch is not None and ref is not None and ref != f"refs/heads/{self.branch}":
            self.metrics.webhook_request("ignored")
            return _text(HTTPStatus.OK, f"ignored: push to {ref}, watching {self.branch}")
        reason = f"webhook: {provider} {event}" + (f" to {ref}" if ref else "")
        log.info("%s (delivery %s)", reason, _delivery(headers))
        self.on_trigger(reason)
        self.metrics.webhook_request("accepted")
        self.board.count("triggers")
        suspended = self.board.suspended
        note = " (reconciling is suspended: nothing will be applied)" if suspended else ""
        return _text(HTTPStatus.ACCEPTED, f"triggered: {reason}{note}")

    @staticmethod
    def _event(provider: str, headers: Message) -> str | None:
        """The push event's short name, or None for an event that does not trigger."""
        if provider == "github":
            return "push" if headers.get("X-GitHub-Event", "").strip() == "push" else None
        if provider == "gitlab":
            event = headers.get("X-Gitlab-Event", "").strip()
            return {"Push Hook": "push", "Tag Push Hook": "tag push"}.get(event)
        return "push"  # the generic signature means "something changed, fetch"


def _verb(suspended: bool) -> str:
    return "suspend" if suspended else "resume"


def _unauthorized(message: str) -> _Reply:
    return _Reply(
        HTTPStatus.UNAUTHORIZED,
        (message + "\n").encode("utf-8"),
        headers=(("WWW-Authenticate", 'HMAC-SHA256 header="' + GENERIC_SIGNATURE + '"'),),
    )


def _delivery(headers: Message) -> str:
    return headers.get("X-GitHub-Delivery") or headers.get("X-Gitlab-Event-UUID") or "-"


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that carries the API and skips the reverse DNS lookup.

    ``HTTPServer.server_bind`` calls ``socket.getfqdn`` on the bind address, which can stall
    for seconds on a host with broken DNS; the name is only used in CGI variables.
    """

    daemon_threads = True  # a hung client must never keep stop() or the process waiting
    #: listen backlog; socketserver's default of 5 overflows when a scraper, a webhook burst
    #: and status calls arrive together while the GIL is busy, and clients see resets
    request_queue_size = 128
    api: _API

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # bind only; HTTPServer's adds getfqdn
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Socket side of a request: body limits, dispatch, and never a traceback out."""

    # HTTP/1.1 for ``Expect: 100-continue`` (so an oversized upload is refused before it is
    # sent), but every response closes the connection: no idle keep-alive thread to reap.
    protocol_version = "HTTP/1.1"
    server_version = "reconciler"
    sys_version = ""
    timeout = 10.0  # seconds a client may stall mid-request before its thread is freed

    @property
    def api(self) -> _API:
        return cast(_HTTPServer, self.server).api

    def log_message(self, format: str, *args: Any) -> None:
        """Access and error lines go to ``logging`` at DEBUG: a scrape every 15 s is noise."""
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's errors (bad request line, unsupported method) as plain text."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        self._send(_text(code, message or phrase))

    def handle_expect_100(self) -> bool:
        length = self._declared_length()
        if isinstance(length, int) and length > self.api.max_body_bytes:
            if urlsplit(self.path).path == "/hooks/git":
                self.api.metrics.webhook_request("bad_request")
            self._send(_too_large(self.api.max_body_bytes))
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._sent = False
        try:
            self._send(self._reply(method), head=method == "HEAD")
        except (ConnectionError, TimeoutError) as exc:
            log.debug("client went away: %s", exc)
            self.close_connection = True
        except Exception:
            log.exception("error handling %s %s", method, self.path)
            if self._sent:
                self.close_connection = True
            else:
                self._send(_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"))

    def _reply(self, method: str) -> _Reply:
        path = urlsplit(self.path).path
        methods = self.api.routes.get(path)
        if methods is None:
            return _text(HTTPStatus.NOT_FOUND, "not found")
        lookup = "GET" if method == "HEAD" else method
        endpoint = methods.get(lookup)
        if endpoint is None:
            allowed = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
            return _Reply(
                HTTPStatus.METHOD_NOT_ALLOWED,
                b"method not allowed\n",
                headers=(("Allow", ", ".join(allowed)),),
            )
        body = b""
        if method == "POST":
            read = self._read_body()
            if isinstance(read, _Reply):
                if path == "/hooks/git":
                    self.api.metrics.webhook_request("bad_request")
                return read
            body = read
        return endpoint(self.headers, body)

    def _declared_length(self) -> int | _Reply:
        if self.headers.get("Transfer-Encoding") is not None:
            return _text(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not chunks")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw.strip())
        except ValueError:
            length = -1
        if length < 0:
            return _text(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        return length

    def _read_body(self) -> bytes | _Reply:
        length = self._declared_length()
        if isinstance(length, _Reply):
            return length
        limit = self.api.max_body_bytes
        if length > limit:
            if length <= _DRAIN_LIMIT:
                self._discard(length)
            return _too_large(limit)
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("body shorter than its Content-Length")
        return body

    def _discard(self, length: int) -> None:
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)

    def _send(self, reply: _Reply, head: bool = False) -> None:
        self._sent = True
        self.close_connection = True
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(reply.body)


def _too_large(limit: int) -> _Reply:
    return _text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {limit} bytes")


class Server:
    """A running API server: its real port and URL, and :meth:`stop`."""

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread, host: str) -> None:
        self._httpd = httpd
        self._thread = thread
        self._host = host
        self._stopped = False
        self._stop_lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port: the one the kernel chose when 0 was asked for."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """A URL that reaches the server from this machine (wildcard addresses -> loopback)."""
        return f"http://{self._host}:{self.port}"

    def stop(self) -> None:
        """Stop accepting, close the listening socket and return, within about 0.1 s.

        Requests still running finish on their own (daemon) threads; their connections are
        not waited for, so a stalled client cannot delay a shutdown. Calling it twice is fine.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._httpd.shutdown()  # returns once serve_forever's next poll sees the flag
        self._httpd.server_close()
        self._thread.join(timeout=1.0)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _url_host(address: str) -> str:
    if address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if address == "::":
        return "[::1]"
    return f"[{address}]" if ":" in address else address


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def serve(
    address: str,
    port: int,
    board: StatusBoard,
    metrics: Metrics,
    *,
    webhook_secret: str | None,
    on_trigger: Callable[[str], None],
    on_suspend: Callable[[bool], None],
    branch: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Server:
    """Listen on ``address:port`` (0: any free port) and serve on a background thread.

    ``webhook_secret`` enables ``POST /hooks/git`` and protects ``/suspend`` and
    ``/resume``; an empty string counts as none. ``branch``, when given, makes pushes to any
    other ref (other branches, tags) answer "ignored" without calling ``on_trigger``; pushes
    whose payload names no ref always trigger, since a needless fetch is cheap and a missed
    one is not. Raises ``OSError`` when the address cannot be bound.
    """
    secret = webhook_secret or None
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]  # "[::]" as written in HOST:PORT
    api = _API(board, metrics, secret, on_trigger, on_suspend, branch, max_body_bytes)
    server_class = _HTTPServer6 if ":" in address else _HTTPServer
    httpd = server_class((address, port), _Handler, bind_and_activate=False)
    httpd.api = api
    try:
        httpd.server_bind()
        httpd.server_activate()
    except BaseException:
        httpd.server_close()
        raise
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="httpapi", daemon=True
    )
    thread.start()
    server = Server(httpd, thread, _url_host(address))
    if secret is None and not _is_loopback(address):
        log.warning(
            "HTTP API on %s:%d has no webhook secret: /suspend and /resume are open to "
            "anyone who can reach it, and /hooks/git is disabled",
            address or "*",
            server.port,
        )
    log.info("HTTP API listening on %s", server.url)
    return server
