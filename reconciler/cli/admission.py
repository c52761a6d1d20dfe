"""What the operator lets a source ask of the hosts, from the flags every verb that reads
manifests shares: ``--policy``, ``--allow-host-path``, ``--max-source-files``,
``--max-source-bytes`` and ``--max-pods``.

Apart from ``cli.common`` because ``validate`` uses it too, and must start without the
engine (``cli.common`` imports Docker's edge).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from reconciler.check.policy import Policy
from reconciler.check.validate import DEFAULT_POLICY
from reconciler.source.load import SourceLimits


def policy_from_flags(level: str, host_paths: tuple[str, ...]) -> Policy:
    """``--policy`` and ``--allow-host-path``; a relative path is a usage error."""
    try:
        return Policy.from_flags(level, host_paths)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allow-host-path") from exc


@dataclass(frozen=True)
class Admission:
    """What the operator lets a source ask of the hosts: ``--policy`` and
    ``--allow-host-path``, ``--max-source-files`` and ``--max-source-bytes``, ``--max-pods``."""

    policy: Policy = DEFAULT_POLICY
    limits: SourceLimits = field(default_factory=SourceLimits)
    max_pods: int | None = None


def admission_from_flags(
    level: str,
    host_paths: tuple[str, ...],
    max_files: int,
    max_bytes: int,
    max_pods: int | None = None,
) -> Admission:
    """The flags as one value; a bad ``--allow-host-path`` is a usage error."""
    return Admission(
        policy_from_flags(level, host_paths), SourceLimits(max_files, max_bytes), max_pods
    )
