"""Turn files, directories and stdin into Manifests that remember where every field was written.

Why not ``yaml.safe_load``: it forgets positions, silently keeps the last of two duplicate
keys, expands alias bombs, and its C composer recurses (a deeply nested document crashes the
interpreter). Instead we compose values ourselves from libyaml's flat event stream with an
explicit stack, which gives positions, duplicate-key errors, a depth limit and an
alias-expansion budget in one pass.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml import events as ev

from reconciler.core.errors import InputError
from reconciler.core.model import Diagnostic, FieldPath, Location, Manifest, Severity, format_path

try:  # libyaml makes parsing several times faster; the pure-Python parser is a fallback.
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

#: Files larger than this are refused: a manifest this big is a mistake or an attack.
MAX_FILE_BYTES = 8 * 1024 * 1024
#: Deeper nesting than any real manifest needs; guards the stack and later recursive stages.
MAX_DEPTH = 64
#: Nodes one document may expand to, counting every alias expansion (billion-laughs guard).
MAX_NODES_PER_DOCUMENT = 100_000

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_NAME = "<stdin>"
LIST_KINDS = frozenset({"List", "PodList", "ServiceList", "ReplicationControllerList"})

_constructor = yaml.constructor.SafeConstructor()
_resolver = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TEXT_TAGS = frozenset({_STR, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"})
#: Integers past this would exceed Python's 4300-digit limit for printing them.
_MAX_INT_BITS = 14_000
_CONSTRUCTORS: dict[str, Any] = {
    _INT: _constructor.construct_yaml_int,
    _FLOAT: _constructor.construct_yaml_float,
    _BOOL: _constructor.construct_yaml_bool,
}


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


class _DocumentError(Exception):
    """Aborts one document (the rest of the file still loads)."""

    def __init__(self, message: str, location: Location) -> None:
        super().__init__(message)
        self.message = message
        self.location = location


def _loc(filename: str, mark: Any) -> Location:
    return Location(filename, mark.line + 1, mark.column + 1)


#: Merge keys' values (``<<: *base``) waiting to be applied, with where each was written.
_Merges = list[tuple[Any, tuple[int, int]]] | None
#: The state of an enclosing collection while a nested one is composed: its container,
#: is_map, path, waiting key, key flag, size, start, anchor and merges (see ``_document``).
_Saved = tuple[Any, bool, FieldPath, str | None, int, int, tuple[int, int], str | None, _Merges]


def _add_merge(
    merges: _Merges, value: Any, start: tuple[int, int]
) -> list[tuple[Any, tuple[int, int]]]:
    """Remember a merge key's value, applied when its mapping closes (``_Composer._merge``)."""
    if merges is None:
        merges = []
    merges.append((value, start))
    return merges


_MERGE_KEY, _DUPLICATE_KEY = 1, 2
_MappingStart, _SequenceStart = ev.MappingStartEvent, ev.SequenceStartEvent
_MappingEnd, _SequenceEnd = ev.MappingEndEvent, ev.SequenceEndEvent
_Scalar, _Alias, _DocumentEnd = ev.ScalarEvent, ev.AliasEvent, ev.DocumentEndEvent

#: First characters of plain scalars that some implicit resolver (int, float, bool, null,
#: timestamp, merge, ...) may claim; a plain scalar starting with any other character is a
#: string, which saves running the resolver's regular expressions on most values.
_RESOLVABLE_FIRST: frozenset[str] = frozenset(
    first for first in _resolver.yaml_implicit_resolvers if first is not None
)
#: A resolver registered for every first character (key None) would defeat the shortcut.
_FIRST_CHARACTER_SHORTCUT = None not in _resolver.yaml_implicit_resolvers
_PLAIN_CACHE_SIZE = 16_384
_YAML_PLAIN_CACHE: dict[str, Any] = {}
_JSON_PLAIN_CACHE: dict[str, Any] = {}


