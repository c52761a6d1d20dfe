"""What a pass keeps on this machine between runs: the host memory (``desire.hostmemory``) in a
small JSON file per instance, so that separate ``apply`` runs and restarts of the service
share since when a host is unreachable and which pods it ran.

The directory is ``$RECONCILER_STATE_DIR``, else ``$XDG_STATE_HOME/reconciler`` or
``~/.local/state/reconciler``. A file that cannot be read or written costs the memory,
never the pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from reconciler.desire.hostmemory import HostRecord


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
