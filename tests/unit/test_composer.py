"""The YAML composer: values with the position of every field, duplicate keys, scalars and
tags, merge keys and anchors, and the depth and alias-expansion limits.

Through ``parse_text`` and ``parse_bytes``, the composer's callers; real text, nothing mocked.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.model import FieldPath, Location, Manifest
from reconciler.source.composer import MAX_DEPTH
from reconciler.source.load import LoadResult, parse_bytes, parse_text

from .texts import FIXTURES, pod


def messages(result: LoadResult) -> list[tuple[str, int, int, str]]:
    return [
        (d.location.file, d.location.line, d.location.column, d.message) for d in result.diagnostics
    ]


# -- scalars, keys and nesting ------------------------------------------------------------------
def test_nesting_deeper_than_the_limit_is_refused_but_the_limit_itself_is_fine() -> None:
    ok = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert parse_text(ok, "ok.yaml").diagnostics == []
    deep = "x: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    assert messages(parse_text(deep, "deep.yaml")) == [
        ("deep.yaml", 1, 3 + MAX_DEPTH, f"document is nested more than {MAX_DEPTH} levels deep")
    ]


def test_duplicate_keys_are_errors_and_the_first_value_is_kept() -> None:
    text = "kind: Pod\nmetadata:\n  name: a\n  labels: {x: '1', x: '2'}\n  name: b\n"
    result = parse_text(text, "dup.yaml")
    assert [(d.location.line, d.location.column, d.path) for d in result.diagnostics] == [
        (4, 20, "metadata.labels.x"),
        (5, 3, "metadata.name"),
    ]
    assert "already set at line 3 of this mapping" in result.diagnostics[1].message
    assert result.manifests[0].body["metadata"] == {"name": "a", "labels": {"x": "1"}}


def test_scalars_keep_yaml_types_and_quotes_keep_strings() -> None:
    text = "a: 3306\nb: '3306'\nc: 0.5\nd: true\ne: null\nf: 2024-01-01\ng: \"yes\"\nh: |\n  x\n"
    [manifest] = parse_text(text, "s.yaml").manifests
    assert manifest.body == {
        "a": 3306,
        "b": "3306",
        "c": 0.5,
        "d": True,
        "e": None,
        "f": "2024-01-01",
        "g": "yes",
        "h": "x\n",
    }


def test_tags_other_than_plain_values_are_refused() -> None:
    result = parse_text("a: !!binary aGk=\n---\nb: !custom x\n---\nc: !!str 12\n", "t.yaml")
    assert [(line, column) for _, line, column, _ in messages(result)] == [(1, 4), (3, 4)]
    assert all("unsupported YAML tag" in m for *_, m in messages(result))
    assert [m.body for m in result.manifests] == [{"c": "12"}]


def test_mapping_keys_must_be_plain_strings() -> None:
    result = parse_text("? [a]\n: 1\n---\nx: &k y\n*k : 2\n", "k.yaml")
    assert messages(result) == [
        ("k.yaml", 1, 3, "mapping keys must be plain strings, not lists or mappings"),
        ("k.yaml", 5, 1, "aliases cannot be used as mapping keys"),
    ]


# -- JSON -------------------------------------------------------------------------------------
def test_json_scalars_follow_json_not_yaml() -> None:
    text = '{"a": 1e3, "b": "0x10", "c": true, "d": null, "<<": {"e": 1}, "f": [1, 2.5]}'
    [manifest] = parse_bytes(text.encode(), "s.json").manifests
    assert manifest.body == {
        "a": 1000.0,
        "b": "0x10",
        "c": True,
        "d": None,
        "<<": {"e": 1},
        "f": [1, 2.5],
    }


def test_json_duplicate_keys_are_errors() -> None:
    result = parse_bytes(b'{"kind": "Pod",\n "kind": "Service"}', "d.json")
    assert [(d.location.line, d.location.column, d.path) for d in result.diagnostics] == [
        (2, 2, "kind")
    ]
    assert result.manifests[0].kind == "Pod"


# -- merge keys and anchors ---------------------------------------------------------------------
MERGE = """\
apiVersion: v1
kind: Pod
metadata:
  name: merged
  labels: &labels
    app: web
spec:
  containers:
    - &base
      name: base
      image: nginx
      imagePullPolicy: Always
    - <<: *base
      name: sidecar
    - name: explicit-first
      <<: [*base, {image: other, workingDir: /srv}]
      image: busybox
