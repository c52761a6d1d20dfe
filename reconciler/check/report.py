"""Diagnostics about one manifest: the reporter every per-object check writes to, and the
messages a person can act on made from schema issues.

The reporter locates each field path in the manifest's source; ``schema_diagnostics`` turns
a compiled check's ``Issue`` (or a ``jsonschema`` error, which has the same shape) into
messages with hints for old API fields and likely typos.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from reconciler.check.compiler import Issue
from reconciler.core.model import Diagnostic, FieldPath, Manifest, Severity, format_path
from reconciler.core.text import shown

if TYPE_CHECKING:
    from jsonschema import ValidationError

#: Hints for fields that exist in older API shapes or are common slips.
_FIELD_HINTS: dict[str, str] = {
    "id": "metadata.name (top-level 'id' is from v1beta1/v1beta3)",
    "desiredState": "spec (desiredState is from v1beta1)",
    "portalIP": "spec.clusterIP (portalIP is from v1beta1/v1beta3)",
    "containerPort": "targetPort (in a Service port, the backend port is targetPort)",
    "sops": "a Secret for encrypted values (only Secrets may be SOPS-encrypted)",
}


class Reporter:
    """Collects diagnostics about one manifest, locating each field path in its source."""

    def __init__(self, manifest: Manifest, out: list[Diagnostic]) -> None:
        self.manifest = manifest
        self.out = out
        self.kind = manifest.kind
        self.name = manifest.name

    def add(self, severity: Severity, path: FieldPath, message: str) -> None:
        self.out.append(
            Diagnostic(
                severity,
                self.manifest.locate(path),
                message,
                kind=self.kind,
                name=self.name,
                path=format_path(path),
            )
        )

    def error(self, path: FieldPath, message: str) -> None:
        self.add(Severity.ERROR, path, message)

    def warn(self, path: FieldPath, message: str) -> None:
        self.add(Severity.WARNING, path, message)

    def check_name(self, path: FieldPath, value: Any, rule: Callable[[str], str | None]) -> None:
        if isinstance(value, str):
            problem = rule(value)
            if problem:
                self.error(path, f"{shown(value)} {problem}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "mapping"


_TYPE_WORDS = {"object": "mapping", "array": "list"}


def schema_diagnostics(report: Reporter, error: Issue | ValidationError) -> None:
    """Turn one jsonschema error into messages a person can act on."""
    path: FieldPath = tuple(error.absolute_path)
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    if report.kind == "Secret" and path[:1] in (("data",), ("stringData",)) and len(path) > 1:
        report.error(path, "expected a string (quote the value); a Secret's value is not shown")
        return
    value: Any = error.validator_value
    if keyword == "x-unhonoured":
        report.warn(path, f"field {path[-1]!r} is not honoured: {error.message}")
    elif keyword == "additionalProperties" and isinstance(instance, Mapping):
        known = sorted(schema.get("properties", {}))
        for key in instance:
            if key in known:
                continue
            hint = _FIELD_HINTS.get(key)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
            message = f"unknown field {shown(key)}"
            if hint:
                message += f": use {hint}"
            elif close:
                message += f": did you mean {close[0]!r}?"
            elif known:
                message += f" (known fields here: {', '.join(known)})"
            report.error(path + (key,), message)
    elif keyword == "required" and isinstance(instance, Mapping):
        for key in value:
            if key not in instance:
                report.error(path + (key,), f"missing required field {key!r}")
    elif keyword == "type":
        wanted = value if isinstance(value, list) else [value]
        words = " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in wanted)
        actual = _json_type(instance)
        message = f"expected {words}, got {actual}"
        if schema.get("x-expected") and actual not in wanted:
            message = f"expected {schema['x-expected']}, got {actual}"
            if actual in ("integer", "number", "boolean"):
                message += f" {json.dumps(instance)}"
        elif "string" in wanted and actual in ("integer", "number", "boolean"):
            message += f' {json.dumps(instance)} (quote it: "{json.dumps(instance)}")'
        report.error(path, message)
    elif keyword == "enum":
        options = ", ".join(repr(v) if v == "" else str(v) for v in value)
        report.error(path, f"must be one of {options}; got {shown(instance)}")
    elif keyword == "const":
        report.error(path, f"must be {error.validator_value!r}; got {shown(instance)}")
    elif keyword in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            report.error(path, f"must be between {low} and {high}; got {shown(instance)}")
        elif low is not None:
            report.error(path, f"must be {low} or more; got {shown(instance)}")
        else:
            report.error(path, f"must be {high} or less; got {shown(instance)}")
    elif keyword == "minItems":
        report.error(path, f"must have at least {error.validator_value} item(s)")
    elif keyword == "minLength":
        report.error(path, "must not be empty")
    elif keyword == "pattern":
        expected = schema.get("x-expected", f"text matching {error.validator_value}")
        report.error(path, f"expected {expected}; got {shown(instance)}")
    else:
        report.error(path, error.message)
