"""The compiled schema checker against ``jsonschema``: same problems, same places.

``reconciler/schema_check.py`` compiles our schemas into closures for speed; the
``jsonschema`` Draft 2020-12 validator (``reference_validator``) is the reference. For
every fixture, every sample manifest, generated and mutated documents, and generated
schemas in the compiler's subset, both must report the same set of (keyword, path).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, validators

from reconciler.check.compiler import Check, Compiler, Issue
from reconciler.check.schemas import (
    SCHEMA_FILES,
    _Validator,
    reference_validator,
    schema_dir,
    schema_documents,
    schema_id,
)
from reconciler.core.errors import UnsupportedSchema
from reconciler.source.load import parse_bytes
from tests.unit.manifest_strategies import (
    ROOT,
    json_scalars,
    json_values,
    mutations,
    schema_driven_documents,
)

KINDS = sorted(SCHEMA_FILES)
SCHEMA_FILES_ON_DISK = sorted((ROOT / "schemas" / "v1").glob("*.json"))
FIXTURES = ROOT / "tests" / "fixtures"
EXAMPLES = settings.default.max_examples

Problem = tuple[str, tuple[Any, ...]]


@cache
def compiled(kind: str) -> Check:
    return Compiler(schema_documents()).compile(schema_id(kind))


@cache
def reference(kind: str) -> Any:
    return reference_validator(kind)


def compiled_problems(check: Check, instance: Any) -> set[Problem]:
    out: list[Issue] = []
    check(instance, (), out)
    return {(issue.validator, tuple(issue.absolute_path)) for issue in out}


def reference_problems(validator: Any, instance: Any) -> set[Problem]:
    return {(str(e.validator), tuple(e.absolute_path)) for e in validator.iter_errors(instance)}


def assert_same_problems(instance: Any) -> None:
    for kind in KINDS:
        ours = compiled_problems(compiled(kind), instance)
        theirs = reference_problems(reference(kind), instance)
        assert ours == theirs, (
            f"{kind}: only compiled {sorted(ours - theirs, key=repr)}; "
            f"only jsonschema {sorted(theirs - ours, key=repr)}"
        )


# -- the schema files ------------------------------------------------------------------------
@pytest.mark.parametrize("path", SCHEMA_FILES_ON_DISK, ids=lambda p: p.name)
def test_schema_file_is_valid_draft_2020_12(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert validators.validator_for(schema) is Draft202012Validator


def test_schema_files_are_the_ones_validation_loads() -> None:
    assert schema_dir() == ROOT / "schemas"
    assert len(SCHEMA_FILES_ON_DISK) == len(schema_documents()) == 8
    for kind in KINDS:
        assert schema_id(kind).endswith("/" + SCHEMA_FILES[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_compiles(kind: str) -> None:
    """If one stopped compiling, validation would silently fall back to the slow engine."""
    check = compiled(kind)
    assert callable(check)
    # the compiled check is not a no-op: an empty object misses its required fields
    assert {("required", ())} <= compiled_problems(check, {})
    assert compiled_problems(check, []) == {("type", ())}


def test_the_reference_validator_knows_x_unhonoured() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "a"},
        "spec": {"containers": [{"name": "a", "image": "b"}]},
        "status": {},
    }
    assert reference_problems(reference("Pod"), body) == {("x-unhonoured", ("status",))}
    assert compiled_problems(compiled("Pod"), body) == {("x-unhonoured", ("status",))}


UNSUPPORTED = [
    {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    {"anyOf": [{"type": "string"}]},
    {"allOf": [{"type": "string"}]},
    {"not": {"type": "string"}},
    {"if": {"type": "string"}, "then": {"minLength": 1}},
    {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
    {"type": "array", "prefixItems": [{"type": "string"}]},
    {"type": "array", "uniqueItems": True},
    {"type": "string", "maxLength": 3},
    {"type": "object", "dependentRequired": {"a": ["b"]}},
    {"type": "object", "unevaluatedProperties": False},
]


@pytest.mark.parametrize("fragment", UNSUPPORTED, ids=lambda f: next(iter(f.keys() - {"type"})))
@pytest.mark.parametrize("where", ["root", "property", "defs"])
def test_an_unsupported_keyword_raises_unsupported_schema(
    fragment: dict[str, Any], where: str
) -> None:
    sid = "https://reconciler.local/schemas/test/x.json"
    if where == "root":
        schema: dict[str, Any] = {"$id": sid, **fragment}
    elif where == "property":
        schema = {"$id": sid, "type": "object", "properties": {"a": fragment}}
    else:
        schema = {
            "$id": sid,
            "type": "object",
            "properties": {"a": {"type": "array", "items": {"$ref": "#/$defs/thing"}}},
            "$defs": {"thing": fragment},
        }
    Draft202012Validator.check_schema(schema)
    with pytest.raises(UnsupportedSchema):
        Compiler({sid: schema}).compile(sid)


def test_an_unresolvable_ref_raises_unsupported_schema() -> None:
    sid = "https://reconciler.local/schemas/test/x.json"
    schema = {"$id": sid, "properties": {"a": {"$ref": "other.json#/$defs/a"}}}
    with pytest.raises(UnsupportedSchema):
        Compiler({sid: schema}).compile(sid)


# -- fixtures and samples --------------------------------------------------------------------
def _manifest_files() -> list[Path]:
    found = sorted((ROOT / "sample-repo").rglob("*.yaml"))
    if FIXTURES.is_dir():
        found += sorted(
            p
            for p in FIXTURES.rglob("*")
            if p.is_file()
            and p.suffix in (".yaml", ".yml", ".json")
            and not p.name.endswith(".expect.json")
        )
    return found


MANIFEST_FILES = _manifest_files()


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_both_engines_agree_on_every_fixture(path: Path) -> None:
    loaded = parse_bytes(path.read_bytes(), str(path))
    for manifest in loaded.manifests:
        assert_same_problems(manifest.body)


def test_fixtures_give_the_engines_something_to_disagree_about() -> None:
    """The comparison above is only worth something if some fixtures break the schemas."""
    broken = 0
    for path in MANIFEST_FILES:
        for manifest in parse_bytes(path.read_bytes(), str(path)).manifests:
            kind = manifest.body.get("kind")
            if isinstance(kind, str) and kind in SCHEMA_FILES:
                problems = reference_problems(reference(kind), manifest.body)
                broken += any(keyword != "x-unhonoured" for keyword, _ in problems)
    if not (FIXTURES / "invalid").is_dir():
        pytest.skip("tests/fixtures/invalid does not exist yet")
    assert broken >= 3, "fewer than three fixtures break a schema"


# -- generated documents ---------------------------------------------------------------------
SETTINGS = settings(
    max_examples=max(50, EXAMPLES // 2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@SETTINGS
@given(body=st.one_of(schema_driven_documents, json_values))
def test_both_engines_agree_on_generated_documents(body: Any) -> None:
    note(repr(body))
    assert_same_problems(body)


@settings(SETTINGS, max_examples=max(50, EXAMPLES // 4))
@given(mutation=mutations())
def test_both_engines_agree_on_mutated_samples(mutation: tuple[int, Any, str]) -> None:
    _, body, what = mutation
    note(what)
    assert_same_problems(body)


# -- generated schemas in the compiler's subset ------------------------------------------------
GEN_ID = "https://reconciler.local/schemas/test/generated.json"
_names = st.sampled_from(["a", "b", "c"])
_json = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_names, children, max_size=3)
    ),
    max_leaves=8,
)
_type_names = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])
_keyword_values: dict[str, st.SearchStrategy[Any]] = {
    "type": st.one_of(_type_names, st.lists(_type_names, min_size=1, max_size=3, unique=True)),
    "enum": st.lists(
        st.one_of(
            st.sampled_from([0, 1, 1.0, True, False, None, "", "a", [1], [True], {"a": 1}]),
            _json,
        ),
        min_size=1,
        max_size=4,
    ),
    "const": st.one_of(st.sampled_from([0, 1, 1.0, True, None, "a", [1], {"a": True}]), _json),
    "required": st.lists(_names, max_size=3, unique=True),
    "minItems": st.integers(0, 3),
    "minLength": st.integers(0, 3),
    "pattern": st.sampled_from(["^a", "b$", "^[0-9]+$", "x", "^$", "\\d", "[^a]"]),
    "minimum": st.one_of(st.integers(-3, 3), st.floats(-3, 3)),
    "maximum": st.one_of(st.integers(-3, 3), st.floats(-3, 3)),
    "x-unhonoured": st.just("ignored"),
    "x-expected": st.just("a thing"),
    "description": st.text(max_size=5),
}
_REF = {"$ref": "#/$defs/d"}


def _plain(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    rarely_boolean = st.one_of(children, children, children, st.booleans())
    return st.fixed_dictionaries(
        {},
        optional={
            **_keyword_values,
            "properties": st.dictionaries(_names, rarely_boolean, max_size=3),
            "additionalProperties": st.one_of(children, st.booleans()),
            "items": rarely_boolean,
        },
    )


_leaf_schemas = st.one_of(
    st.fixed_dictionaries({}, optional=_keyword_values), st.just(_REF), st.just({})
)
_schemas = st.recursive(_leaf_schemas, _plain, max_leaves=6)


@st.composite
def generated_schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A schema whose ``$defs.d`` is never a bare reference to itself (that never ends)."""
    definition = draw(_schemas.filter(lambda s: s != _REF))
    root: dict[str, Any] = dict(draw(_schemas))
    root.update({"$id": GEN_ID, "$defs": {"d": definition}})
    return root


