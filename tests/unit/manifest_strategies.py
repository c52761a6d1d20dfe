"""Hypothesis strategies shared by the property and differential tests.

* ``manifest_files``: files of manifest-like documents, from random keys to documents
  generated from the schemas themselves (mostly valid, wrong now and then);
* ``mutations``: a sample-repo manifest with one random mutation at a random field path;
* ``subschema``: the schema that applies at a field path, for targeted mutations.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from reconciler.check.schemas import SCHEMA_FILES, schema_documents, schema_id
from reconciler.core.model import FieldPath, format_path
from reconciler.source.load import LIST_KINDS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_FILES = sorted((ROOT / "sample-repo").rglob("*.yaml"))


def resolve_ref(schema: Mapping[str, Any], base: str) -> tuple[Mapping[str, Any], str]:
    """Follow ``$ref`` (our schemas use it alone) to the schema it names."""
    while "$ref" in schema:
        document, _, pointer = schema["$ref"].partition("#")
        if document:
            base = base.rsplit("/", 1)[0] + "/" + document
        node: Any = schema_documents()[base]
        for part in filter(None, pointer.split("/")):
            node = node[part]
        schema = node
    return schema, base


def _schema_words() -> list[str]:
    words: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            words.update(k for k in node.get("properties", {}) if isinstance(k, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(list(schema_documents().values()))
    return sorted(words)


WORDS = _schema_words()
json_keys = st.one_of(st.sampled_from(WORDS), st.text(max_size=8))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(["", "v1", "Pod", "Service", "TCP", "web", "500m", "1e999999999", "-1",
                     "Always", "NodePort", "None", "10.0.0.1", "/data", "a=b", "app", "x" * 70]),
    st.text(max_size=12),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(json_keys, children, max_size=4)
    ),
    max_leaves=12,
)


def is_list_kind(body: dict[str, Any]) -> bool:
    kind = body.get("kind")
    return isinstance(kind, str) and kind in LIST_KINDS


_METADATA = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["web", "Web", "", "a.b", "1x", "x" * 64]),
        "namespace": st.sampled_from(["default", "prod", "Bad_NS"]),
        "labels": st.dictionaries(
            st.sampled_from(["app", "name", "a/b", "/x", "bad key"]),
            st.one_of(st.sampled_from(["web", "", "-x"]), json_scalars),
            max_size=3,
        ),
    },
)
_API_VERSIONS = st.sampled_from(["v1", "v1", "v1beta1", "v1beta3", "apps/v1"])
_KINDS = st.sampled_from([*SCHEMA_FILES, *SCHEMA_FILES, "List", "Deployment"])


@st.composite
def manifest_like(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly wrong documents: random keys, with apiVersion, kind, metadata now and then."""
    body: dict[str, Any] = draw(st.dictionaries(json_keys, json_values, max_size=4))
    if draw(st.booleans()):
        body["apiVersion"] = draw(_API_VERSIONS)
    if draw(st.booleans()):
        body["kind"] = draw(_KINDS)
    if draw(st.booleans()):
        body["metadata"] = draw(_METADATA)
    if is_list_kind(body) and draw(st.booleans()):
        body["items"] = draw(st.lists(manifest_like(), max_size=3))  # type: ignore[misc]
    return body


# Strings that matter to the semantic checks: names that collide or break the rules, paths,
# IP addresses, port names, quantities.
_STRINGS = st.sampled_from(
    ["web", "db", "web", "Web", "", "a.b", "-x", "x" * 64, "http", "mysql", "/data", "data",
     "rel/path", "/a/../b", "10.0.0.1", "::1", "999.1.1.1", "None", "a=b", "sample/web:1",
     " spaced ", "500m", "1e999999999", "-1", "TCP"]
)  # fmt: skip
_QUANTITIES = st.sampled_from(
    ["100m", "0.5", "1", "64Mi", "1G", "-1", "1e3", "1e999999999", ".5", "1.5Gi", "x", "",
     0.25, 2, -3, float("inf"), float("nan"), 10**30]
)  # fmt: skip
_built: dict[int, st.SearchStrategy[Any]] = {}


def _from_schema(schema: Mapping[str, Any], base: str) -> st.SearchStrategy[Any]:
    """Values of the shape ``schema`` describes (the strings and numbers often wrong)."""
    schema, base = resolve_ref(schema, base)
    known = _built.get(id(schema))
    if known is not None:
        return known
    strategy: st.SearchStrategy[Any]
    wanted = schema.get("type")
    types = wanted if isinstance(wanted, list) else [wanted]
    if "const" in schema:
        strategy = st.just(schema["const"])
    elif "enum" in schema:
        strategy = st.sampled_from(schema["enum"])
    elif "pattern" in schema:
        strategy = _QUANTITIES
    elif "object" in types:
        properties = schema.get("properties", {})
        required = {k: _from_schema(properties[k], base) for k in schema.get("required", ())}
        optional = {k: _from_schema(v, base) for k, v in properties.items() if k not in required}
        extra = schema.get("additionalProperties", True)
        if isinstance(extra, Mapping):
            strategy = st.dictionaries(
                st.sampled_from(["app", "name", "tier", "a/b"]),
                _from_schema(extra, base),
                max_size=3,
            )
        else:
            strategy = st.fixed_dictionaries(required, optional=optional)
    elif "array" in types:
        items = _from_schema(schema["items"], base)
        strategy = st.lists(items, min_size=schema.get("minItems", 0), max_size=3)
    else:
        options: list[st.SearchStrategy[Any]] = []
        if "integer" in types:
            low, high = schema.get("minimum", -5), schema.get("maximum", 2**31)
            options.append(
                st.one_of(
                    st.sampled_from([low, high, low - 1, high + 1, 80, 30080, 30080, 3306]),
                    st.integers(low, high),
                )
            )
        if "string" in types:
            options.append(_STRINGS)
        if "boolean" in types:
            options.append(st.booleans())
        strategy = st.one_of(options) if options else json_scalars  # x-unhonoured: anything
    _built[id(schema)] = strategy
    return strategy


