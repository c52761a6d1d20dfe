"""Property tests: whatever bytes arrive, loading and validation answer with diagnostics.

Four families, no mocks:

* arbitrary text and bytes, and generated YAML full of anchors, aliases, tabs, duplicate
  keys and odd scalars: ``parse_bytes`` + ``validate`` never raise, and every diagnostic
  points at the file it was given, at line and column >= 1, inside the text;
* generated manifest-like documents (random keys, or documents generated from the
  schemas): the same; and round trips: a JSON file loads as exactly the value that
  ``json.dumps`` wrote, a YAML file as exactly what ``yaml.safe_load`` reads;
* the sample-repo manifests mutated at random field paths (delete, typo, wrong type,
  out-of-range number, bad enum, duplicate list item, unknown key): never raise, and the
  mutations the schemas forbid are reported as errors at the mutated path and line;
* the ``reconciler validate`` command on random files: exit code 0, 1 or 2, never a
  traceback or an "internal error", and an exit code that agrees with the report.

Example counts scale with the hypothesis profile (tests/conftest.py): under "ci" the
broadest property runs 2,000 examples and the others a fraction of that (over 10,000 in
all; ``test_profile_runs_enough_examples`` keeps the total at 2,000 or more).
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, example, given, note, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reconciler.check.schemas import SCHEMA_FILES, reference_validator
from reconciler.check.validate import ValidationResult, validate
from reconciler.cli import cli
from reconciler.core.model import Diagnostic, FieldPath, format_path
from reconciler.source.load import parse_bytes
from tests.unit.manifest_strategies import (
    SAMPLE_PATHS,
    SAMPLES,
    get_path,
    is_list_kind,
    json_keys,
    json_scalars,
    json_values,
    manifest_files,
    mutations,
    subschema,
    typos,
)

#: The loaded profile's example count ("dev" 200, "ci" 2000); narrow properties use less.
EXAMPLES = settings.default.max_examples


def _scaled(fraction: float, floor: int = 20) -> settings:
    return settings(
        max_examples=max(floor, int(EXAMPLES * fraction)),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# -- invariants -----------------------------------------------------------------------------
def _lines_in(data: bytes) -> int:
    """Lines as YAML counts them: NEL, U+2028 and U+2029 break lines too (YAML 1.1)."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    return sum(text.count(c) for c in "\n\r\x85\u2028\u2029") + 1


def check_diagnostics(data: bytes, filename: str) -> ValidationResult:
    """Load and validate ``data``; assert what must hold for any input at all."""
    loaded = parse_bytes(data, filename)
    assert loaded.files == [filename]
    result = validate(loaded)
    # every manifest is a mapping, and errors exist exactly when the result is invalid
    assert all(isinstance(m.body, dict) for m in result.manifests)
    assert result.valid == (not result.errors)
    lines = _lines_in(data)
    for d in result.diagnostics:
        assert isinstance(d, Diagnostic), (data, d)
        assert d.location.file == filename, (data, d)
        assert d.location.line >= 1 and d.location.column >= 1, (data, d)
        # a position is inside the text (the end-of-stream mark may sit one line past it)
        assert d.location.line <= lines + 1, (data, d)
        assert d.message.strip(), (data, d)
    return result


# -- random text and bytes ------------------------------------------------------------------
FILENAMES = st.sampled_from(["fuzz.yaml", "dir/fuzz.yml", "fuzz.json", "weird name.JSON", "-"])


@_scaled(1.0)
@given(text=st.text(), filename=FILENAMES)
def test_any_text_gives_located_diagnostics(text: str, filename: str) -> None:
    check_diagnostics(text.encode("utf-8"), filename)


@_scaled(0.25)
@given(data=st.binary(max_size=300), filename=FILENAMES)
def test_any_bytes_give_located_diagnostics(data: bytes, filename: str) -> None:
    check_diagnostics(data, filename)


