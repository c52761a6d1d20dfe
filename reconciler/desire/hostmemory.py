"""What the reconciler remembers about hosts between passes: since when one has been
unreachable, and which pods it ran when last seen.

An unreachable host cannot be asked what it runs, so without memory its replicas would be
re-created elsewhere at once, and a host that was only briefly away would come back to find
its pods duplicated. With memory, its pods stay placed on it for ``--host-grace`` seconds;
after that, ReplicationController replicas are placed on the remaining hosts (bare Pods are
never moved, as in Kubernetes). When the host returns, the surplus copies are removed.

``remember`` is pure; ``load``/``save`` keep the record in a small JSON file per instance
(``$RECONCILER_STATE_DIR``, else ``$XDG_STATE_HOME/reconciler`` or
``~/.local/state/reconciler``), so that separate ``apply`` runs share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.core import labels as L
from reconciler.core.model import HostState


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One host: unreachable since (epoch seconds, None when it answered last time), and the
    (namespace, pod) of every workload pod it ran when it last answered."""

    down_since: float | None = None
    pods: tuple[tuple[str, str], ...] = ()


def _pods_of(state: HostState) -> tuple[tuple[str, str], ...]:
    keys = {
        (c.labels.get(L.POD_NAMESPACE, ""), c.labels.get(L.POD, ""))
        for c in state.containers
        if c.labels.get(L.ROLE) == L.ROLE_INFRA
    }
    return tuple(sorted(keys))


def remember(
    previous: Mapping[str, HostRecord], live: Mapping[str, HostState], now: float
) -> dict[str, HostRecord]:
    """The record after observing ``live`` at ``now``. Hosts not observed keep their record."""
    result = dict(previous)
    for host, state in live.items():
        if state.reachable:
            result[host] = HostRecord(None, _pods_of(state))
        else:
            before = previous.get(host, HostRecord())
            since = before.down_since if before.down_since is not None else now
            result[host] = HostRecord(since, before.pods)
    return result


def within_grace(record: HostRecord, now: float, grace: float) -> bool:
    return record.down_since is not None and now - record.down_since < grace


# -- the file (the only part that touches the disk) --------------------------------------------
def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("RECONCILER_STATE_DIR"):
        return Path(env["RECONCILER_STATE_DIR"])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "reconciler"


def _path(instance: str, directory: Path) -> Path:
    return directory / f"hosts-{instance}.json"


def load(instance: str, directory: Path) -> dict[str, HostRecord]:
    """The record, or an empty one when there is none or it cannot be read (never fatal)."""
    try:
        data = json.loads(_path(instance, directory).read_text())
    except (OSError, ValueError):
        return {}
    result = {}
    if isinstance(data, dict):
        for host, entry in data.items():
            if not isinstance(entry, dict):
                continue
            since = entry.get("down_since")
            listed = entry.get("pods")
            pods = tuple(
                (str(p[0]), str(p[1]))
                for p in (listed if isinstance(listed, list) else [])
                if isinstance(p, list) and len(p) == 2
            )
            result[str(host)] = HostRecord(
                float(since) if isinstance(since, int | float) else None, pods
            )
    return result


def save(instance: str, directory: Path, record: Mapping[str, HostRecord]) -> None:
    """Write atomically; a failure to write only costs the memory, never the pass."""
    data = {
        host: {"down_since": r.down_since, "pods": [list(p) for p in r.pods]}
        for host, r in sorted(record.items())
    }
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hosts-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, _path(instance, directory))
