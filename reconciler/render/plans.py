"""Plans for people and tools: coloured text lines, JSON, and Markdown for a pull-request
comment. Pure.

No secret value reaches any of them: a value from a Secret is only ever a digest marker in a
spec; an env value whose name or content looks secret, or a ``--password=``-style argument,
becomes one here if an older label still holds it in clear (``core.redact``). A changed
secret reads ``<secret changed> sha256:… -> sha256:…``. The Markdown escapes everything it
prints outside code spans, and fences code spans with more backticks than the text holds,
so that a value cannot close its span, a table cell or the ``<details>`` block.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.core.redact import (
    is_secret_env,
    is_secret_marker,
    looks_secret,
    marker_digest,
    secret_marker,
)
from reconciler.plan.model import FieldChange, Plan
from reconciler.render.deployments import rollout_dicts, rollout_lines
from reconciler.render.diagnostics import diagnostic_dict, diagnostic_line

_VERB_MARKS = {"create": "+", "start": ">", "recreate": "~", "remove": "-"}
_VERB_STYLES = {"create": "green", "start": "cyan", "recreate": "yellow", "remove": "red"}
# failed containers (probes, init containers) and forwarders reloaded in place
_VERB_MARKS.update({"restart": "!", "stop": "x", "reload": "*"})
_VERB_STYLES.update({"restart": "magenta", "stop": "red", "reload": "cyan"})


def _masked(path: str, value: Any) -> Any:
    """A value as a plan may show it: a secret-looking one (by its env var's name, or its
    content) as its digest marker; markers and everything else as they are."""
    if not isinstance(value, str) or is_secret_marker(value):
        return value
    name = path.rsplit(".env.", 1)[1] if ".env." in path else ""
    if (name and is_secret_env(name, value)) or looks_secret(value):
        return secret_marker(value)
    return value


def _is_secret_change(old: Any, new: Any) -> bool:
    return is_secret_marker(old) or is_secret_marker(new)


def _change_line(change: FieldChange) -> str:
    old, new = _masked(change.path, change.old), _masked(change.path, change.new)
    if is_secret_marker(old) and is_secret_marker(new):
        return f"{change.path}: <secret changed> {marker_digest(old)} -> {marker_digest(new)}"
    return f"{change.path}: {json.dumps(old)} -> {json.dumps(new)}"


def _field(change: FieldChange) -> dict[str, Any]:
    old, new = _masked(change.path, change.old), _masked(change.path, change.new)
    entry = {"path": change.path, "old": old, "new": new}
    if _is_secret_change(old, new):
        entry["secret"] = True
    return entry


def _orphan_line(plan: Plan, volume: Any) -> str:
    claim = volume.labels.get("io.reconciler.claim", "?")
    verb = "remove (--prune-volumes)" if plan.prune_volumes else "kept"
    return (
        f"  volume {volume.name} on {volume.host}: claim {claim} is no longer in the "
        f"manifests: {verb}"
    )


def plan_actions(plan: Plan) -> list[dict[str, Any]]:
    """Each action as a JSON-ready dict: verb, host, object, pod, reason, the manifest's
    file:line and the changed fields (secret values as digest markers)."""
    changes = []
    for action in plan.actions:
        entry: dict[str, Any] = action.as_dict()
        if action.changes:
            entry["fields"] = [_field(c) for c in action.changes]
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
            "orphaned_volumes": [
                {
                    "host": v.host,
                    "volume": v.name,
                    "claim": v.labels.get("io.reconciler.claim", ""),
                    "remove": plan.prune_volumes,
                }
                for v in plan.orphaned_volumes
            ],
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
    for volume in plan.orphaned_volumes:
        lines.append((_orphan_line(plan, volume), "red" if plan.prune_volumes else "yellow"))
    lines += rollout_lines(plan.rollouts)
    state = "in sync" if plan.in_sync else summary_text(plan.summary())
    if not plan.actions and plan.rollouts.in_progress:
        state = "a rollout is waiting for pods to become available"
    lines.append(
        (f"revision {revision or '(none)'}: {state}", "bold green" if plan.in_sync else "bold")
    )
    return lines


_MD_PUNCTUATION = frozenset("\\`*_[]<>|&~")


def _md_escape(text: str) -> str:
    """Text outside code spans: every ASCII punctuation that could open a tag, an entity, a
    link, emphasis, a code span or a table cell backslash-escaped (CommonMark removes the
    backslash, so it reads the same); line breaks as spaces."""
    flat = text.replace("\r", " ").replace("\n", " ")
    return "".join("\\" + c if c in _MD_PUNCTUATION else c for c in flat)


def _md_code(text: str) -> str:
    """A code span that ``text`` cannot close: fenced with one backtick more than its longest
    run of backticks, padded when it starts or ends with one. A ``|`` would still end a
    table cell, so code spans stay out of tables; line breaks become spaces."""
    flat = text.replace("\r", " ").replace("\n", " ")
    longest = run = 0
    for c in flat:
        run = run + 1 if c == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def plan_markdown(plan: Plan, revision: str) -> str:
    """A pull-request comment: verdict, summary, a table of changes, field details."""
    out = [f"### reconciler diff for {_md_code(revision or 'working tree')}", ""]
    if plan.in_sync:
        out.append("**In sync**: no changes.")
        return "\n".join(out) + "\n"
    out.append(f"**{summary_text(plan.summary())}**")
    out.append("")
    for host, error in sorted(plan.unreachable.items()):
        out.append(f"> :warning: host {_md_code(host)} unreachable: {_md_escape(error)}")
    for d in plan.problems:
        mark = ":x:" if d.is_error else ":warning:"
        out.append(f"> {mark} {_md_code(str(d.location))} {_md_escape(d.message)}")
    for volume in plan.orphaned_volumes:
        out.append(f"> :floppy_disk: {_md_escape(_orphan_line(plan, volume).strip())}")
    if plan.actions:
        out += [
            "",
            "| Host | Action | Object | Pod | Container | Reason |",
            "|---|---|---|---|---|---|",
        ]
        for a in plan.actions:
            cells = (
                a.host,
                a.verb.value,
                f"{a.owner.kind}/{a.owner.namespace}/{a.owner.name}",
                a.pod,
                a.container or "",
                a.reason,
            )
            out.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    if plan.rollouts.steps:
        out += ["", "Rollouts:", ""]
        out += [f"- {_md_escape(text)}" for text, _ in rollout_lines(plan.rollouts)]
    detailed = [a for a in plan.actions if a.changes]
    if detailed:
        out += ["", "<details><summary>Field changes</summary>", ""]
        for a in detailed:
            out.append(
                f"- {_md_code(a.host)} {_md_escape(f'{a.owner.kind}/{a.owner.name}')} "
                f"pod {_md_code(a.pod)}"
            )
            for change in a.changes:
                out.append(f"  - {_md_code(_change_line(change))}")
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