# -- structured YAML: nesting, anchors and aliases, tabs, duplicate keys, odd scalars --------
ODD_SCALARS = [
    "~", "null", "Null", "NULL", "", "true", "yes", "No", "on", "OFF", "y", "0x1F", "0o17",
    "017", "0b101", "1_000", "+1", "-0", ".5", "1.", "1e3", "1.0e+3", "1e400", "-1e400",
    ".inf", "-.Inf", ".nan", "12:30:45", "190:20:30", "2001-12-14", "2001-12-14t21:59:43.10-05:00",
    "=", "<<", "- item", "?", ":", "::", "-", "[", "]", "{", "}", ",", "#", "@at", "`tick",
    "%percent", "!", "!!str 1", "!!int x", "!!int 0x1F", "!!float abc", "!!float 1", "!!bool maybe",
    "!!null x", "!!binary aGk=", "!!timestamp 2001-12-14", "!!set {a}", "!!omap [a: 1]",
    "!!python/object:os.system", "!custom value", "!<tag:yaml.org,2002:str> x", "!e!x y",
    "'single ''quoted'''", "'unterminated", '"double \\x41 \\u263A \\N \\_"',
    '"bad escape \\q"', '"lone surrogate \\ud800"', '"unterminated', "|\n  block\n",
    ">-\n  folded\n  text\n", "|9\n x", "&a", "*a", "*undefined", "&a &b x", "---", "...",
    "%YAML 1.1", "%TAG ! tag:x,2000:", "\t", "a\tb", "\x00", "\x07", "\x85", "\u2028",
    "\ufeff", "\ufffe", "é", "😀", "9" * 400, "0.0000001", "12e", "- - -", "a: b: c",
    "{a: 1, a: 2}", "[1, [2, [3]]]", "{? a}", "[a: 1]", "{<<: *a}", "? complex\n: key",
    "500m", "128Mi", "1e999999999", "-5", "65536", "99999999999999999999", "0x" + "f" * 4000,
    "v1", "Pod", "ReplicationController", "Service", "List",
]  # fmt: skip
KEYS = [
    "apiVersion", "kind", "metadata", "spec", "name", "labels", "containers", "image",
    "ports", "containerPort", "items", "template", "selector", "<<", "'<<'", "a", "a", "b",
    "? a", "''", '"quoted key"', "1", "true", "~", "[k]", "{k: v}", "*a", "&a k", "k k",
    "- k", "k\t", "#k", "x-y",
]  # fmt: skip
INDENTS = st.sampled_from([" ", "  ", "  ", "   ", "    ", "\t", " \t"])

Tree = Any  # ("scalar", text) | ("map", [(key, Tree)]) | ("seq", [Tree]) | ("flow", text)

_scalar_text = st.one_of(
    st.sampled_from(ODD_SCALARS),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)
_props = st.sampled_from(["", "", "", "&a ", "&b ", "&a ", "!!map ", "!!seq ", "!tag "])
_alias = st.sampled_from(["*a", "*b", "*c"])


def _trees() -> st.SearchStrategy[Tree]:
    leaf = st.one_of(
        st.tuples(st.just("scalar"), _scalar_text),
        st.tuples(st.just("scalar"), _alias),
        st.tuples(st.just("flow"), st.sampled_from(ODD_SCALARS[-30:])),
    )
    return st.recursive(
        leaf,
        lambda children: st.one_of(
            st.tuples(
                st.just("map"),
                st.lists(st.tuples(st.sampled_from(KEYS), _props, children), max_size=5),
            ),
            st.tuples(st.just("seq"), st.lists(st.tuples(_props, children), max_size=5)),
        ),
        max_leaves=15,
    )


TREES = _trees()


def _render(tree: Tree, indent: str, step: str, out: list[str]) -> None:
    tag = tree[0]
    if tag in ("scalar", "flow"):
        out.append(indent + tree[1])
        return
    for entry in tree[1]:
        if tag == "map":
            key, props, child = entry
            head = f"{indent}{key}: {props}"
        else:
            props, child = entry
            head = f"{indent}- {props}"
        if child[0] in ("scalar", "flow"):
            out.append(head + child[1])
        else:
            out.append(head.rstrip())
            _render(child, indent + step, step, out)


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    documents = []
    for _ in range(draw(st.integers(1, 3))):
        lines: list[str] = []
        _render(draw(TREES), "", draw(INDENTS), lines)
        prefix = draw(st.sampled_from(["", "", "---\n", "--- ", "%YAML 1.1\n---\n", "# c\n"]))
        documents.append(prefix + "\n".join(lines))
    separator = draw(st.sampled_from(["\n---\n", "\n...\n---\n", "\n--- # next\n"]))
    text = separator.join(documents)
    return text + draw(st.sampled_from(["", "\n", "\n...\n", "\n---\n", " \t"]))


