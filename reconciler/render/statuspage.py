"""The status page's view model: ``/status`` turned into what the page draws. Pure.

The page's script (``daemon/http/page/page.js``) is generic: it draws a title, a state pill,
facts, banners and sections of tables from the JSON :func:`page_view` returns, and nothing
else. Every decision about what to show, in which words and colours, is made here, where
a unit test can check it, so a new column (a probe's readiness, a Deployment's rollout) is
one line in this module and none in the script.

The shape, all strings unless said::

    {"title", "state": {"label", "tone"}, "facts": [{"label", "value"}],
     "banners": [{"tone", "title", "lines": [...]}],
     "sections": [{"id", "title", "note", "empty",
                   "columns": [{"key", "label"}],
                   "rows": [{key: cell}]}]}

A cell is ``{"text"}`` plus, optionally, ``"tone"`` (ok, warn, error, idle), ``"time"``
(an ISO time the script shows as an age, "12s ago"), ``"chips"`` (``key=value`` tags),
``"lines"`` (several lines) and ``"mono"`` (a revision, an address). Tones are a closed
set; texts are plain: the script sets them as text, never as markup, which is what keeps a
``<script>`` committed in a label a string on the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

TONES: Final = ("ok", "warn", "error", "idle")
_DIAGNOSTIC = re.compile(r"^(?P<where>.+?:\d+:\d+): (?P<severity>error|warning): (?P<msg>.*)$")
_STATUS_TONE: Final = {"Running": "ok", "Completed": "idle", "ContainerCreating": "warn"}
_ROLLOUT_TONE: Final = {"complete": "ok", "progressing": "warn", "failed": "error"}
_VERB_TONE: Final = {"create": "ok", "start": "ok", "recreate": "warn", "remove": "error"}
_SEVERITY_TONE: Final = {"info": "ok", "warning": "warn", "error": "error"}
#: Why a revision is held, by the kind the service records (``daemon.fetch``), in words
HELD_WORDS: Final = {
    "invalid": "is invalid",
    "signature": "is not signed by an allowed key",
    "undecryptable": "cannot be decrypted",
}

Cell = dict[str, Any]


def text(value: Any, tone: str = "", *, mono: bool = False) -> Cell:
    cell: Cell = {"text": "" if value is None else str(value)}
    if tone:
        cell["tone"] = tone
    if mono:
        cell["mono"] = True
    return cell


def when(iso: str | None, fallback: str = "never") -> Cell:
    return {"text": fallback, "time": iso} if iso else {"text": fallback}


def chips(mapping: Mapping[str, Any] | None) -> Cell:
    items = [f"{k}={v}" for k, v in (mapping or {}).items()]
    return {"text": ", ".join(items), "chips": items}


def lines(values: Sequence[str]) -> Cell:
    return {"text": "\n".join(values), "lines": list(values)}


def _column(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "label": label} for key, label in pairs]


def _name(row: Mapping[str, Any]) -> str:
    namespace, name = row.get("namespace", "default"), row.get("name", "")
    return str(name) if namespace == "default" else f"{namespace}/{name}"


def strip_root(value: Any, root: str) -> Any:
    """``value`` (any JSON) with the source directory ``root`` cut from every text in it:
    ``/var/cache/reconciler/git/ops-3f2a…/apps/web.yaml:12:5`` reads ``apps/web.yaml:12:5``."""
    if not root:
        return value
    if isinstance(value, str):
        return value.replace(root, "")
    if isinstance(value, list):
        return [strip_root(item, root) for item in value]
    if isinstance(value, dict):
        return {key: strip_root(item, root) for key, item in value.items()}
    return value


def page_view(status: Mapping[str, Any]) -> dict[str, Any]:
    """The page's JSON, from a ``/status`` snapshot (file names relative to the source)."""
    root = str(status.get("source_root") or "")
    if root:
        facts_before = facts(status)  # the source itself is shown whole
        view = strip_root(_view(status), root)
        view["facts"][0] = facts_before[0]
        return dict(view)
    return _view(status)


def _view(status: Mapping[str, Any]) -> dict[str, Any]:
    world = status.get("world") or {}
    return {
        "title": f"reconciler · {status.get('instance') or 'default'}",
        "state": state(status),
        "facts": facts(status),
        "banners": banners(status),
        "sections": [
            hosts_section(world.get("hosts") or []),
            workloads_section(world.get("workloads") or []),
            pods_section(world.get("pods") or [], int(world.get("pods_total") or 0)),
            services_section(world.get("services") or []),
            pending_section(status.get("pending") or {}),
            problems_section(status),
            syncs_section(status.get("syncs") or []),
            events_section(status.get("events") or {}),
        ],
    }


