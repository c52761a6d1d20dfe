"""Render validation results as text, JSON or GitHub workflow annotations. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reconciler.core.model import Diagnostic
from reconciler.plan.planner import mask_env

OUTPUT_FORMATS = ("text", "json", "github")


def diagnostic_line(d: Diagnostic) -> str:
    """``file:line:col: error: Kind/name: json.path: message`` (parts left out when empty)."""
    parts = [str(d.location), d.severity.value]
    if d.kind or d.name:
        parts.append(f"{d.kind or '?'}/{d.name or '?'}")
    if d.path:
        parts.append(d.path)
    parts.append(d.message)
    return ": ".join(parts)


def diagnostic_dict(d: Diagnostic) -> dict[str, Any]:
    return {
        "file": d.location.file,
        "line": d.location.line,
        "column": d.location.column,
        "kind": d.kind,
        "name": d.name,
        "path": d.path,
        "message": d.message,
    }


def validation_json(diagnostics: Iterable[Diagnostic], objects: int) -> str:
    items = list(diagnostics)
    errors = [diagnostic_dict(d) for d in items if d.is_error]
    warnings = [diagnostic_dict(d) for d in items if not d.is_error]
    return json.dumps(
        {"valid": not errors, "objects": objects, "errors": errors, "warnings": warnings},
        indent=2,
    )


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(d: Diagnostic) -> str:
    """A GitHub Actions workflow command that puts the message on the file's line."""
    level = "error" if d.is_error else "warning"
    loc = d.location
    title = f"{d.kind}/{d.name}" if d.kind or d.name else "manifest"
    message = f"{d.path}: {d.message}" if d.path else d.message
    return (
        f"::{level} file={_escape_property(loc.file)},line={loc.line},col={loc.column},"
        f"title={_escape_property(title)}::{_escape_data(message)}"
    )


def validation_summary(diagnostics: Iterable[Diagnostic], objects: int, files: int) -> str:
    items = list(diagnostics)
    errors = sum(1 for d in items if d.is_error)
    warnings = len(items) - errors
    verdict = "valid" if not errors else "invalid"
    return (
        f"{objects} object(s) in {files} file(s): {verdict}, "
        f"{errors} error(s), {warnings} warning(s)"
    )


# -- plans ------------------------------------------------------------------------------------
_VERB_MARKS = {"create": "+", "start": ">", "recreate": "~", "remove": "-"}
_VERB_STYLES = {"create": "green", "start": "cyan", "recreate": "yellow", "remove": "red"}


def _masked(path: str, value: Any) -> Any:
    """Mask env values whose variable name looks secret (PASSWORD, TOKEN, SECRET, KEY)."""
    if ".env." in path:
        return mask_env(path.rsplit(".env.", 1)[1], value)
    return value


def _change_line(change: Any) -> str:
    old, new = _masked(change.path, change.old), _masked(change.path, change.new)
    return f"{change.path}: {json.dumps(old)} -> {json.dumps(new)}"


def plan_json(plan: Any, revision: str) -> str:
    """``{"revision", "in_sync", "changes": [...], "summary": {action: count}}`` and more."""
    changes = []
    for action in plan.actions:
        entry: dict[str, Any] = action.as_dict()
        if action.changes:
            entry["fields"] = [
                {"path": c.path, "old": _masked(c.path, c.old), "new": _masked(c.path, c.new)}
                for c in action.changes
            ]
        if action.source is not None:
            entry["source"] = str(action.source)
        changes.append(entry)
    return json.dumps(
        {
            "revision": revision,
            "in_sync": plan.in_sync,
            "changes": changes,
            "summary": plan.summary(),
            "unreachable": plan.unreachable,
            "problems": [diagnostic_dict(d) for d in plan.problems],
            "skipped_prunes": [a.as_dict() for a in plan.skipped_prunes],
        },
        indent=2,
    )


def summary_text(counts: dict[str, int]) -> str:
    if not counts:
        return "no changes"
    return ", ".join(f"{count} {verb}" for verb, count in sorted(counts.items()))


def plan_text_lines(plan: Any, revision: str) -> list[tuple[str, str]]:
    """(text, style) lines: grouped by host, field-level detail for recreates."""
    lines: list[tuple[str, str]] = []
    by_host: dict[str, list[Any]] = {}
    for action in plan.actions:
        by_host.setdefault(action.host, []).append(action)
    for host, error in sorted(plan.unreachable.items()):
        lines.append((f"host {host}: UNREACHABLE: {error}", "bold red"))
    for d in plan.problems:
        lines.append((diagnostic_line(d), "red" if d.is_error else "yellow"))
    for host in sorted(by_host):
        actions = by_host[host]
        lines.append((f"host {host}: {len(actions)} change(s)", "bold"))
        for action in actions:
            verb = action.verb.value
            target = f"{action.owner.kind}/{action.owner.name}"
            if action.owner.namespace != "default":
                target = f"{action.owner.kind}/{action.owner.namespace}/{action.owner.name}"
            pod = f" pod {action.pod}" + (
                f" container {action.container}" if action.container else ""
            )
            text = f"  {_VERB_MARKS[verb]} {verb:<8} {target}{pod}: {action.reason}"
            lines.append((text, _VERB_STYLES[verb]))
            for change in action.changes:
                lines.append((f"      {_change_line(change)}", "dim"))
    for action in plan.skipped_prunes:
        lines.append(
            (
                f"  (not pruned, --no-prune) {action.owner.kind}/{action.owner.name} pod "
                f"{action.pod} on {action.host}: {action.reason}",
                "dim",
            )
        )
    state = "in sync" if plan.in_sync else summary_text(plan.summary())
    lines.append(
        (f"revision {revision or '(none)'}: {state}", "bold green" if plan.in_sync else "bold")
    )
    return lines


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(plan: Any, revision: str) -> str:
    """A pull-request comment: verdict, summary, a table of changes, field details."""
    out = [f"### reconciler diff for `{revision or 'working tree'}`", ""]
    if plan.in_sync:
        out.append("**In sync**: no changes.")
        return "\n".join(out) + "\n"
    out.append(f"**{summary_text(plan.summary())}**")
    out.append("")
    for host, error in sorted(plan.unreachable.items()):
        out.append(f"> :warning: host `{host}` unreachable: {_md_escape(error)}")
    for d in plan.problems:
        mark = ":x:" if d.is_error else ":warning:"
        out.append(f"> {mark} `{d.location}` {_md_escape(d.message)}")
    if plan.actions:
        out += [
            "",
            "| Host | Action | Object | Pod | Container | Reason |",
            "|---|---|---|---|---|---|",
        ]
        for a in plan.actions:
            out.append(
                f"| {a.host} | {a.verb.value} | {a.owner.kind}/{a.owner.namespace}/{a.owner.name}"
                f" | {a.pod} | {a.container or ''} | {_md_escape(a.reason)} |"
            )
    detailed = [a for a in plan.actions if a.changes]
    if detailed:
        out += ["", "<details><summary>Field changes</summary>", ""]
        for a in detailed:
            out.append(f"- `{a.host}` {a.owner.kind}/{a.owner.name} pod `{a.pod}`")
            for change in a.changes:
                out.append(f"  - `{_md_escape(_change_line(change))}`")
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