@_scaled(0.35)
@given(text=yaml_documents(), filename=st.sampled_from(["gen.yaml", "gen.json"]))
@example(text="a: !!int x", filename="gen.yaml")
@example(text="- !!bool maybe\n- !!float ''", filename="gen.yaml")
@example(text="n: " + "9" * 5000, filename="gen.yaml")
@example(text='{"k": "\\ud83d\\ude00 \x85"}', filename="gen.json")
def test_structured_yaml_gives_located_diagnostics(text: str, filename: str) -> None:
    note(text)
    check_diagnostics(text.encode("utf-8"), filename)


_POSITIONS = [
    "{s}",
    "k: {s}",
    "{s}: v",
    "- {s}",
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {s}\nspec:\n  containers: [{s}]",
    "kind: List\napiVersion: v1\nitems:\n- {s}\n- kind: Service\n  metadata: {{name: {s}}}",
]


@pytest.mark.parametrize("filename", ["odd.yaml", "odd.json"])
def test_every_odd_scalar_in_every_position_gives_located_diagnostics(filename: str) -> None:
    """Each odd scalar as a document, value, key, item and field: no generator luck needed."""
    for scalar in ODD_SCALARS:
        for template in _POSITIONS:
            text = template.format(s=scalar)
            check_diagnostics(text.encode("utf-8"), filename)


# -- generated manifest-like documents -------------------------------------------------------
@_scaled(0.35)
@given(file=manifest_files())
def test_manifest_like_documents_give_located_diagnostics(file: tuple[bytes, str]) -> None:
    data, filename = file
    note(data.decode("utf-8"))
    check_diagnostics(data, filename)


@_scaled(0.25)
@given(
    body=st.dictionaries(json_keys, json_values, max_size=6).filter(lambda b: not is_list_kind(b)),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 2, "\t"]),
    compact=st.booleans(),
)
def test_json_round_trip_keeps_every_value(
    body: dict[str, Any], ensure_ascii: bool, indent: int | str | None, compact: bool
) -> None:
    separators = (",", ":") if compact else None
    data = json.dumps(body, ensure_ascii=ensure_ascii, indent=indent, separators=separators)
    data = data.encode("utf-8")
    note(data.decode("utf-8"))
    loaded = parse_bytes(data, "round.json")
    assert loaded.diagnostics == []
    assert [m.body for m in loaded.manifests] == [body]


@_scaled(0.25)
@given(
    body=st.dictionaries(json_keys, json_values, max_size=6).filter(lambda b: not is_list_kind(b)),
    flow=st.sampled_from([False, None, True]),
    allow_unicode=st.booleans(),
)
def test_yaml_round_trip_keeps_every_value(
    body: dict[str, Any], flow: bool | None, allow_unicode: bool
) -> None:
    text = yaml.safe_dump(body, default_flow_style=flow, allow_unicode=allow_unicode)
    note(text)
    loaded = parse_bytes(text.encode("utf-8"), "round.yaml")
    assert loaded.diagnostics == []
    # PyYAML's own loader is the reference (its emitter folds a few characters, e.g. NEL)
    assert [m.body for m in loaded.manifests] == [yaml.safe_load(text)]


# -- mutations of the sample manifests -------------------------------------------------------
def _where(doc_index: int, path: FieldPath) -> tuple[str, Mapping[str, Any] | None]:
    kind = SAMPLES[doc_index][1]["kind"]
    return kind, subschema(kind, path)


REQUIRED_PATHS = [
    (i, p)
    for i, p in SAMPLE_PATHS
    if isinstance(p[-1], str) and p[-1] in (_where(i, p[:-1])[1] or {}).get("required", ())
]
STRICT_KEY_PATHS = [  # keys of mappings that allow no other keys
    (i, p)
    for i, p in SAMPLE_PATHS
    if isinstance(p[-1], str) and (_where(i, p[:-1])[1] or {}).get("additionalProperties") is False
]
TYPED_PATHS = [(i, p) for i, p in SAMPLE_PATHS if "type" in (_where(i, p)[1] or {})]
RANGED_PATHS = [
    (i, p)
    for i, p in SAMPLE_PATHS
    if {"minimum", "maximum"} & set(_where(i, p)[1] or {})
    and isinstance(get_path(SAMPLES[i][1], p), int)
]
ENUM_PATHS = [(i, p) for i, p in SAMPLE_PATHS if {"enum", "const"} & set(_where(i, p)[1] or {})]
STRICT_MAP_PATHS = [  # mappings (the root too) that allow no unknown keys
    (i, p)
    for i, p in [(i, ()) for i in range(len(SAMPLES))] + SAMPLE_PATHS
    if isinstance(get_path(SAMPLES[i][1], p), dict)
    and (_where(i, p)[1] or {}).get("additionalProperties") is False
]
NAMED_ITEM_PATHS = [
    (i, p)
    for i, p in SAMPLE_PATHS
    if isinstance(p[-1], int) and p[-2] in ("containers", "volumes", "ports", "env")
]


