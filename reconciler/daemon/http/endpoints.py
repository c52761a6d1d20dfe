"""What each route answers: the endpoints' logic, apart from the sockets in :mod:`.server`.

Every endpoint takes the request's headers and body and returns a :class:`_Reply`; none
touches a socket, so the rules of the API read in one place:

- ``/`` is the read-only status page (:mod:`.page`: its files under ``/ui/`` and its data
  at ``/ui/view``), served with a strict Content-Security-Policy.
- ``/healthz`` is always 200; ``/readyz`` is 200 once a sync succeeded, 503 before
  (:meth:`.status.StatusBoard.readiness`); ``/metrics`` and ``/status`` render what the loop
  wrote into :class:`.metrics.Metrics` and :class:`.status.StatusBoard`.
- ``POST /hooks/git`` exists only when a webhook secret is configured. Without one it is
  404, not 403: an unauthenticated trigger would let anyone make us hammer the git remote,
  and a feature that is switched off should not be advertised as present-but-forbidden.
  An authentic event that does not trigger (a ping) is 2xx, else the git host marks the
  delivery failed and may disable the hook.
- ``/suspend``, ``/resume`` and every state-changing route require the secret: a bearer
  token, or an HMAC over a timestamped body accepted once within a window; without a
  secret they are refused. A cross-site request (a browser on a hostile page) is refused
  on every POST route, the webhook included. See :mod:`.auth`.
- A webhook delivery (its id, and its signed body) is accepted once.

``on_trigger(reason)`` and ``on_suspend(flag)`` are the loop's callbacks. They run on a
request thread, so they must only hand the request over (set an event, put on a queue) and
return. The names here have a leading underscore because only :mod:`.server` uses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from typing import Any

from reconciler.daemon.http.auth import (
    DELIVERY_MEMORY,
    REPLAY_WINDOW,
    SIGNATURE,
    TIMESTAMP,
    Replays,
    authorize,
    cross_site,
)
from reconciler.daemon.http.metrics import METRICS_CONTENT_TYPE, Metrics
from reconciler.daemon.http.page import PageEndpoint, page_routes
from reconciler.daemon.http.status import StatusBoard
from reconciler.daemon.http.webhook import (
    GENERIC_SIGNATURE,
    GITHUB_SIGNATURE,
    GITLAB_TOKEN,
    _authenticate,
    _delivery,
    _parse_payload,
    _push_event,
    pushed_ref,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Reply:
    """One answer: status, body, content type and any extra headers."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _text(status: int, message: str) -> _Reply:
    return _Reply(status, (message + "\n").encode("utf-8"))


_Endpoint = Callable[[Message, bytes], _Reply]


@dataclass
class _API:
    """The endpoints' logic, apart from the socket handling in :class:`.server._Handler`."""

    board: StatusBoard
    metrics: Metrics
    webhook_secret: str | None
    on_trigger: Callable[[str], None]
    on_suspend: Callable[[bool], None]
    branch: str | None
    max_body_bytes: int

    routes: dict[str, dict[str, _Endpoint]] = field(init=False)
    #: signed control requests already used (a replay is refused)
    control_replays: Replays = field(init=False, default_factory=lambda: Replays(2 * REPLAY_WINDOW))
    #: webhook deliveries (ids, signed bodies) already accepted: each one triggers once
    deliveries: Replays = field(init=False, default_factory=lambda: Replays(DELIVERY_MEMORY))

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
        for path, endpoint in page_routes(self.board).items():  # the status page, read-only
            table[path] = {"GET": _page(endpoint)}
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

    def control_refusal(self, headers: Message, body: bytes, path: str) -> _Reply | None:
        """Why a state-changing ``POST path`` must be refused (see :mod:`.auth`), or None."""
        what = f"POST {path}"
        why = cross_site(headers)
        if why is not None:
            log.warning("refused %s: %s", what, why)
            return _text(HTTPStatus.FORBIDDEN, why)
        if not self.webhook_secret:
            log.warning("refused %s: the service has no secret", what)
            return _text(
                HTTPStatus.FORBIDDEN,
                f"{what} needs the service's secret: start it with --webhook-secret",
            )
        why = authorize(headers, body, self.webhook_secret, self.control_replays, what)
        if why is not None:
            log.warning("refused %s: %s", what, why)
            return _unauthorized(why)
        return None

    def _set_suspended(self, headers: Message, body: bytes, suspended: bool) -> _Reply:
        refusal = self.control_refusal(headers, body, f"/{_verb(suspended)}")
        if refusal is not None:
            return refusal
        self.on_suspend(suspended)
        log.info("%s requested over HTTP", _verb(suspended))
        return _text(HTTPStatus.OK, "suspended" if suspended else "resumed")

    def git_hook(self, headers: Message, body: bytes) -> _Reply:
        if not self.webhook_secret:  # not routed without one; never accept unsigned anyway
            return _text(HTTPStatus.NOT_FOUND, "not found")
        refused = cross_site(headers)
        if refused is not None:
            self.metrics.webhook_request("unauthorized")
            log.warning("refused webhook: %s", refused)
            return _text(HTTPStatus.FORBIDDEN, refused)
        provider, why = self._webhook_provider(headers, body)
        if provider is None:
            self.metrics.webhook_request("unauthorized")
            log.warning("refused webhook: %s", why)
            return _unauthorized(why)
        if not self._first_delivery(provider, headers, body):
            self.metrics.webhook_request("ignored")
            log.warning("ignored webhook: delivery %s was already accepted", _delivery(headers))
            return _text(HTTPStatus.OK, "ignored: this delivery was already accepted")
        event = _push_event(provider, headers)
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

    def _webhook_provider(self, headers: Message, body: bytes) -> tuple[str | None, str]:
        """(provider, "") when the delivery is authentic; (None, why) when not. A generic
        delivery may also be signed with a timestamp, as control requests are."""
        secret = self.webhook_secret or ""
        provider_headers = (headers.get(GITHUB_SIGNATURE), headers.get(GITLAB_TOKEN))
        if headers.get(TIMESTAMP) is not None and not any(h is not None for h in provider_headers):
            if headers.get(SIGNATURE) is None:
                return None, f"{TIMESTAMP} without {SIGNATURE}"
            why = authorize(headers, body, secret, self.control_replays, "POST /hooks/git")
            return ("generic", "") if why is None else (None, why)
        return _authenticate(headers, body, secret)

    def _first_delivery(self, provider: str, headers: Message, body: bytes) -> bool:
        """Whether this delivery is new: its id, and its body (which the signature covers:
        a replay under a made-up id is the same body), are accepted once."""
        delivery = _delivery(headers)
        fresh = True
        if delivery != "-":
            fresh = self.deliveries.first_time(f"{provider}:id:{delivery[:200]}")
        body_key = f"{provider}:body:{hashlib.sha256(body).hexdigest()}"
        if body.strip():  # an empty generic trigger carries nothing to replay
            fresh = self.deliveries.first_time(body_key) and fresh
        return fresh


def _page(endpoint: PageEndpoint) -> _Endpoint:
    def answer(headers: Message, body: bytes) -> _Reply:
        return _Reply(*endpoint(headers, body))

    return answer


def _verb(suspended: bool) -> str:
    return "suspend" if suspended else "resume"


def _unauthorized(message: str) -> _Reply:
    return _Reply(
        HTTPStatus.UNAUTHORIZED,
        (message + "\n").encode("utf-8"),
        headers=(("WWW-Authenticate", 'Bearer, HMAC-SHA256 header="' + GENERIC_SIGNATURE + '"'),),
    )
