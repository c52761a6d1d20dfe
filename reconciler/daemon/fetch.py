"""What a pass enforces: the newest valid revision of the source, or the last valid one.

:class:`DesiredSource` fetches (git) or reads (a directory) the manifests and validates
them, and keeps what the loop needs between passes: the last valid manifests and their
revision, whether the newest revision was invalid, and when the next git fetch is due.

An invalid revision is never applied: the last valid manifests stay in force (and keep
self-healing drift) until a valid revision arrives, and the errors go to ``/status``, the
metrics and the log. A git source is fetched at most once per poll interval (the webhook
asks for one at once, :meth:`DesiredSource.fetch_now`); an unreachable remote is retried
with exponential backoff and jitter. Apart from the loop, which only decides *when* to ask.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from reconciler.apply.converge import load_source, source_revision
from reconciler.core.errors import InputError, SourceError, SourceUnavailable
from reconciler.core.model import Manifest
from reconciler.daemon.config import RunConfig
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.status import StatusBoard
from reconciler.daemon.triggers import Backoff
from reconciler.render.diagnostics import diagnostic_line
from reconciler.source.git import Checkout, GitSource, sync

log = logging.getLogger(__name__)


class RecordError(Protocol):
    """How a failed stage is reported: a sync error metric, ``/status`` and the log."""

    def __call__(self, kind: str, message: str, details: Sequence[str] = ()) -> None: ...


class DesiredSource:
    """The source of ``reconciler run`` and the last valid manifests read from it."""

    def __init__(
        self, config: RunConfig, board: StatusBoard, metrics: Metrics, record_error: RecordError
    ) -> None:
        self.config = config
        self.board = board
        self.metrics = metrics
        self._record_error = record_error
        self.last_good: tuple[list[Manifest], str] | None = None
        self.invalid = False  # the newest revision failed validation
        self.next_fetch = 0.0  # monotonic time of the next git fetch
        self._backoff = Backoff(cap=max(config.interval, 1.0))

    def fetch_now(self) -> None:
        """Fetch at the next :meth:`fetch`, whatever the poll interval says."""
        self.next_fetch = 0.0

    def fetch(self) -> tuple[list[Manifest], str] | None:
        """The manifests to enforce now and their revision; None when there are none yet."""
        config = self.config
        now = time.monotonic()
        if config.is_git and now < self.next_fetch and self.last_good is not None:
            return self.last_good  # between polls: enforce what we have
        directory: Path
        revision: str
        if config.is_git:
            try:
                source = GitSource(
                    config.source,
                    ref=config.branch,
                    path=config.path,
                    **({"cache_dir": config.cache_dir} if config.cache_dir else {}),
                )
                checkout: Checkout = sync(source, timeout=config.git_timeout)
            except SourceUnavailable as exc:
                delay = self._backoff.failed()
                self.next_fetch = time.monotonic() + delay
                self._record_error("git", f"{exc} (retry in {delay:.1f}s)")
                return self.last_good
            except SourceError as exc:
                self.next_fetch = time.monotonic() + config.interval
                self._record_error("git", str(exc))
                return self.last_good
            self._backoff.succeeded()
            self.next_fetch = time.monotonic() + config.interval
            directory, revision = checkout.manifests, checkout.revision[:12]
        else:
            directory = Path(config.source) / config.path
            revision = source_revision([str(directory)])
        same = self.last_good is not None and revision == self.last_good[1]
        if config.is_git and revision and same:
            return self.last_good  # same commit: nothing to reload
        try:
            validation, _ = load_source([str(directory)], config.exclude)
        except InputError as exc:
            self._record_error("validation", str(exc))
            return self.last_good
        self.board.set_desired_revision(revision)
        self.metrics.set_validation_errors(len(validation.errors))
        self.invalid = not validation.valid
        if not validation.valid:
            lines = [diagnostic_line(d) for d in validation.errors]
            self._record_error(
                "validation",
                f"revision {revision or '(working tree)'} is invalid: {len(lines)} error(s); "
                f"still enforcing {self.last_good[1] if self.last_good else 'nothing'}",
                details=lines,
            )
            for line in lines[:20]:
                log.error("%s", line, extra={"revision": revision})
            return self.last_good
        self.last_good = (validation.manifests, revision)
        return self.last_good
