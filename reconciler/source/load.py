"""Turn files, directories and stdin into Manifests that remember where every field was written.

Reading (``source.files``: ``discover``, ``read_source``, the tree as a jail) is kept apart
from parsing (``parse_bytes``, ``parse_text``, ``parse_inputs``, which are pure) so that the
parsing can be shared out among worker processes (``check.parallel``). Parsing checks a
file's size and encoding, has ``composer`` compose its documents, reports YAML syntax errors
with their positions, and makes a Manifest of every object, unpacking ``List`` kinds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.core.model import Diagnostic, FieldPath, Location, Manifest, Severity
from reconciler.source.composer import Composer, mark_location
from reconciler.source.files import (
    MAX_FILE_BYTES,
    STDIN_NAME,
    SourceFiles,
    SourceLimits,
    discover,
    read_source,
    size_error,
)
from reconciler.source.ignore import not_a_manifest

__all__ = [
    "LIST_KINDS",
    "MAX_FILE_BYTES",
    "STDIN_NAME",
    "LoadResult",
    "SourceFiles",
    "SourceLimits",
    "discover",
    "load_paths",
    "parse_bytes",
    "parse_inputs",
    "parse_text",
    "read_source",
]

LIST_KINDS = frozenset(
    {"List", "PodList", "ServiceList", "ReplicationControllerList", "DeploymentList"}
)


@dataclass
class LoadResult:
    """Everything loading found: the objects, and the problems with their positions."""

    manifests: list[Manifest] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        self.manifests.extend(other.manifests)
        self.diagnostics.extend(other.diagnostics)
        self.files.extend(other.files)


def _char_at(text: str, line: int, column: int) -> str:
    """The character at a 1-based line and column of ``text``, or '' past its end."""
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    index = start + column - 1
    return text[index] if index < len(text) and text[index] != "\n" else ""


def _yaml_error(filename: str, text: str, exc: yaml.MarkedYAMLError) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    location = mark_location(filename, mark) if mark is not None else Location(filename, 1, 1)
    problem = exc.problem or "invalid YAML"
    if "\t" in text and _char_at(text, location.line, location.column) == "\t":
        problem = "tab character: YAML indentation must use spaces, not tabs"
    if exc.context and exc.context not in problem:
        problem = f"{problem} ({exc.context})"
    return Diagnostic(Severity.ERROR, location, f"invalid YAML: {problem}")


#: Raw in JSON strings but refused (DEL, C1 controls, U+FFFE/U+FFFF) or read as line breaks
#: (NEL, U+2028, U+2029) by YAML's reader: written as escapes, they mean the same in both.
_JSON_ONLY_CHARACTERS = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")
#: A JSON surrogate-pair escape (after an even number of backslashes), as json.dumps writes
#: any character beyond U+FFFF; YAML refuses surrogate escapes and wants one \U escape.
_JSON_SURROGATE_PAIR = re.compile(
    r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE
)


def _json_as_yaml(text: str) -> str:
    """JSON text as the YAML text that reads the same (columns may shift after an escape)."""
    # A literal tab can only be whitespace in valid JSON (inside strings it must be
    # escaped), and YAML rejects tab indentation: same width, same meaning.
    text = text.replace("\t", " ")
    if "\\u" in text:
        text = _JSON_SURROGATE_PAIR.sub(
            lambda m: (
                m[1]
                + f"\\U{0x10000 + ((int(m[2], 16) - 0xD800) << 10) + int(m[3], 16) - 0xDC00:08X}"
            ),
            text,
        )
    return _JSON_ONLY_CHARACTERS.sub(lambda m: f"\\u{ord(m[0]):04X}", text)


def parse_text(
    text: str, filename: str, *, is_json: bool = False, manifests_only: bool = False
) -> LoadResult:
    """Parse one file's text into manifests. Pure: no file system access.

    With ``manifests_only`` (a file found under ``--source``), a document with neither
    apiVersion nor kind is an error naming what to add to ``.sourceignore``; without it (the
    hosts file, a test's snippet) any mapping is a document."""
    result = LoadResult(files=[filename])
    if is_json:
        text = _json_as_yaml(text)
    composer = Composer(filename, json_scalars=is_json)
    try:
        for value, position, positions in composer.documents(text):
            if manifests_only and _not_an_object(value):
                result.diagnostics.append(not_a_manifest(filename, position))
                continue
            _collect(value, position, positions, filename, result)
    except yaml.MarkedYAMLError as exc:
        result.diagnostics.append(_yaml_error(filename, text, exc))
    except yaml.reader.ReaderError as exc:  # control characters: the first one is the culprit
        index = text.find(chr(exc.character)) if isinstance(exc.character, int) else -1
        line = text.count("\n", 0, index) + 1 if index >= 0 else 1
        column = index - text.rfind("\n", 0, index) if index >= 0 else 1
        result.diagnostics.append(
            Diagnostic(
                Severity.ERROR,
                Location(filename, line, column),
                f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}",
            )
        )
    except yaml.YAMLError as exc:  # anything else the reader or parser refuses
        result.diagnostics.append(
            Diagnostic(Severity.ERROR, Location(filename, 1, 1), f"invalid YAML: {exc}")
        )
    result.diagnostics[:0] = composer.diagnostics
    return result


