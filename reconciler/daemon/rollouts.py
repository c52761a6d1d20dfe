"""What ``reconciler run`` says of the Deployments' rollouts after each pass.

Every pass puts each Deployment's rollout on ``/status`` (``rollouts``: state, revision,
counts, and while its template stays marked failed, the failure with its revision, the
manifest's file:line and the reason). A failure *decided* in this pass is told once and
everywhere: ``reconciler_rollout_failures_total{deployment}``, an error line in the log, and
a ``rollout_failed`` event (the page's recent events, ``--notify``). Once only, because the
step that decides it is the only one to report it (``Step.failure``), and the decision is in
the memory on the hosts, so a restarted service does not count it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from reconciler.daemon import events as E
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.status import StatusBoard
from reconciler.plan.rollouts import Rollouts
from reconciler.render.deployments import failure_line

log = logging.getLogger(__name__)


def rollout_entry(rollouts: Rollouts, name: str) -> dict[str, Any]:
    """``/status``'s entry for one Deployment (``namespace/name``)."""
    ref = next(r for r in rollouts.steps if f"{r.namespace}/{r.name}" == name)
    status = rollouts.steps[ref].status
    entry: dict[str, Any] = {
        "state": status.state,
        "revision": status.revision,
        "template_hash": status.template_hash,
        "replicas": status.replicas,
        "updated": status.updated,
        "ready": status.ready,
        "available": status.available,
        "message": status.message,
        "source": status.source,
    }
    if status.failure is not None:
        entry["failed"] = {
            "revision": status.failure.number,
            "template_hash": status.failure.hash,
            "reason": status.failure.reason,
            "source": status.failure.source,
            "at": status.failure.at,
            "rolled_back_to": status.revision,
        }
    return entry


class RolloutReporter:
    """Tells what each pass's rollouts did (see the module's docstring)."""

    def __init__(
        self, board: StatusBoard, metrics: Metrics, announcer: E.Announcer, instance: str
    ) -> None:
        self.board = board
        self.metrics = metrics
        self.announcer = announcer
        self.instance = instance

    def report(self, rollouts: Rollouts, revision: str, problems: Sequence[str]) -> int:
        """Every Deployment on ``/status``, a failure decided now told once; returns how
        many Deployments' templates are marked failed (a pass with any is no success: it is
        the pass's error, ``rollout``, unless an action failed too)."""
        entries: dict[str, dict[str, Any]] = {}
        for ref, step in sorted(rollouts.steps.items()):
            name = f"{ref.namespace}/{ref.name}"
            entries[name] = rollout_entry(rollouts, name)
            status = step.status
            extra = {"revision": revision, "object": f"Deployment/{name}"}
            if step.failure is not None:
                line = failure_line(status)
                self.metrics.rollout_failure(name)
                log.error("%s", line, extra=extra)
                self.announcer.announce(
                    E.event(E.ROLLOUT_FAILED, line, self.instance, revision, [step.failure.reason])
                )
            elif step.completed:
                log.info("rollout of Deployment/%s: revision %d rolled out", name,
                         status.revision, extra=extra)  # fmt: skip
        for problem in problems:
            log.warning("%s", problem)
        self.board.set_rollouts(entries)
        failed = rollouts.failures
        if failed:
            names = ", ".join(f"Deployment/{s.ref.name}" for s in failed)
            self.metrics.sync_error("rollout")
            self.board.set_error("rollout", f"{len(failed)} rollout(s) failed: {names}")
        return len(failed)
