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
from collections.abc import Callable, Sequence
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
from reconciler.source.git import Checkout, GitSource, SignaturePolicy, sync, verify

#: ``on_held(revision, kind, reason, lines)``: a revision is not applied; ``kind`` is
#: ``invalid`` or ``signature``.
OnHeld = Callable[[str, str, str, Sequence[str]], None]

log = logging.getLogger(__name__)


class RecordError(Protocol):
    """How a failed stage is reported: a sync error metric, ``/status`` and the log."""

    def __call__(self, kind: str, message: str, details: Sequence[str] = ()) -> None: ...


class DesiredSource:
    """The source of ``reconciler run`` and the last valid manifests read from it."""

    def __init__(
        self,
        config: RunConfig,
        board: StatusBoard,
        metrics: Metrics,
        record_error: RecordError,
        on_held: OnHeld | None = None,
    ) -> None:
        self.config = config
        self.board = board
        self.metrics = metrics
        self._record_error = record_error
        self._on_held = on_held
        self.last_good: tuple[list[Manifest], str] | None = None
        self.invalid = False  # the newest revision failed validation or its signature check
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
            root = checkout.root  # symbolic links may point anywhere in the checkout
            self.board.overview.set_root(str(checkout.root))
            if revision == self.board.overview.held_revision:
                return self.last_good  # held already: reported, nothing new to check
            if config.verify_signatures and not self._signed(checkout, revision):
                return self.last_good
        else:
            directory = Path(config.source) / config.path
            revision = source_revision([str(directory)])
            root = Path(config.source)
            self.board.overview.set_root(config.source)
        same = self.last_good is not None and revision == self.last_good[1]
        if config.is_git and revision and same:
            return self.last_good  # same commit: nothing to reload
        try:
            validation, _ = load_source(
                [str(directory)],
                config.keyring,
                policy=config.policy,
                limits=config.source_limits,
                root=str(root),
                max_pods=config.max_pods,
                exclude=config.exclude,
            )
        except InputError as exc:
            self._record_error("validation", str(exc))
            return self.last_good
        self.board.set_desired_revision(revision)
        self.metrics.set_validation_errors(len(validation.errors))
        self.invalid = not validation.valid
        if not validation.valid:
            lines = [diagnostic_line(d) for d in validation.errors]
            message = (
                f"revision {revision or '(working tree)'} is invalid: {len(lines)} error(s); "
                f"still enforcing {self._enforced}"
            )
            self._record_error("validation", message, details=lines)
            for line in lines[:20]:
                log.error("%s", line, extra={"revision": revision})
            self._hold(revision, "invalid", message, lines)
            return self.last_good
        self.board.overview.release()
        self.board.overview.set_warnings([diagnostic_line(d) for d in validation.warnings])
        self.last_good = (validation.manifests, revision)
        return self.last_good

    @property
    def _enforced(self) -> str:
        return self.last_good[1] if self.last_good else "nothing"

    def _hold(self, revision: str, kind: str, message: str, lines: Sequence[str]) -> None:
        self.board.overview.hold(revision, kind, message, lines)
        if self._on_held is not None:
            self._on_held(revision, kind, message, lines)

    def _signed(self, checkout: Checkout, revision: str) -> bool:
        """Whether the fetched commit is signed by an allowed key; if not, it is held."""
        config = self.config
        policy = SignaturePolicy(config.allowed_signers, config.gpg_keyring)
        try:
            verdict = verify(
                checkout.root, checkout.revision, policy, config.source, config.git_timeout
            )
        except (SourceError, SourceUnavailable) as exc:
            reason = f"commit {revision}: signature not checked: {exc}"
            verdict_ok, why = False, reason
        else:
            verdict_ok, why = verdict.ok, verdict.reason
            if verdict.ok:
                log.info(
                    "commit %s signed by %s (%s)",
                    revision,
                    verdict.signer or "an allowed key",
                    verdict.key,
                    extra={"revision": revision},
                )
        if verdict_ok:
            return True
        self.board.set_desired_revision(revision)
        self.invalid = True
        message = f"revision {revision} is held: {why}; still enforcing {self._enforced}"
        self._record_error("signature", message, details=[why])
        self._hold(revision, "signature", message, [why])
        return False