def test_the_mutation_targets_cover_the_samples() -> None:
    """The targeted properties below draw from these: none may be empty or trivial."""
    assert len(SAMPLES) == 6
    required = {format_path(p) for _, p in REQUIRED_PATHS}
    assert {"apiVersion", "kind", "metadata", "spec", "metadata.name"} <= required
    assert "spec.template.spec.containers" in required
    assert "spec.template.spec.containers[0].image" in required
    assert "spec.ports[0].port" in required
    assert {format_path(p) for _, p in RANGED_PATHS} >= {"spec.replicas", "spec.ports[0].port"}
    assert {format_path(p) for _, p in ENUM_PATHS} >= {"kind", "apiVersion", "spec.type"}
    assert len(TYPED_PATHS) > 50 and len(STRICT_KEY_PATHS) > 50
    assert len(STRICT_MAP_PATHS) > 20 and len(NAMED_ITEM_PATHS) > 10
    # labels allow any key: they must not be counted as strict
    assert not any(p and p[-1] == "labels" for _, p in STRICT_MAP_PATHS)


def _file_for(doc_index: int, body: Any) -> tuple[bytes, str]:
    filename = SAMPLES[doc_index][0]
    return yaml.safe_dump(body, default_flow_style=False, sort_keys=False).encode(), filename


def _line(data: bytes, line: int) -> str:
    return data.decode("utf-8").splitlines()[line - 1]


def _errors_at(result: ValidationResult, path: FieldPath) -> list[Diagnostic]:
    return [d for d in result.errors if d.path == format_path(path)]


def _assert_error_on_key_line(
    data: bytes, result: ValidationResult, path: FieldPath, words: str = ""
) -> Diagnostic:
    """An error reported at ``path``, on the line where that field is written."""
    found = _errors_at(result, path)
    assert found, f"no error at {format_path(path)}: {result.diagnostics}"
    if words:
        found = [d for d in found if words in d.message]
        assert found, f"no error at {format_path(path)} mentioning {words!r}: {result.errors}"
    line = _line(data, found[0].location.line)
    last = path[-1]
    if isinstance(last, str):
        assert f"{last}:" in line or f"'{last}':" in line or f'"{last}":' in line, line
    else:
        assert line.lstrip().startswith("-"), line
    return found[0]


@cache
def _reference(kind: str) -> Any:
    return reference_validator(kind)


@_scaled(0.5)
@given(mutation=mutations())
def test_mutated_samples_never_crash_and_schema_errors_are_reported(
    mutation: tuple[int, Any, str],
) -> None:
    index, body, what = mutation
    note(what)
    data, filename = _file_for(index, body)
    result = check_diagnostics(data, filename)
    assert [m.body for m in result.manifests] == [body]
    kind = body.get("kind")
    if isinstance(kind, str) and kind in SCHEMA_FILES and body.get("apiVersion") == "v1":
        problems = [e for e in _reference(kind).iter_errors(body) if e.validator != "x-unhonoured"]
        if problems:
            assert result.errors, f"jsonschema reports {problems[0].message} but validate: ok"


@_scaled(0.25)
@given(target=st.sampled_from(REQUIRED_PATHS), rename=st.booleans(), data=st.data())
def test_a_missing_required_field_is_an_error(
    target: tuple[int, FieldPath], rename: bool, data: st.DataObject
) -> None:
    index, path = target
    body = copy.deepcopy(SAMPLES[index][1])
    parent = get_path(body, path[:-1])
    key = path[-1]
    assert isinstance(key, str)
    if rename:
        new_key = data.draw(st.sampled_from([key + "s", key.upper(), "_" + key]))
        parent[new_key] = parent.pop(key)
    else:
        del parent[key]
    file, filename = _file_for(index, body)
    result = check_diagnostics(file, filename)
    found = [d for d in _errors_at(result, path) if "missing required field" in d.message]
    assert found, result.diagnostics
    assert all(d.location.file == filename for d in found)
    if rename and key not in ("kind", "apiVersion"):
        _assert_error_on_key_line(file, result, path[:-1] + (new_key,), "unknown field")


