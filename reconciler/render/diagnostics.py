"""Validation results for people and tools: text lines, JSON, GitHub workflow annotations and
the one-line summary. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reconciler.core.model import Diagnostic
from reconciler.core.text import escape_control

OUTPUT_FORMATS = ("text", "json", "github")


def diagnostic_line(d: Diagnostic) -> str:
    """``file:line:col: error: Kind/name: json.path: message`` (parts left out when empty),
    on one line: a name, file name or key holding a line break or a terminal escape is
    shown escaped (``core.text``), never forging a line of its own."""
    parts = [str(d.location), d.severity.value]
    if d.kind or d.name:
        parts.append(f"{d.kind or '?'}/{d.name or '?'}")
    if d.path:
        parts.append(d.path)
    parts.append(d.message)
    return escape_control(": ".join(parts))


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