class _Composer:
    """Composes JSON-like values for one file from parser events, recording positions.

    Positions are kept as (line, column) pairs and turned into Locations only when a
    diagnostic needs one: building an object per event dominated the loading time.
    """

    def __init__(self, filename: str, json_scalars: bool) -> None:
        self.filename = filename
        self.json_scalars = json_scalars
        self.diagnostics: list[Diagnostic] = []
        # Plain scalars resolve the same in every file: one cache per scalar dialect, shared
        # by every composer of the process, so repeated values ('TCP', 8080) resolve once.
        self._plain_cache = _JSON_PLAIN_CACHE if json_scalars else _YAML_PLAIN_CACHE
        self._first_character_shortcut = _FIRST_CHARACTER_SHORTCUT and not json_scalars

    def location(self, position: tuple[int, int]) -> Location:
        return Location(self.filename, position[0], position[1])

    # -- scalars -------------------------------------------------------------------------
    def scalar_value(self, event: ev.ScalarEvent) -> Any:
        value: str = event.value
        tag = event.tag
        if event.style:  # quoted or block scalar: a string unless explicitly tagged
            if tag is None or tag == "!" or tag == _STR:
                return value
        elif tag is None:
            return self._plain(value, event)
        return self._tagged_value(value, tag, event)

    def _plain(self, value: str, event: ev.ScalarEvent) -> Any:
        """An untagged plain scalar: resolved by its text alone, so the result is cached."""
        if self._first_character_shortcut and value[:1] not in _RESOLVABLE_FIRST:
            return value  # no implicit resolver starts with this character: a string
        cache = self._plain_cache
        cached = cache.get(value, _MISSING)
        if cached is not _MISSING:
            return cached
        result = self._plain_value(value, event)
        if len(cache) < _PLAIN_CACHE_SIZE:
            cache[value] = result
        return result

    def _plain_value(self, value: str, event: ev.ScalarEvent) -> Any:
        if self.json_scalars:
            try:
                return json.loads(value)
            except ValueError:
                return value
        tag: str = _resolver.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        return self._tagged_value(value, tag, event)

    def _tagged_value(self, value: str, tag: str, event: ev.ScalarEvent) -> Any:
        if tag == "!":
            return value
        if tag in _TEXT_TAGS:
            return value
        node = yaml.ScalarNode(tag, value)
        construct = _CONSTRUCTORS.get(tag)
        if construct is not None:
            try:
                result = construct(node)
                if tag == _INT and result.bit_length() > _MAX_INT_BITS:
                    raise ValueError("too many digits to print")  # 0x..., 1:2:3:... forms
                return result
            except (ValueError, KeyError, IndexError) as exc:
                # '!!int x', '!!bool maybe', or an integer past Python's 4300-digit limit
                shown = value if len(value) <= 40 else value[:40] + "..."
                raise _DocumentError(
                    f"{shown!r} cannot be read as {tag.rsplit(':', 1)[-1]}"
                    + (": it has too many digits" if "digits" in str(exc) else ""),
                    _loc(self.filename, event.start_mark),
                ) from exc
        if tag == _NULL:
            return None
        raise _DocumentError(
            f"unsupported YAML tag {tag!r}: manifests hold plain strings, numbers, booleans, "
            "lists and mappings",
            _loc(self.filename, event.start_mark),
        )

    # -- documents -----------------------------------------------------------------------
    def documents(
        self, text: str
    ) -> Iterator[tuple[Any, tuple[int, int], dict[FieldPath, tuple[int, int]]]]:
        """Yield (value, position, positions) for every document in ``text``."""
        loader = _Loader(text)
        try:
            while True:
                event = loader.get_event()
                if event is None or isinstance(event, ev.StreamEndEvent):
                    return
                if isinstance(event, ev.DocumentStartEvent):
                    try:
                        yield self._document(loader)
                    except _DocumentError as exc:
                        self.diagnostics.append(
                            Diagnostic(Severity.ERROR, exc.location, exc.message)
                        )
                        _skip_to_document_end(loader)
        finally:
            loader.dispose()

    def _document(
        self, loader: Any
    ) -> tuple[Any, tuple[int, int], dict[FieldPath, tuple[int, int]]]:
        """Compose one document from its events (the DocumentStartEvent was read).

        This loop runs once per parser event, so it is written for speed: the innermost
        open collection's state lives in local variables (``container``, ``is_map``,
        ``path``, ``key``, ``flag``, ``size``, ``start``, ``anchor``, ``merges``); when a
        nested collection opens, the enclosing one's state is pushed onto ``stack`` as one
        tuple, and popped back when the nested one closes. A tuple costs less than an
        object with attributes, and a third of the events open or close a collection: that
        took a seventh off the composing (in instructions, on the benchmark's manifests;
        libyaml's events cost twice as much again). Each event kind has its own branch,
        scalars first (two events in three are scalars).
        """
        positions: dict[FieldPath, tuple[int, int]] = {}
        anchors: dict[str, tuple[Any, int]] = {}
        stack: list[_Saved] = []  # the state of every enclosing collection, outermost first
        total = 0
        limit = MAX_NODES_PER_DOCUMENT
        get_event = loader.get_event
        json_scalars = self.json_scalars
        plain = self._plain
        shortcut = self._first_character_shortcut
        # the innermost open collection (container is None until the root collection opens)
        container: Any = None
        is_map = False
        path: FieldPath = ()
        key: str | None = None  # mappings: the key waiting for its value
        flag = 0  # 0 plain key, _MERGE_KEY, _DUPLICATE_KEY (the value is dropped)
        size = 0  # nodes in the innermost collection, itself included
        start = (1, 1)  # where it starts
        anchor: str | None = None  # its anchor (&name), if it has one
        merges: _Merges = None  # its merge keys' values (<<: *base), made on first use
        while True:
            event = get_event()
            cls = type(event)
            if cls is _Scalar:
                if is_map and key is None:  # a mapping key
                    key = event.value
                    if key == "<<" and not event.style and not json_scalars:
                        flag = _MERGE_KEY
                    elif key in container:
                        flag = _DUPLICATE_KEY
                        mark = event.start_mark
                        key_path = path + (key,)
                        first = positions[key_path]
                        self.diagnostics.append(
                            Diagnostic(
                                Severity.ERROR,
                                Location(self.filename, mark.line + 1, mark.column + 1),
                                f"duplicate key {key!r}: already set at line {first[0]} of "
                                "this mapping (YAML would silently keep only one: remove or "
                                "rename one of them)",
                                path=format_path(key_path),
                            )
                        )
                    else:
                        mark = event.start_mark
                        positions[path + (key,)] = (mark.line + 1, mark.column + 1)
                    total += 1
                    continue
                # a scalar value (its mark is only read when it is needed: a list item's
                # position, a merge, an error)
                if not is_map:
                    mark = event.start_mark
                    if container is None:  # a document that is a single scalar
                        return self.scalar_value(event), (mark.line + 1, mark.column + 1), positions
                    positions[path + (len(container),)] = (mark.line + 1, mark.column + 1)
                tag = event.tag
                if event.style:  # quoted or block scalar: a string unless explicitly tagged
                    if tag is None or tag == "!" or tag == _STR:
                        value = event.value
                    else:
                        value = self._tagged_value(event.value, tag, event)
                elif tag is None:
                    text = event.value
                    if shortcut and text[:1] not in _RESOLVABLE_FIRST:
                        value = text  # a plain string (see _plain), without the call
                    else:
                        value = plain(text, event)
                else:
                    value = self._tagged_value(event.value, tag, event)
                total += 1
                if total > limit:
                    raise self._too_many_nodes(event.start_mark)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                size += 1
                if not is_map:
                    container.append(value)
                elif flag == 0:
                    container[key] = value
                    key = None
                else:
                    if flag == _MERGE_KEY:
                        mark = event.start_mark
                        merges = _add_merge(merges, value, (mark.line + 1, mark.column + 1))
                    key = None
                    flag = 0
                continue
            if cls is _MappingStart or cls is _SequenceStart:
                mark = event.start_mark
                position = (mark.line + 1, mark.column + 1)
                if container is None:
                    child_path: FieldPath = ()
                elif is_map:
                    if key is None:
                        raise _DocumentError(
                            "mapping keys must be plain strings, not lists or mappings",
                            _loc(self.filename, mark),
                        )
                    child_path = path + (key,)
                else:
                    child_path = path + (len(container),)
                    positions[child_path] = position
                if len(stack) >= MAX_DEPTH:
                    raise _DocumentError(
                        f"document is nested more than {MAX_DEPTH} levels deep",
                        _loc(self.filename, mark),
                    )
                stack.append((container, is_map, path, key, flag, size, start, anchor, merges))
                is_map = cls is _MappingStart
                container = {} if is_map else []
                path = child_path
                key = None
                flag = 0
                size = 1
                start = position
                anchor = event.anchor
                merges = None
                total += 1
                continue
            if cls is _MappingEnd or cls is _SequenceEnd:
                if merges:
                    self._merge(container, path, merges, positions)
                value, value_start, value_anchor, value_size = container, start, anchor, size
                # back to the enclosing collection; the nodes were counted into ``total``
                # as they were composed
                container, is_map, path, key, flag, size, start, anchor, merges = stack.pop()
                if container is None:  # the root collection closed
                    return value, value_start, positions
                if value_anchor is not None:
                    anchors[value_anchor] = (value, value_size)
                size += value_size
                if not is_map:
                    container.append(value)
                elif flag == 0:
                    container[key] = value
                    key = None
                else:
                    if flag == _MERGE_KEY:
                        merges = _add_merge(merges, value, value_start)
                    key = None
                    flag = 0
                continue
            if cls is _Alias:
                mark = event.start_mark
                found = anchors.get(event.anchor)
                if found is None:
                    recursive = event.anchor == anchor or any(
                        saved[7] == event.anchor for saved in stack
                    )
                    raise _DocumentError(
                        f"alias *{event.anchor} is used inside its own anchor (recursive)"
                        if recursive
                        else f"alias *{event.anchor} refers to no anchor defined before it",
                        _loc(self.filename, mark),
                    )
                if container is None:  # a document that is a single alias
                    return found[0], (mark.line + 1, mark.column + 1), positions
                if is_map and key is None:
                    raise _DocumentError(
                        "aliases cannot be used as mapping keys", _loc(self.filename, mark)
                    )
                if not is_map:
                    positions[path + (len(container),)] = (mark.line + 1, mark.column + 1)
                value, alias_size = found
                total += alias_size
                if total > limit:
                    raise self._too_many_nodes(mark)
                size += alias_size
                if not is_map:
                    container.append(value)
                elif flag == 0:
                    container[key] = value
                    key = None
                else:
                    if flag == _MERGE_KEY:
                        merges = _add_merge(merges, value, (mark.line + 1, mark.column + 1))
                    key = None
                    flag = 0
                continue
            if cls is _DocumentEnd:  # an empty document
                return None, (1, 1), positions
            # pragma: no cover - the parser emits nothing else inside a document

    def _too_many_nodes(self, mark: Any) -> _DocumentError:
        return _DocumentError(
            f"document expands to more than {MAX_NODES_PER_DOCUMENT:,} nodes "
            "(aliases repeated too often, or a document far larger than a manifest)",
            _loc(self.filename, mark),
        )

    def _merge(
        self,
        target: dict[str, Any],
        path: FieldPath,
        merges: list[tuple[Any, tuple[int, int]]],
        positions: dict[FieldPath, tuple[int, int]],
    ) -> None:
        """Apply YAML merge keys (``<<: *base``): explicit keys win, as in Kubernetes."""
        merge_path = path + ("<<",)
        positions.pop(merge_path, None)
        for value, position in merges:
            sources = value if isinstance(value, list) else [value]
            for index, source in enumerate(sources):
                # a mapping written inline has its own key positions; an alias has only one
                prefix = merge_path + (index,) if isinstance(value, list) else merge_path
                at = positions.get(prefix, position)
                if not isinstance(source, dict):
                    raise _DocumentError(
                        "a merge key (<<) needs a mapping or a list of mappings",
                        self.location(at),
                    )
                for key, item in source.items():
                    if key not in target:
                        target[key] = item
                        written = positions.get(prefix + (key,), at)
                        positions.setdefault(path + (key,), written)