@_scaled(0.25)
@given(target=st.sampled_from(STRICT_KEY_PATHS), data=st.data())
def test_a_misspelt_field_is_an_error_on_its_line(
    target: tuple[int, FieldPath], data: st.DataObject
) -> None:
    index, path = target
    _, schema = _where(index, path[:-1])
    assert schema is not None
    key = path[-1]
    assert isinstance(key, str)
    typo = data.draw(typos(key))
    assume(typo != key and typo not in schema.get("properties", {}))
    body = copy.deepcopy(SAMPLES[index][1])
    parent = get_path(body, path[:-1])
    parent[typo] = parent.pop(key)
    file, filename = _file_for(index, body)
    result = check_diagnostics(file, filename)
    if path in (("kind",), ("apiVersion",)):
        # without kind or apiVersion there is no schema to check against: that is the error
        assert _errors_at(result, path), result.diagnostics
        return
    error = _assert_error_on_key_line(file, result, path[:-1] + (typo,), "unknown field")
    assert repr(typo) in error.message


_ANY_TYPE = [None, True, False, 0, -1, 7, 2**40, 1.5, "", "text", "80", [], ["a"], {}, {"a": "b"}]


@_scaled(0.25)
@given(target=st.sampled_from(TYPED_PATHS), value=st.sampled_from(_ANY_TYPE))
def test_a_value_of_a_forbidden_type_is_an_error_on_its_line(
    target: tuple[int, FieldPath], value: Any
) -> None:
    index, path = target
    _, schema = _where(index, path)
    assert schema is not None
    wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    checker = Draft202012Validator.TYPE_CHECKER
    assume(not any(checker.is_type(value, t) for t in wanted))
    body = copy.deepcopy(SAMPLES[index][1])
    get_path(body, path[:-1])[path[-1]] = value
    file, filename = _file_for(index, body)
    result = check_diagnostics(file, filename)
    _assert_error_on_key_line(file, result, path, "expected")


@_scaled(0.25)
@given(
    target=st.sampled_from(RANGED_PATHS),
    beyond=st.one_of(st.integers(1, 10), st.just(2**63), st.just(10**30)),
    below=st.booleans(),
)
def test_a_number_out_of_range_is_an_error_on_its_line(
    target: tuple[int, FieldPath], beyond: int, below: bool
) -> None:
    index, path = target
    _, schema = _where(index, path)
    assert schema is not None
    bound = schema.get("minimum") if below else schema.get("maximum")
    assume(bound is not None)
    value = bound - beyond if below else bound + beyond
    body = copy.deepcopy(SAMPLES[index][1])
    get_path(body, path[:-1])[path[-1]] = value
    file, filename = _file_for(index, body)
    result = check_diagnostics(file, filename)
    error = _assert_error_on_key_line(file, result, path)
    assert str(value) in error.message


@_scaled(0.25)
@given(target=st.sampled_from(ENUM_PATHS), value=st.text(max_size=10))
def test_a_value_outside_an_enum_is_an_error_on_its_line(
    target: tuple[int, FieldPath], value: str
) -> None:
    index, path = target
    _, schema = _where(index, path)
    assert schema is not None
    allowed = schema.get("enum", [schema.get("const")])
    assume(value not in allowed)
    body = copy.deepcopy(SAMPLES[index][1])
    get_path(body, path[:-1])[path[-1]] = value
    file, filename = _file_for(index, body)
    result = check_diagnostics(file, filename)
    _assert_error_on_key_line(file, result, path)


