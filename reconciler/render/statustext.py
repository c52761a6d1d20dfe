"""``reconciler status`` for people: ``/status`` as a summary, in the manner of ``kubectl
describe`` and ``flux get``. Pure.

One fact per line, labels aligned, times as ages ("12s ago"), empty values as words
("none", "never") rather than ``None`` or ``False``, hosts and workloads as small tables,
and the errors that need a person (a held revision, the last error) with their file:line.
``-o json`` still prints the JSON itself, for scripts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from reconciler.render.statuspage import HELD_WORDS, strip_root
from reconciler.render.views import table_lines

_WIDTH: Final = 13  # "Last error:" and friends, then the value
MAX_LINES: Final = 10  # errors and events shown under a fact; the rest are counted


def age(iso: str | None, now: float) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``; ``never`` without a time."""
    if not iso:
        return "never"
    try:
        then = datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return iso
    seconds = max(0, int(now - then))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _fact(label: str, value: str) -> str:
    return f"{label + ':':<{_WIDTH}} {value}".rstrip()


def _indented(lines: Sequence[str], total: int | None = None) -> list[str]:
    shown = [f"  {line}" for line in lines[:MAX_LINES]]
    more = (total if total is not None else len(lines)) - min(len(lines), MAX_LINES)
    return shown + ([f"  … and {more} more"] if more > 0 else [])


def status_lines(status: Mapping[str, Any], now: float) -> list[str]:
    """The summary, line by line (file names relative to the source's directory)."""
    root = str(status.get("source_root") or "")
    lines = _lines(status, now)
    return [lines[0], lines[1], *strip_root(lines[2:], root)]


def _lines(status: Mapping[str, Any], now: float) -> list[str]:
    source = status.get("source") or {}
    where = str(source.get("url") or "(unknown)")
    if source.get("branch"):
        where += f"  branch {source['branch']}"
    if source.get("path"):
        where += f"  path {source['path']}"
    revision = status.get("revision") or {}
    applied = revision.get("applied") or "none yet"
    wanted = revision.get("desired") or ""
    sync = status.get("sync") or {}
    counters = status.get("counters") or {}
    out = [
        _fact("Instance", str(status.get("instance") or "default")),
        _fact("Source", where),
        _fact(
            "Revision",
            applied + (f" (newest fetched: {wanted})" if wanted and wanted != applied else ""),
        ),
    ]
    out += _held(status.get("held"), now)
    out.append(_fact("Last sync", _last_sync(sync, status.get("syncs") or [], now)))
    out.append(
        _fact(
            "Ready",
            "yes" if sync.get("synced_once") else "no (no successful sync yet)",
        )
    )
    out.append(_fact("Suspended", "yes (nothing is applied)" if status.get("suspended") else "no"))
    pending = status.get("pending") or {}
    total = pending.get("total")
    if total is None:
        total = status.get("pending_changes") or 0
    out.append(_fact("Pending", f"{total} change(s)"))
    out.append(
        _fact(
            "Actions",
            f"{counters.get('actions_ok', 0)} applied, {counters.get('actions_failed', 0)} "
            f"failed (since the service started, {age(status.get('started'), now)})",
        )
    )
    out += _hosts(status, now)
    out += _workloads((status.get("world") or {}).get("workloads") or [])
    out += _last_error(status.get("last_error"), status.get("held"), now)
    out += _events((status.get("events") or {}).get("recent") or [], now)
    return out


def _held(held: Mapping[str, Any] | None, now: float) -> list[str]:
    if not held:
        return []
    what = HELD_WORDS.get(str(held.get("kind")), f"is held ({held.get('kind')})")[3:]
    lines = [
        _fact(
            "Held",
            f"{held.get('revision') or '(working tree)'} ({what}, since "
            f"{age(held.get('since'), now)}): {held.get('reason', '')}",
        )
    ]
    return lines + _indented(list(held.get("errors") or []), held.get("error_count"))


def _last_sync(sync: Mapping[str, Any], syncs: Sequence[Mapping[str, Any]], now: float) -> str:
    if sync.get("in_progress") and not sync.get("last_finished"):
        return "the first sync is running"
    result = sync.get("last_result")
    if not result:
        return "none yet"
    text = f"{result}, {age(sync.get('last_finished'), now)}"
    duration = sync.get("last_duration_seconds")
    if isinstance(duration, int | float):
        text += f", took {duration:.2f}s"
    last = syncs[0] if syncs else None
    if last is not None:
        text += f", {last.get('applied', 0)} applied, {last.get('failed', 0)} failed"
        if last.get("reason"):
            text += f" ({last['reason']})"
    if sync.get("in_progress"):
        text += "; a sync is running"
    return text


def _hosts(status: Mapping[str, Any], now: float) -> list[str]:
    health = status.get("hosts") or {}
    rows = {r.get("name"): r for r in (status.get("world") or {}).get("hosts") or []}
    names = sorted(set(health) | {str(n) for n in rows if n})
    if not names:
        return [_fact("Hosts", "none observed yet")]
    up = sum(1 for n in names if (health.get(n) or rows.get(n) or {}).get("reachable"))
    table = []
    for name in names:
        seen = health.get(name) or {}
        row = rows.get(name) or {}
        reachable = bool(seen.get("reachable", row.get("reachable")))
        error = seen.get("error") or row.get("error") or ""
        if not reachable and seen.get("last_seen"):
            error += f" (last seen {age(seen['last_seen'], now)})"
        table.append(
            {
                "NAME": name,
                "REACHABLE": "yes" if reachable else "no",
                "ENGINE": row.get("engine", ""),
                "PODS": row.get("pods", "") if reachable else "",
                "ERROR": error.strip(),
            }
        )
    return [_fact("Hosts", f"{up} of {len(names)} reachable")] + [
        f"  {line}" for line in table_lines(table)
    ]


def _workloads(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if not rows:
        return []
    table = [
        {
            "KIND": r.get("kind", ""),
            "NAME": r.get("name", "")
            if r.get("namespace") == "default"
            else f"{r.get('namespace')}/{r.get('name')}",
            "READY": f"{r.get('ready')}/{r.get('desired')}",
            "UP-TO-DATE": r.get("updated", ""),
            "ROLLOUT": r.get("rollout", ""),
            "MANIFEST": r.get("source", ""),
        }
        for r in rows
    ]
    lines = table_lines(table)
    return [_fact("Workloads", f"{len(rows)}")] + [f"  {line}" for line in lines]


def _last_error(
    error: Mapping[str, Any] | None, held: Mapping[str, Any] | None, now: float
) -> list[str]:
    if not error:
        return [_fact("Last error", "none")]
    if held and error.get("kind") in ("validation", "signature"):
        return []  # said under Held, with its lines
    lines = [
        _fact(
            "Last error",
            f"{error.get('kind')}, {age(error.get('at'), now)}: {error.get('message', '')}",
        )
    ]
    details = list(error.get("validation_errors") or [])
    return lines + _indented(details, error.get("validation_error_count"))


def _events(recent: Sequence[Mapping[str, Any]], now: float) -> list[str]:
    if not recent:
        return []
    shown = [
        f"{age(e.get('time'), now):>8}  {e.get('kind', '')!s:<14} {e.get('summary', '')}"
        for e in recent[:MAX_LINES]
    ]
    return [_fact("Events", f"{len(recent)} recent")] + [f"  {line}" for line in shown]
