"""Plans for people and tools: coloured text lines, JSON, and Markdown for a pull-request
comment. Secret-looking env values are masked in every one of them. Pure.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.core.redact import mask_env
from reconciler.plan.model import FieldChange, Plan
from reconciler.render.deployments import rollout_dicts, rollout_lines
from reconciler.render.diagnostics import diagnostic_dict, diagnostic_line

_VERB_MARKS = {"create": "+", "start": ">", "recreate": "~", "remove": "-"}
_VERB_STYLES = {"create": "green", "start": "cyan", "recreate": "yellow", "remove": "red"}


def _masked(path: str, value: Any) -> Any:
    """Mask env values whose variable name looks secret (PASSWORD, TOKEN, SECRET, KEY)."""
    if ".env." in path:
        return mask_env(path.rsplit(".env.", 1)[1], value)
    return value


def _change_line(change: FieldChange) -> str:
    old, new = _masked(change.path, change.old), _masked(change.path, change.new)
    return f"{change.path}: {json.dumps(old)} -> {json.dumps(new)}"


def plan_actions(plan: Plan) -> list[dict[str, Any]]:
    """Each action as a JSON-ready dict: verb, host, object, pod, reason, the manifest's
    file:line and the changed fields (secret-looking env values masked)."""
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
    return changes


def plan_json(plan: Plan, revision: str) -> str:
    """``{"revision", "in_sync", "changes": [...], "summary": {action: count}}`` and more."""
    return json.dumps(
        {
            "revision": revision,
            "in_sync": plan.in_sync,
            "changes": plan_actions(plan),
            "summary": plan.summary(),
            "unreachable": plan.unreachable,
            "problems": [diagnostic_dict(d) for d in plan.problems],
            "skipped_prunes": [a.as_dict() for a in plan.skipped_prunes],
            "rollouts": rollout_dicts(plan.rollouts),
        },
        indent=2,
    )


def summary_text(counts: dict[str, int]) -> str:
    if not counts:
        return "no changes"
    return ", ".join(f"{count} {verb}" for verb, count in sorted(counts.items()))


def plan_text_lines(plan: Plan, revision: str) -> list[tuple[str, str]]:
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
    lines += rollout_lines(plan.rollouts)
    state = "in sync" if plan.in_sync else summary_text(plan.summary())
    if not plan.actions and plan.rollouts.in_progress:
        state = "a rollout is waiting for pods to become available"
    lines.append(
        (f"revision {revision or '(none)'}: {state}", "bold green" if plan.in_sync else "bold")
    )
    return lines


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(plan: Plan, revision: str) -> str:
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
    if plan.rollouts.steps:
        out += ["", "Rollouts:", ""]
        out += [f"- {_md_escape(text)}" for text, _ in rollout_lines(plan.rollouts)]
    detailed = [a for a in plan.actions if a.changes]
    if detailed:
        out += ["", "<details><summary>Field changes</summary>", ""]
        for a in detailed:
            out.append(f"- `{a.host}` {a.owner.kind}/{a.owner.name} pod `{a.pod}`")
            for change in a.changes:
                out.append(f"  - `{_md_escape(_change_line(change))}`")
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