@_scaled(0.25)
@given(
    target=st.sampled_from(STRICT_MAP_PATHS),
    key=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,11}", fullmatch=True),
    value=json_scalars,
)
def test_an_unknown_field_is_an_error_on_its_line(
    target: tuple[int, FieldPath], key: str, value: Any
) -> None:
    index, path = target
    _, schema = _where(index, path)
    assert schema is not None
    target_map = copy.deepcopy(SAMPLES[index][1])
    body = target_map
    mapping = get_path(body, path)
    assume(key not in schema.get("properties", {}) and key not in mapping and key != "<<")
    mapping[key] = value
    file, filename = _file_for(index, body)
    result = check_diagnostics(file, filename)
    error = _assert_error_on_key_line(file, result, path + (key,), "unknown field")
    assert repr(key) in error.message


@_scaled(0.25)
@given(target=st.sampled_from(NAMED_ITEM_PATHS))
def test_a_duplicated_list_item_is_reported_on_the_copy(target: tuple[int, FieldPath]) -> None:
    index, path = target
    body = copy.deepcopy(SAMPLES[index][1])
    items = get_path(body, path[:-1])
    items.append(copy.deepcopy(items[path[-1]]))
    file, filename = _file_for(index, body)
    result = check_diagnostics(file, filename)
    copy_path = format_path(path[:-1] + (len(items) - 1,))
    on_copy = [d for d in result.diagnostics if d.path.startswith(copy_path)]
    assert on_copy, result.diagnostics
    if path[-2] != "env":  # a repeated env var is legal (last wins): a warning is enough
        assert any(d.is_error for d in on_copy), on_copy


# -- the command line ----------------------------------------------------------------------
@st.composite
def cli_inputs(draw: st.DrawFn) -> tuple[bytes, str]:
    source = draw(st.sampled_from(["text", "yaml", "manifest", "mutation", "bytes"]))
    if source == "text":
        return draw(st.text()).encode("utf-8"), draw(st.sampled_from(["in.yaml", "in.json"]))
    if source == "yaml":
        return draw(yaml_documents()).encode("utf-8"), "in.yaml"
    if source == "manifest":
        data, filename = draw(manifest_files())
        return data, filename
    if source == "mutation":
        index, body, _ = draw(mutations())
        return _file_for(index, body)[0], "in.yaml"
    return draw(st.binary(max_size=200)), "in.yml"


def _run(args: list[str], stdin: bytes | None = None) -> Any:
    result = CliRunner().invoke(cli, args, input=stdin, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError("".join(traceback.format_exception(result.exception)) + result.output)
    return result


@_scaled(0.1)
@given(
    file=cli_inputs(),
    output=st.sampled_from(["text", "json", "github"]),
    use_stdin=st.booleans(),
)
def test_the_cli_exits_0_1_or_2_and_never_shows_a_traceback(
    file: tuple[bytes, str], output: str, use_stdin: bool
) -> None:
    data, name = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        if use_stdin:
            result = _run(["validate", "-o", output, "-"], stdin=data)
            shown = "<stdin>"
        else:
            result = _run(["validate", "-o", output, str(path)])
            shown = str(path)
        # read as `validate` reads what it is given: as manifests (a document with neither
        # apiVersion nor kind is one "not a Kubernetes object" error)
        shown_as = "<stdin>" if use_stdin else str(path)
        expected = validate(parse_bytes(data, shown_as, manifests_only=True))
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert result.exit_code == (0 if expected.valid else 1), result.output
    if output == "json":
        report = json.loads(result.stdout)
        assert report["valid"] == (result.exit_code == 0)
        assert len(report["errors"]) == len(expected.errors)
        assert all(e["file"] == shown and e["line"] >= 1 for e in report["errors"])
    elif output == "github":
        annotations = [line for line in result.stdout.splitlines() if line.startswith("::")]
        assert len(annotations) == len(expected.diagnostics)
    else:
        assert ("invalid" in result.stdout.splitlines()[-1]) == (result.exit_code == 1)


@pytest.mark.parametrize("args", [["validate", "/no/such/path"], ["validate", "--bogus"]])
def test_the_cli_reports_usage_errors_with_exit_2(args: list[str]) -> None:
    result = _run(args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_profile_runs_enough_examples() -> None:
    """Under the ci profile the property tests above run at least 2,000 examples in all."""
    total = 0
    for test in (
        value for name, value in globals().items() if name.startswith("test_") and callable(value)
    ):
        inner = getattr(test, "hypothesis", None)
        if inner is not None:
            total += test._hypothesis_internal_use_settings.max_examples  # type: ignore[attr-defined]
    assert total >= EXAMPLES, total
    if EXAMPLES >= 2000:
        assert total >= 2000