nodeSelector: *labels
"""


def test_merge_keys_fill_in_missing_keys_and_explicit_keys_win() -> None:
    [manifest] = parse_text(MERGE, "m.yaml").manifests
    containers = manifest.body["spec"]["containers"]
    assert containers[1] == {"name": "sidecar", "image": "nginx", "imagePullPolicy": "Always"}
    assert containers[2] == {
        "name": "explicit-first",
        "image": "busybox",
        "imagePullPolicy": "Always",
        "workingDir": "/srv",
    }
    assert "<<" not in containers[1] and "<<" not in containers[2]
    assert manifest.body["nodeSelector"] == {"app": "web"}


def test_merged_keys_are_located_at_the_merge_and_explicit_keys_where_written() -> None:
    [manifest] = parse_text(MERGE, "m.yaml").manifests
    containers: FieldPath = ("spec", "containers")
    assert manifest.locate(containers + (1, "name")) == Location("m.yaml", 14, 7)
    assert manifest.locate(containers + (1, "image")) == Location("m.yaml", 13, 11)
    assert manifest.locate(containers + (2, "image")) == Location("m.yaml", 17, 7)
    # from a list of merges: the alias it came from, or the key written inline
    assert manifest.locate(containers + (2, "imagePullPolicy")) == Location("m.yaml", 16, 12)
    assert manifest.locate(containers + (2, "workingDir")) == Location("m.yaml", 16, 34)
    assert (containers + (1, "<<")) not in manifest.positions


def test_keys_merged_from_a_block_mapping_keep_their_own_lines() -> None:
    text = "kind: Pod\nmetadata:\n  <<:\n    name: web\n    namespace: prod\n  labels: {}\n"
    [manifest] = parse_text(text, "b.yaml").manifests
    assert manifest.body["metadata"] == {"name": "web", "namespace": "prod", "labels": {}}
    assert manifest.locate(("metadata", "name")) == Location("b.yaml", 4, 5)
    assert manifest.locate(("metadata", "namespace")) == Location("b.yaml", 5, 5)
    assert manifest.locate(("metadata", "labels")) == Location("b.yaml", 6, 3)


def test_a_merge_key_needs_mappings() -> None:
    result = parse_text("a: &s text\nb:\n  <<: *s\n", "m.yaml")
    assert messages(result) == [
        ("m.yaml", 3, 7, "a merge key (<<) needs a mapping or a list of mappings")
    ]


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    result = parse_text("\n".join(lines) + "\n", "lol.yaml")
    [(_, line, _, message)] = messages(result)
    assert line == 5
    assert message.startswith("document expands to more than 100,000 nodes")
    assert result.manifests == []


def test_an_alias_to_an_undefined_anchor_is_an_error() -> None:
    result = parse_text("kind: Pod\nlabels: *nowhere\n", "u.yaml")
    assert messages(result) == [
        ("u.yaml", 2, 9, "alias *nowhere refers to no anchor defined before it")
    ]


# -- positions ----------------------------------------------------------------------------------
def test_locate_falls_back_to_the_closest_written_ancestor() -> None:
    [manifest] = parse_text(pod("web"), "p.yaml").manifests
    assert manifest.locate(("spec", "containers", 0, "ports", 3, "name")) == Location(
        "p.yaml", 7, 7
    )
    assert manifest.locate(("nothing", "here")) == Location("p.yaml", 1, 1)
    assert manifest.locate(()) == manifest.source == Location("p.yaml", 1, 1)


def test_every_field_of_a_realistic_manifest_has_its_position() -> None:
    text = (FIXTURES / "valid" / "keystone-stack.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    for manifest in parse_text(text, "k.yaml").manifests:
        for path, value in _walk(manifest.body, ()):
            assert path in manifest.positions, f"no position for {path}"
            line, column = manifest.positions[path]
            at = lines[line - 1][column - 1 :]
            last = path[-1]
            if isinstance(last, str):
                assert at.startswith(last), (path, at)
            elif not isinstance(value, dict | list):
                assert at.strip("\"'").startswith(str(value)), (path, at)


def _walk(value: Any, path: FieldPath) -> list[tuple[FieldPath, Any]]:
    out: list[tuple[FieldPath, Any]] = []
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        out.append((path + (key,), item))
        out.extend(_walk(item, path + (key,)))
    return out


_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -_./", max_size=12),
)
_documents = st.dictionaries(
    _keys,
    st.recursive(
        _scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)
        ),
        max_leaves=20,
    ),
    min_size=1,
    max_size=6,
)


@given(_documents, st.sampled_from(["block", "flow", "json"]))
def test_any_document_loads_like_pyyaml_and_every_key_is_located(
    document: dict[str, Any], style: str
) -> None:
    if style == "json":
        text, filename = json.dumps(document, indent=2), "g.json"
    else:
        text = yaml.safe_dump(document, default_flow_style=style == "flow", sort_keys=False)
        filename = "g.yaml"
    result = parse_bytes(text.encode(), filename)
    assert result.diagnostics == []
    [manifest] = result.manifests
    assert manifest.body == yaml.safe_load(text) == document
    lines = text.splitlines()
    for path, _ in _walk(document, ()):
        assert path in manifest.positions, path
        line, column = manifest.positions[path]
        if isinstance(path[-1], str):
            at = lines[line - 1][column - 1 :]
            assert at.lstrip("'\"").startswith(path[-1]), (path, at)


def test_manifest_positions_are_plain_data() -> None:
    [manifest] = parse_text(pod(), "p.yaml").manifests
    assert isinstance(manifest, Manifest)
    assert manifest.positions[("metadata", "name")] == (4, 3)
    assert manifest.positions[("spec", "containers", 0)] == (7, 7)
    assert manifest.positions[("spec", "containers", 0, "image")] == (8, 7)