_MISSING = object()


def _skip_to_document_end(loader: Any) -> None:
    while True:
        event = loader.get_event()
        if event is None or isinstance(event, ev.DocumentEndEvent | ev.StreamEndEvent):
            return


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
    location = _loc(filename, mark) if mark is not None else Location(filename, 1, 1)
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


def parse_text(text: str, filename: str, *, is_json: bool = False) -> LoadResult:
    """Parse one file's text into manifests. Pure: no file system access."""
    result = LoadResult(files=[filename])
    if is_json:
        text = _json_as_yaml(text)
    composer = _Composer(filename, json_scalars=is_json)
    try:
        for value, position, positions in composer.documents(text):
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


def parse_bytes(data: bytes, filename: str) -> LoadResult:
    """Check size and encoding, then parse. Pure: the caller did the reading."""
    if len(data) > MAX_FILE_BYTES:
        return LoadResult(
            diagnostics=[
                Diagnostic(
                    Severity.ERROR,
                    Location(filename, 1, 1),
                    f"file is {len(data):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for "
                    "one manifest file: split it",
                )
            ],
            files=[filename],
        )
    text, problem = _decode(data, filename)
    if problem is not None or text is None:
        return LoadResult(diagnostics=[problem] if problem else [], files=[filename])
    return parse_text(text, filename, is_json=filename.lower().endswith(".json"))


