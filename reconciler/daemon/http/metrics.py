"""The ``reconciler_*`` Prometheus series behind ``/metrics``: :class:`Metrics`.

Written by the loop (durations, actions, hosts, errors) and by the webhook endpoint (its
outcomes), rendered by the ``/metrics`` handler. Every label takes its values from a closed
set declared here (:data:`ACTIONS`, :data:`SYNC_ERROR_KINDS`, ...), so that each series can
start at 0 and a typo fails loudly instead of starting a series no dashboard queries. Apart
from the board in :mod:`.status`, this is the only state the loop and the HTTP side share.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: What ``generate_latest`` writes: the classic text format. Spelled out rather than taken from
#: ``prometheus_client.CONTENT_TYPE_LATEST``, whose meaning changed between releases (it now
#: names format 1.0.0, which the library itself only serves when a scraper asks for it).
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

ACTIONS: Final = ("create", "start", "recreate", "remove", "restart", "stop", "reload")
ACTION_RESULTS: Final = ("ok", "failed")
SYNC_ERROR_KINDS: Final = ("git", "host", "validation", "plan", "apply", "signature", "rollout")
WEBHOOK_RESULTS: Final = ("accepted", "unauthorized", "ignored", "bad_request")
NOTIFICATION_RESULTS: Final = ("sent", "retried", "failed", "dropped")


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
        self.rollout_failures = Counter(
            "reconciler_rollout_failures",
            "Deployment rollouts that made no progress within progressDeadlineSeconds (each "
            "rolled back to its last fully available revision), by Deployment.",
            ["deployment"],
            registry=r,
        )
        self.webhook_requests = Counter(
            "reconciler_webhook_requests",
            "Requests to the git webhook, by outcome.",
            ["result"],
            registry=r,
        )
        self.notifications = Counter(
            "reconciler_notifications",
            "Notification deliveries (--notify), by outcome: sent, retried (one more try "
            "after a failure), failed (gave up), dropped (the receiver's queue was full).",
            ["result"],
            registry=r,
        )
        for outcome in NOTIFICATION_RESULTS:
            self.notifications.labels(result=outcome)
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
        """``action`` is create/start/recreate/remove (``plan.model.Verb`` values pass as is),
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
        """``kind`` is git, host, validation, apply, signature (a commit not signed by an
        allowed key) or rollout (a Deployment's template marked failed)."""
        self.sync_errors.labels(kind=_check(kind, SYNC_ERROR_KINDS, "sync error kind")).inc()

    def set_suspended(self, suspended: bool) -> None:
        self.suspended.set(1 if suspended else 0)

    def rollout_failure(self, deployment: str) -> None:
        """A rollout failed (``namespace/name``): counted once, in the pass that decided it."""
        self.rollout_failures.labels(deployment=deployment).inc()

    def webhook_request(self, result: str) -> None:
        """accepted, unauthorized, ignored or bad_request; the server calls this itself."""
        self.webhook_requests.labels(result=_check(result, WEBHOOK_RESULTS, "result")).inc()

    def notification(self, result: str) -> None:
        """sent, retried, failed or dropped; the notifier's threads call this."""
        self.notifications.labels(
            result=_check(result, NOTIFICATION_RESULTS, "notification result")
        ).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
