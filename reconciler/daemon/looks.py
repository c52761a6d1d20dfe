"""The service's looks at its hosts, and what each look shows on the page and the metrics.

One :class:`~reconciler.apply.observer.Observer` for the service's whole life: a host that
goes dark costs the first pass after that at most the observation timeout
(``--observe-timeout``), and no later pass anything; its observation goes on in the
background, and a pass is woken as soon as it answers again (not at the next resync).
A host without an answer is unreachable like any other: on ``/status``, the page, the
``reconciler_host_up`` gauge and the host memory (placement's grace period).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from reconciler.apply.converge import observe, observe_and_remember
from reconciler.apply.observer import Observer
from reconciler.apply.runtime import ServiceRuntime
from reconciler.core.model import HostState
from reconciler.daemon.config import RunConfig
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.status import StatusBoard
from reconciler.daemon.report import PassReport
from reconciler.desire.hostmemory import HostRecord

log = logging.getLogger("reconciler.daemon.loop")  # the loop's own lines, as before


class HostLooks:
    """Observe every host for a pass (and after it), remembering what placement needs."""

    def __init__(
        self,
        config: RunConfig,
        runtimes: Mapping[str, ServiceRuntime],
        board: StatusBoard,
        metrics: Metrics,
        report: PassReport,
        wake: Callable[[str], None],
    ) -> None:
        """``wake``: called with a reason when a host that had not answered answers."""
        self.config = config
        self.runtimes = runtimes
        self.board = board
        self.metrics = metrics
        self.report = report
        self.observer = Observer(
            config.observe_timeout, on_answer=lambda host: wake(f"host {host} answers again")
        )
        self.memory: dict[str, HostRecord] = {}  # host memory when no state dir is set

    def before(
        self, volumes: bool | None, counted: bool = True
    ) -> tuple[dict[str, HostState], dict[str, HostRecord], float]:
        """The hosts as a pass starts (and the host memory, and the time): each host shown
        on the page; ``counted`` (a pass that may apply): in the metrics and the log too."""
        config = self.config
        live, memory, now = observe_and_remember(
            self.runtimes,
            config.instance,
            config.state_dir,
            self.memory,
            volumes,
            observer=self.observer,
        )
        self.memory = memory
        for host, state in sorted(live.items()):
            self.board.set_host(host, state.reachable, state.error)
            if counted and not state.reachable:
                self.metrics.sync_error("host")
                log.warning("host %s unreachable: %s", host, state.error, extra={"host": host})
        if counted:
            self.metrics.set_hosts({h: s.reachable for h, s in live.items()})
            self.metrics.set_objects_managed(sum(len(s.containers) for s in live.values()))
        self.report.observed(live)
        return live, memory, now

    def after(self) -> dict[str, HostState]:
        """The hosts after a pass's actions (for its report), under the same deadline."""
        return observe(self.runtimes, observer=self.observer)
