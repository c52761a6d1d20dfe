"""Compose one file's YAML (or JSON) text into values that remember where every field was
written. Pure: text in, values, positions and diagnostics out; no file system access.

Why not ``yaml.safe_load``: it forgets positions, silently keeps the last of two duplicate
keys, expands alias bombs, and its C composer recurses (a deeply nested document crashes the
interpreter). Instead we compose values ourselves from libyaml's flat event stream with an
explicit stack, which gives positions, duplicate-key errors, a depth limit and an
alias-expansion budget in one pass. ``load`` turns the values into Manifests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml
from yaml import events as ev

from reconciler.core.model import Diagnostic, FieldPath, Location, Severity, format_path
from reconciler.core.text import shown

try:  # libyaml makes parsing several times faster; the pure-Python parser is a fallback.
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

#: Deeper nesting than any real manifest needs; guards the stack and later recursive stages.
MAX_DEPTH = 64
#: Nodes one document may expand to, counting every alias expansion (billion-laughs guard).
MAX_NODES_PER_DOCUMENT = 100_000

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
#: The longest number a manifest may write: a 14,000-bit integer in binary, with room for
#: underscores. Checked before PyYAML reads it, because PyYAML reads a base-60 number
#: (``1:2:3``) by repeated big-integer arithmetic, in time quadratic in its length.
_MAX_NUMBER_CHARS = 16_000
#: Parts of a base-60 number (``1:30`` is 90); more than any duration needs.
_MAX_BASE60_PARTS = 8


def _too_long(text: str) -> bool:
    """Whether a number is too long to read in linear time (see ``_MAX_NUMBER_CHARS``)."""
    return len(text) > _MAX_NUMBER_CHARS or text.count(":", 0, 200) >= _MAX_BASE60_PARTS


_CONSTRUCTORS: dict[str, Any] = {
    _INT: _constructor.construct_yaml_int,
    _FLOAT: _constructor.construct_yaml_float,
    _BOOL: _constructor.construct_yaml_bool,
}


class _DocumentError(Exception):
    """Aborts one document (the rest of the file still loads)."""

    def __init__(self, message: str, location: Location) -> None:
        super().__init__(message)
        self.message = message
        self.location = location


def mark_location(filename: str, mark: Any) -> Location:
    """Where a libyaml mark (0-based line and column) points, 1-based."""
    return Location(filename, mark.line + 1, mark.column + 1)


#: Merge keys' values (``<<: *base``) waiting to be applied, with where each was written.
_Merges = list[tuple[Any, tuple[int, int]]] | None
#: The state of an enclosing collection while a nested one is composed: its container,
#: is_map, path, waiting key, key flag, size, start, anchor and merges (see ``_document``).
_Saved = tuple[Any, bool, FieldPath, str | None, int, int, tuple[int, int], str | None, _Merges]


def _add_merge(
    merges: _Merges, value: Any, start: tuple[int, int]
) -> list[tuple[Any, tuple[int, int]]]:
    """Remember a merge key's value, applied when its mapping closes (``Composer._merge``)."""
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


class Composer:
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
                if tag in (_INT, _FLOAT) and _too_long(value):
                    raise ValueError("too many digits to read")
                result = construct(node)
                if tag == _INT and result.bit_length() > _MAX_INT_BITS:
                    raise ValueError("too many digits to print")  # 0x..., 1:2:3:... forms
                return result
            except (ValueError, KeyError, IndexError) as exc:
                # '!!int x', '!!bool maybe', or an integer past Python's 4300-digit limit
                raise _DocumentError(
                    f"{shown(value, 40)} cannot be read as {tag.rsplit(':', 1)[-1]}"
                    + (": it has too many digits" if "digits" in str(exc) else ""),
                    mark_location(self.filename, event.start_mark),
                ) from exc
        if tag == _NULL:
            return None
        raise _DocumentError(
            f"unsupported YAML tag {shown(tag)}: manifests hold plain strings, numbers, booleans, "
            "lists and mappings",
            mark_location(self.filename, event.start_mark),
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
                                f"duplicate key {shown(key)}: already set at line {first[0]} of "
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
                            mark_location(self.filename, mark),
                        )
                    child_path = path + (key,)
                else:
                    child_path = path + (len(container),)
                    positions[child_path] = position
                if len(stack) >= MAX_DEPTH:
                    raise _DocumentError(
                        f"document is nested more than {MAX_DEPTH} levels deep",
                        mark_location(self.filename, mark),
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
                        mark_location(self.filename, mark),
                    )
                if container is None:  # a document that is a single alias
                    return found[0], (mark.line + 1, mark.column + 1), positions
                if is_map and key is None:
                    raise _DocumentError(
                        "aliases cannot be used as mapping keys", mark_location(self.filename, mark)
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
            mark_location(self.filename, mark),
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