SCHEMA_DRIVEN = {
    kind: _from_schema(schema_documents()[schema_id(kind)], schema_id(kind))
    for kind in SCHEMA_FILES
}


def _sample_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in SAMPLE_FILES:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found.append((path.relative_to(ROOT).as_posix(), document))
    return found


SAMPLES = _sample_documents()


def field_paths(value: Any, prefix: FieldPath = ()) -> Iterator[FieldPath]:
    """Every field path inside ``value`` (not the root itself)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield prefix + (key,)
            yield from field_paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield prefix + (index,)
            yield from field_paths(child, prefix + (index,))


def get_path(value: Any, path: FieldPath) -> Any:
    for part in path:
        value = value[part]
    return value


SAMPLE_PATHS: list[tuple[int, FieldPath]] = [
    (index, path) for index, (_, document) in enumerate(SAMPLES) for path in field_paths(document)
]


def subschema(kind: str, path: FieldPath) -> Mapping[str, Any] | None:
    """The schema that applies at ``path`` of a ``kind`` object, or None (not allowed)."""
    base = schema_id(kind)
    schema, base = resolve_ref(schema_documents()[base], base)
    for part in path:
        if isinstance(part, int):
            nxt = schema.get("items")
        elif part in schema.get("properties", {}):
            nxt = schema["properties"][part]
        else:
            nxt = schema.get("additionalProperties", True)
        if not isinstance(nxt, Mapping):
            return None
        schema, base = resolve_ref(nxt, base)
    return schema


def _typo(draw: st.DrawFn, key: str) -> str:
    position = draw(st.integers(0, len(key) - 1))
    how = draw(st.sampled_from(["swap", "drop", "double", "case", "insert"]))
    if how == "swap" and len(key) > 1:
        position = min(position, len(key) - 2)
        return key[:position] + key[position + 1] + key[position] + key[position + 2 :]
    if how == "drop" and len(key) > 1:
        return key[:position] + key[position + 1 :]
    if how == "case":
        return key[:position] + key[position].swapcase() + key[position + 1 :]
    if how == "insert":
        return key[:position] + draw(st.sampled_from("aeiouxz_-")) + key[position:]
    return key[:position] + key[position] + key[position:]


@st.composite
def typos(draw: st.DrawFn, key: str) -> str:
    return _typo(draw, key)


def _mutate(draw: st.DrawFn, body: Any, path: FieldPath) -> str:
    """Apply one random mutation at ``path`` inside ``body``; say which."""
    parent, last = get_path(body, path[:-1]), path[-1]
    how = draw(st.sampled_from(["delete", "rename", "replace", "duplicate", "add"]))
    if how == "delete":
        del parent[last]
    elif how == "rename" and isinstance(last, str):
        new_key = _typo(draw, last)
        parent[new_key] = parent.pop(last)
    elif how == "duplicate" and isinstance(parent, list):
        parent.insert(draw(st.integers(0, len(parent))), copy.deepcopy(parent[last]))
    elif how == "add":
        target = get_path(body, path)
        key = draw(st.sampled_from(["extra", "x-y", "contianers", "id", "labels", "name"]))
        if isinstance(target, dict):
            target[key] = draw(json_values)
        elif isinstance(target, list):
            target.append(draw(json_values))
        else:
            parent[last] = {key: target}
    else:
        how = "replace"
        parent[last] = draw(
            st.one_of(
                st.sampled_from([None, "", -1, -(2**63), 2**64, 10**30, 1.5, -0.0, True, [], {}]),
                json_values,
            )
        )
    return f"{how} {format_path(path)}"


@st.composite
def mutations(draw: st.DrawFn) -> tuple[int, Any, str]:
    """A sample document with one random mutation at a random field path."""
    index, path = draw(st.sampled_from(SAMPLE_PATHS))
    body = copy.deepcopy(SAMPLES[index][1])
    return index, body, _mutate(draw, body, path)


@st.composite
def _schema_driven(draw: st.DrawFn) -> Any:
    body = draw(st.sampled_from(sorted(SCHEMA_DRIVEN)).flatmap(lambda k: SCHEMA_DRIVEN[k]))
    for _ in range(draw(st.integers(0, 2))):  # and then one or two slips, now and then
        paths = list(field_paths(body))
        if paths:
            _mutate(draw, body, draw(st.sampled_from(paths)))
    return body


#: Documents generated from the schemas, with zero, one or two random mutations.
schema_driven_documents = _schema_driven()


def _dump(draw: st.DrawFn, documents: list[Any]) -> tuple[bytes, str]:
    if len(documents) == 1 and draw(st.booleans()):
        return json.dumps(documents[0], ensure_ascii=draw(st.booleans())).encode(), "gen.json"
    flow = draw(st.sampled_from([False, None, True]))
    text = yaml.safe_dump_all(
        documents, default_flow_style=flow, allow_unicode=draw(st.booleans()), sort_keys=False
    )
    return text.encode("utf-8"), "gen.yaml"


@st.composite
def manifest_files(draw: st.DrawFn) -> tuple[bytes, str]:
    documents: list[Any] = draw(
        st.lists(st.one_of(manifest_like(), schema_driven_documents), min_size=1, max_size=4)
    )
    return _dump(draw, documents)
