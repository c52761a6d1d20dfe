"""What ``reconciler run`` was told, and what one pass reports back.

:class:`RunConfig` is the whole configuration of the service, already merged by the CLI
(flags > ``RECONCILER_*`` env > config file > defaults); :class:`PassOutcome` is the result
of one pass, for ``--once`` and for tests. Plain data in a module of its own, so that the
CLI and the tests can build and read them without importing the loop and its edges.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.observer import DEFAULT_TIMEOUT as DEFAULT_OBSERVE_TIMEOUT
from reconciler.check.policy import Policy
from reconciler.core import labels as L
from reconciler.desire.budget import DEFAULT_MAX_PODS
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host
from reconciler.source.keys import Keyring
from reconciler.source.load import SourceLimits


@dataclass
class RunConfig:
    """Everything ``reconciler run`` was told (flags > RECONCILER_* env > config file)."""

    source: str
    branch: str = ""
    path: str = ""
    exclude: tuple[str, ...] = ()  # --exclude globs, besides the tree's .sourceignore files
    interval: float = 30.0
    resync: float = 60.0
    listen: str = "127.0.0.1:9477"
    hosts: Sequence[Host] = ()
    instance: str = L.DEFAULT_INSTANCE
    settings: Settings = field(default_factory=Settings)
    webhook_secret: str = ""
    once: bool = False
    cache_dir: Path | None = None
    state_dir: Path | None = None
    concurrency: int = 8
    prune: bool = True
    max_prune: int = 20
    allow_mass_prune: bool = False
    max_create: int = 100
    allow_mass_create: bool = False
    #: what a revision may ask of the hosts (``check.policy``), how much the source may
    #: hold, and how many pods: a revision past them is refused like an invalid one
    policy: Policy = field(default_factory=Policy)
    source_limits: SourceLimits = field(default_factory=SourceLimits)
    max_pods: int = DEFAULT_MAX_PODS
    grace_seconds: int = 10
    git_timeout: float = 60.0
    stop_timeout: float = 30.0
    #: apply only commits signed by a key of ``allowed_signers`` (SSH) or ``gpg_keyring``
    verify_signatures: bool = False
    allowed_signers: Path | None = None
    gpg_keyring: Path | None = None
    #: receivers of the events (``--notify``), and their body: ``json`` or ``slack``
    notify: Sequence[str] = ()
    notify_format: str = "json"
    #: age identities for SOPS-encrypted Secrets, read once at start (kept in memory only)
    keyring: Keyring = field(default_factory=Keyring)
    #: while a Deployment rolls out, the next pass comes this soon (its pods' readiness is
    #: what lets it go on), instead of waiting for the resync
    rollout_interval: float = 1.0
    #: seconds a host has to answer a pass's list call (``apply.observer``): one that has
    #: not is unreachable for that pass, and costs no later pass anything while it is dark
    observe_timeout: float = DEFAULT_OBSERVE_TIMEOUT

    @property
    def is_git(self) -> bool:
        """A URL, or a path to a bare repository, is fetched with git; a plain directory
        is read (and watched) in place."""
        if re.match(r"^[a-z+]+://", self.source) or re.match(r"^[\w.-]+@[\w.-]+:", self.source):
            return True
        directory = Path(self.source)
        return (directory / "HEAD").is_file() and (directory / "objects").is_dir()


@dataclass
class PassOutcome:
    """What one pass did, for ``--once`` and for tests."""

    ok: bool
    revision: str = ""
    applied: int = 0
    failed: int = 0
    error: str = ""
    rolling: bool = False  # a Deployment's rollout is under way: look again soon
    rollouts_failed: int = 0  # Deployments whose template is marked failed