@settings(
    max_examples=max(50, EXAMPLES // 4),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(schema=generated_schemas(), instances=st.lists(_json, min_size=1, max_size=4))
def test_both_engines_agree_on_generated_schemas(
    schema: dict[str, Any], instances: list[Any]
) -> None:
    note(json.dumps(schema))
    Draft202012Validator.check_schema(schema)
    try:
        check = Compiler({GEN_ID: schema}).compile(GEN_ID)
    except UnsupportedSchema:
        return  # validation falls back to jsonschema: nothing to compare
    validator = _Validator(schema)
    for instance in instances:
        ours = compiled_problems(check, instance)
        theirs = reference_problems(validator, instance)
        assert ours == theirs, (instance, ours, theirs)


@pytest.mark.parametrize(
    ("schema", "instance", "expected"),
    [
        ({"enum": [[1]]}, [True], {("enum", ())}),
        ({"enum": [[True]]}, [1], {("enum", ())}),
        ({"const": {"a": 1}}, {"a": True}, {("const", ())}),
        ({"const": [{"a": [0]}]}, [{"a": [False]}], {("const", ())}),
        ({"const": {"a": 1}}, {"a": 1.0}, set()),
        ({"const": {"a": 1}}, {"a": 1, "b": 1}, {("const", ())}),
        ({"enum": [1]}, 1.0, set()),
        ({"enum": [False]}, 0, {("enum", ())}),
        ({"enum": ["a", None]}, None, set()),
        ({"type": "integer"}, 2.0, set()),
        ({"type": "integer"}, True, {("type", ())}),
        ({"type": "number"}, False, {("type", ())}),
        ({"minimum": 1}, False, set()),
        ({"maximum": 1}, 1.5, {("maximum", ())}),
        ({"minLength": 2}, "😀", {("minLength", ())}),
        ({"pattern": "^a"}, "ba", {("pattern", ())}),
        ({"pattern": "a"}, "ba", set()),
        ({"additionalProperties": {"type": "string"}}, {"a": 1}, {("type", ("a",))}),
        ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2},
         {("additionalProperties", ())}),
        ({"required": ["a", "b"]}, {}, {("required", ())}),
        ({"required": ["a"]}, [], set()),
        ({"items": {"type": "string"}, "minItems": 2}, [1], {("type", (0,)), ("minItems", ())}),
        ({"$ref": "#/$defs/s", "$defs": {"s": {"type": "string"}}, "minLength": 1}, "",
         {("minLength", ())}),
        ({"$ref": "#/$defs/s", "$defs": {"s": {"type": "string"}}, "minLength": 1}, 1,
         {("type", ())}),
    ],
)  # fmt: skip
def test_the_engines_agree_where_python_and_json_schema_differ(
    schema: dict[str, Any], instance: Any, expected: set[Problem]
) -> None:
    """JSON equality is not Python's (true is not 1), and $ref applies beside its siblings."""
    schema = {"$id": GEN_ID, **schema}
    Draft202012Validator.check_schema(schema)
    assert reference_problems(_Validator(schema), instance) == expected  # 2020-12 says so
    check = Compiler({GEN_ID: schema}).compile(GEN_ID)
    assert compiled_problems(check, instance) == expected


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": {"a": False}},
        {"properties": {"a": True}},
        {"items": False},
        {"$ref": "#/$defs/no", "$defs": {"no": False}},
    ],
)
def test_boolean_subschemas_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    """Only additionalProperties may be a boolean: elsewhere the compiler steps aside.

    (jsonschema reports a ``false`` subschema without the path that led to it, so where
    it matters the compiled engine could not match it anyway.)
    """
    schema = {"$id": GEN_ID, **schema}
    Draft202012Validator.check_schema(schema)
    with pytest.raises(UnsupportedSchema):
        Compiler({GEN_ID: schema}).compile(GEN_ID)