def discover(paths: Iterable[str]) -> list[str]:
    """Expand directories (recursively, sorted, skipping dot-entries) into manifest files.

    Files named explicitly are taken whatever their suffix; inside directories only
    ``.yaml``, ``.yml`` and ``.json`` files count, as with ``kubectl create -f DIR``.
    Raises InputError for a path that does not exist.
    """
    found: list[str] = []
    for raw in paths:
        if raw == "-":
            found.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            found.extend(_walk(raw))
        elif path.is_file():
            found.append(raw)
        elif path.exists():
            raise InputError(f"{raw}: not a regular file or directory")
        else:
            raise InputError(f"{raw}: no such file or directory")
    return found


def _walk(top: str) -> list[str]:
    files: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(MANIFEST_SUFFIXES):
                files.append(os.path.join(dirpath, name))
    return files


def read_paths(paths: Iterable[str], stdin: Any = None) -> list[tuple[str, bytes]]:
    """Read every file under ``paths`` (``-`` is stdin), in order: (name, contents) pairs.

    Reading is separate from parsing so that the parsing can be shared out among worker
    processes (``reconciler.parallel``). Raises InputError for a path that cannot be read.
    """
    inputs: list[tuple[str, bytes]] = []
    for filename in discover(paths):
        if filename == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            inputs.append((STDIN_NAME, stream.read()))
            continue
        try:
            with open(filename, "rb") as stream:  # not Path.read_bytes: a third faster
                data = stream.read()
        except OSError as exc:
            raise InputError(f"{filename}: {exc.strerror or exc}") from exc
        inputs.append((filename, data))
    return inputs


def parse_inputs(inputs: Iterable[tuple[str, bytes]]) -> LoadResult:
    """Parse (name, contents) pairs, as ``read_paths`` gives them, into one LoadResult."""
    result = LoadResult()
    for filename, data in inputs:
        result.extend(parse_bytes(data, filename))
    return result


def load_paths(paths: Iterable[str], stdin: Any = None) -> LoadResult:
    """Read every file under ``paths`` (``-`` is stdin) and parse it; never stops early."""
    return parse_inputs(read_paths(paths, stdin))