def _collect(
    value: Any,
    position: tuple[int, int],
    positions: dict[FieldPath, tuple[int, int]],
    filename: str,
    result: LoadResult,
) -> None:
    if value is None:
        return  # an empty document: only comments, or a stray '---'
    if not isinstance(value, dict):
        result.diagnostics.append(
            Diagnostic(
                Severity.ERROR,
                Location(filename, *position),
                f"a manifest must be a mapping with apiVersion, kind, metadata and spec, "
                f"not a {_type_name(value)}",
            )
        )
        return
    kind = value.get("kind")
    if isinstance(kind, str) and kind in LIST_KINDS:
        items = value.get("items")
        if not isinstance(items, list):
            items_at = positions.get(("items",), position)
            result.diagnostics.append(
                Diagnostic(
                    Severity.ERROR,
                    Location(filename, *items_at),
                    f"kind {kind} needs an 'items' list of objects",
                    kind=kind,
                    path="items",
                )
            )
            return
        for index, item in enumerate(items):
            prefix: FieldPath = ("items", index)
            item_positions = {path[2:]: at for path, at in positions.items() if path[:2] == prefix}
            _collect(item, positions.get(prefix, position), item_positions, filename, result)
        return
    result.manifests.append(Manifest(value, filename, position, positions))


def _not_an_object(value: Any) -> bool:
    """Some other tool's YAML (compose, CI, a chart's values): no apiVersion, no kind."""
    return isinstance(value, dict) and "apiVersion" not in value and "kind" not in value


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _decode(data: bytes, filename: str) -> tuple[str | None, Diagnostic | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Diagnostic(
            Severity.ERROR,
            Location(filename, line, column),
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded",
        )


def parse_bytes(data: bytes, filename: str, *, manifests_only: bool = False) -> LoadResult:
    """Check size and encoding, then parse. Pure: the caller did the reading."""
    if len(data) > MAX_FILE_BYTES:
        return LoadResult(
            diagnostics=[
                Diagnostic(Severity.ERROR, Location(filename, 1, 1), size_error(len(data)))
            ],
            files=[filename],
        )
    text, problem = _decode(data, filename)
    if problem is not None or text is None:
        return LoadResult(diagnostics=[problem] if problem else [], files=[filename])
    return parse_text(
        text, filename, is_json=filename.lower().endswith(".json"), manifests_only=manifests_only
    )


def parse_inputs(inputs: Iterable[tuple[str, bytes]]) -> LoadResult:
    """Parse (name, contents) pairs, as ``read_source`` gives them, into one LoadResult."""
    result = LoadResult()
    for filename, data in inputs:
        result.extend(parse_bytes(data, filename, manifests_only=True))
    return result


def load_paths(
    paths: Iterable[str],
    stdin: Any = None,
    *,
    limits: SourceLimits | None = None,
    root: str | None = None,
    exclude: Sequence[str] = (),
) -> LoadResult:
    """Read every file under ``paths`` (``-`` is stdin) and parse it; never stops early.
    ``exclude``: ``--exclude`` globs, besides the tree's ``.sourceignore`` files."""
    source = read_source(paths, stdin, limits=limits, root=root, exclude=exclude)
    result = LoadResult(diagnostics=list(source.diagnostics), files=list(source.refused))
    result.extend(parse_inputs(source.inputs))
    return result