def state(status: Mapping[str, Any]) -> dict[str, str]:
    """The one-word verdict at the top, and its colour."""
    sync = status.get("sync") or {}
    held = status.get("held")
    pending = (status.get("pending") or {}).get("total") or 0
    if status.get("suspended"):
        return {"label": "Suspended", "tone": "warn"}
    if held:
        return {"label": "Revision held", "tone": "error"}
    if sync.get("last_result") == "failed":
        return {"label": "Failing", "tone": "error"}
    if not sync.get("synced_once"):
        return {"label": "Syncing" if sync.get("in_progress") else "Starting", "tone": "idle"}
    if pending:
        return {"label": "Out of sync", "tone": "warn"}
    return {"label": "Synced", "tone": "ok"}


def facts(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Source, revision, last sync, hosts, pods: the line under the title."""
    source = status.get("source") or {}
    where = str(source.get("url", ""))
    extra = [f"branch {source['branch']}" if source.get("branch") else "",
             f"path {source['path']}" if source.get("path") else ""]
    where += "".join(f" · {e}" for e in extra if e)
    revision = status.get("revision") or {}
    applied, wanted = revision.get("applied") or "none", revision.get("desired") or ""
    shown = applied if wanted in ("", applied) else f"{applied} (newest: {wanted})"
    sync = status.get("sync") or {}
    world = status.get("world") or {}
    hosts = world.get("hosts") or []
    up = sum(1 for h in hosts if h.get("reachable"))
    pods = world.get("pods") or []
    ready = sum(1 for p in pods if p.get("status") == "Running")
    counters = status.get("counters") or {}
    result = sync.get("last_result") or "none yet"
    duration = sync.get("last_duration_seconds")
    took = f", took {duration:.2f}s" if isinstance(duration, int | float) else ""
    return [
        {"label": "Source", "value": where, "mono": True},
        {"label": "Revision", "value": shown, "mono": True},
        {
            "label": "Last sync",
            "value": f"{result}{took}",
            "time": sync.get("last_finished"),
        },
        {"label": "Hosts", "value": f"{up} of {len(hosts)} reachable"},
        {"label": "Pods", "value": f"{ready} of {int(world.get('pods_total') or 0)} running"},
        {
            "label": "Actions",
            "value": f"{counters.get('actions_ok', 0)} ok, {counters.get('actions_failed', 0)} "
            "failed since start",
        },
    ]


def banners(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What needs a person: a held revision, the last error, a suspension."""
    found = []
    held = status.get("held")
    if held:
        what = HELD_WORDS.get(str(held.get("kind")), f"is held ({held.get('kind')})")
        more = int(held.get("error_count") or 0) - len(held.get("errors") or [])
        found.append(
            {
                "tone": "error",
                "title": f"Revision {held.get('revision') or '(working tree)'} {what}: "
                "it is held, nothing of it is applied",
                "lines": [str(held.get("reason", ""))]
                + [str(e) for e in held.get("errors") or []]
                + ([f"… and {more} more"] if more > 0 else []),
                "time": held.get("since"),
            }
        )
    error = status.get("last_error")
    if error and not (held and error.get("kind") in ("validation", "signature")):
        found.append(
            {
                "tone": "error",
                "title": f"Last error ({error.get('kind')})",
                "lines": [str(error.get("message", ""))]
                + [str(e) for e in error.get("validation_errors") or []],
                "time": error.get("at"),
            }
        )
    if status.get("suspended"):
        found.append(
            {
                "tone": "warn",
                "title": "Reconciling is suspended",
                "lines": ["Nothing is applied until 'reconciler resume'; pending changes "
                          "below are what resuming would do."],
            }
        )
    return found


def hosts_section(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    up = sum(1 for r in rows if r.get("reachable"))
    return {
        "id": "hosts",
        "title": "Hosts",
        "note": f"{up} of {len(rows)} reachable",
        "empty": "No hosts observed yet.",
        "columns": _column(
            ("name", "Host"), ("reachable", "Reachable"), ("engine", "Engine"),
            ("pods", "Pods"), ("forwarders", "Forwarders"), ("cpu", "CPU"),
            ("memory", "Memory"), ("address", "Address"), ("error", "Error"),
        ),
        "rows": [
            {
                "name": text(r.get("name")),
                "reachable": text(
                    "yes" if r.get("reachable") else "no", "ok" if r.get("reachable") else "error"
                ),
                "engine": text(r.get("engine")),
                "pods": text(r.get("pods")),
                "forwarders": text(r.get("forwarders")),
                "cpu": text(r.get("cpu")),
                "memory": text(r.get("memory")),
                "address": text(r.get("address"), mono=True),
                "error": text(r.get("error"), "error" if r.get("error") else ""),
            }
            for r in rows
        ],
    }


def workloads_section(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "id": "workloads",
        "title": "Workloads",
        "note": f"{len(rows)} controller(s)",
        "empty": "No ReplicationControllers or Deployments in the revision in force.",
        "columns": _column(
            ("name", "Workload"), ("ready", "Ready"), ("updated", "Up to date"),
            ("rollout", "Rollout"), ("hosts", "Hosts"), ("source", "Manifest"),
            ("labels", "Labels"), ("annotations", "Annotations"),
        ),
        "rows": [
            {
                "name": text(f"{r.get('kind')}/{_name(r)}"),
                "ready": text(
                    f"{r.get('ready')}/{r.get('desired')}",
                    "ok" if r.get("ready") == r.get("desired") else "warn",
                ),
                "updated": text(r.get("updated")),
                "rollout": lines(
                    [str(r.get("rollout"))]
                    + ([str(r["rollout_error"])] if r.get("rollout_error") else [])
                )
                | {"tone": _ROLLOUT_TONE.get(str(r.get("rollout")), "error")},
                "hosts": text(", ".join(r.get("hosts") or [])),
                "source": text(r.get("source"), mono=True),
                "labels": chips(r.get("labels")),
                "annotations": chips(r.get("annotations")),
            }
            for r in rows
        ],
    }


def pods_section(rows: Sequence[Mapping[str, Any]], total: int) -> dict[str, Any]:
    shown = f"{len(rows)} of {total} shown" if total > len(rows) else f"{total} pod(s)"
    return {
        "id": "pods",
        "title": "Pods",
        "note": shown,
        "empty": "No pods run.",
        "columns": _column(
            ("name", "Pod"), ("host", "Host"), ("ready", "Ready"), ("status", "Status"),
            ("restarts", "Restarts"), ("age", "Age"), ("images", "Images"),
            ("source", "Manifest"), ("revision", "Commit"), ("labels", "Labels"),
        ),
        "rows": [
            {
                "name": text(_name(r)),
                "host": text(r.get("host")),
                "ready": text(f"{r.get('ready')}/{r.get('containers')}"),
                "status": text(r.get("status"), _STATUS_TONE.get(str(r.get("status")), "error")),
                "restarts": text(r.get("restarts"), "warn" if r.get("restarts") else ""),
                "age": {"text": "", "time": _iso_of(r.get("created")), "age": True},
                "images": text(", ".join(r.get("images") or []), mono=True),
                "source": text(r.get("source"), mono=True),
                "revision": text(r.get("revision"), mono=True),
                "labels": chips(r.get("labels")),
            }
            for r in rows
        ],
    }


def services_section(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "id": "services",
        "title": "Services",
        "note": f"{len(rows)} service(s)",
        "empty": "No Services in the revision in force.",
        "columns": _column(
            ("name", "Service"), ("type", "Type"), ("cluster_ip", "Cluster IP"),
            ("ports", "Ports"), ("ready", "Ready pods"), ("endpoints", "Endpoints per host"),
            ("source", "Manifest"),
        ),
        "rows": [
            {
                "name": text(_name(r)),
                "type": text(r.get("type")),
                "cluster_ip": text(r.get("cluster_ip") or "none", mono=True),
                "ports": text(", ".join(r.get("ports") or []), mono=True),
                "ready": text(
                    f"{r.get('ready_pods')}/{r.get('pods')}",
                    "ok" if r.get("ready_pods") else "error",
                ),
                "endpoints": lines(
                    [
                        f"{host}: {', '.join(found) or 'none'}"
                        for host, found in (r.get("endpoints") or {}).items()
                    ]
                ),
                "source": text(r.get("source"), mono=True),
            }
            for r in rows
        ],
    }


def pending_section(pending: Mapping[str, Any]) -> dict[str, Any]:
    actions = pending.get("actions") or []
    total = int(pending.get("total") or 0)
    return {
        "id": "pending",
        "title": "Pending changes",
        "note": f"{total} action(s)" + (f", {len(actions)} shown" if total > len(actions) else ""),
        "empty": "None: the hosts run what the revision in force says.",
        "columns": _column(
            ("action", "Action"), ("object", "Object"), ("pod", "Pod"), ("host", "Host"),
            ("reason", "Why"), ("source", "Manifest"), ("fields", "Fields"),
        ),
        "rows": [
            {
                "action": text(a.get("action"), _VERB_TONE.get(str(a.get("action")), "")),
                "object": text(f"{a.get('kind')}/{_name(a)}"),
                "pod": text(a.get("pod") + (f" ({a['container']})" if a.get("container") else "")),
                "host": text(a.get("host")),
                "reason": text(a.get("reason")),
                "source": text(a.get("source", ""), mono=True),
                "fields": lines(
                    [
                        f"{f.get('path')}: {_short(f.get('old'))} → {_short(f.get('new'))}"
                        for f in a.get("fields") or []
                    ]
                ),
            }
            for a in actions
        ],
    }


def problems_section(status: Mapping[str, Any]) -> dict[str, Any]:
    """Errors (of the held revision, or the last error) and warnings, by file:line."""
    found: list[str] = []
    held = status.get("held")
    if held:
        found += [str(e) for e in held.get("errors") or []]
    error = status.get("last_error")
    if error:
        found += [str(e) for e in error.get("validation_errors") or [] if e not in found]
    warnings = status.get("warnings") or {}
    found += [str(w) for w in warnings.get("lines") or []]
    rows = []
    for line in found:
        match = _DIAGNOSTIC.match(line)
        where, severity, message = (
            match.group("where", "severity", "msg") if match else ("", "error", line)
        )
        rows.append(
            {
                "severity": text(severity, "error" if severity == "error" else "warn"),
                "where": text(where, mono=True),
                "message": text(message),
            }
        )
    return {
        "id": "problems",
        "title": "Errors and warnings",
        "note": f"{len(rows)} finding(s)",
        "empty": "None.",
        "columns": _column(("severity", "Severity"), ("where", "Where"), ("message", "Message")),
        "rows": rows,
    }


def syncs_section(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    tones = {"ok": "ok", "failed": "error"}
    return {
        "id": "syncs",
        "title": "Recent syncs",
        "note": f"last {len(rows)}",
        "empty": "No sync yet.",
        "columns": _column(
            ("finished", "When"), ("revision", "Revision"), ("result", "Result"),
            ("actions", "Actions"), ("duration", "Took"), ("reason", "Why"),
        ),
        "rows": [
            {
                "finished": when(r.get("finished")),
                "revision": text(r.get("revision") or "(none)", mono=True),
                "result": text(r.get("result"), tones.get(str(r.get("result")), "")),
                "actions": text(
                    f"{r.get('applied', 0)} applied, {r.get('failed', 0)} failed"
                    + (f", {r.get('pending')} pending" if r.get("pending") else "")
                ),
                "duration": text(f"{float(r.get('duration_seconds') or 0):.2f}s"),
                "reason": text(r.get("reason")),
            }
            for r in rows
        ],
    }


def events_section(events: Mapping[str, Any]) -> dict[str, Any]:
    recent = events.get("recent") or []
    return {
        "id": "events",
        "title": "Recent events",
        "note": f"{len(recent)} of {int(events.get('total') or 0)}",
        "empty": "Nothing happened yet.",
        "columns": _column(
            ("time", "When"), ("kind", "Event"), ("summary", "What"), ("details", "Details")
        ),
        "rows": [
            {
                "time": when(e.get("time")),
                "kind": text(
                    str(e.get("kind", "")).replace("_", " "),
                    _SEVERITY_TONE.get(str(e.get("severity")), ""),
                ),
                "summary": text(e.get("summary")),
                "details": lines([str(d) for d in e.get("details") or []]),
            }
            for e in recent
        ],
    }


def _short(value: Any, limit: int = 80) -> str:
    shown = repr(value) if not isinstance(value, str) else value
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _iso_of(epoch: Any) -> str | None:
    from datetime import UTC, datetime

    if not isinstance(epoch, int | float) or epoch <= 0:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
