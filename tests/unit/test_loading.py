"""The loader: files, directories, stdin, documents, size and encoding, JSON, and Lists.

How values are composed (positions, keys, scalars, anchors) is in ``test_composer.py``.

Real files in tmp_path and real bytes; nothing is mocked.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import pytest
import yaml

from reconciler.core.errors import InputError
from reconciler.core.model import Location
from reconciler.source.load import (
    MAX_FILE_BYTES,
    STDIN_NAME,
    LoadResult,
    discover,
    load_paths,
    parse_bytes,
    parse_text,
)

from .texts import pod


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def messages(result: LoadResult) -> list[tuple[str, int, int, str]]:
    return [
        (d.location.file, d.location.line, d.location.column, d.message) for d in result.diagnostics
    ]


def names(result: LoadResult) -> list[str]:
    return [m.name for m in result.manifests]


# -- files and directories ----------------------------------------------------------------------
def test_a_single_file_is_one_manifest_named_by_its_path(tmp_path: Path) -> None:
    path = write(tmp_path / "pod.yaml", pod("db"))
    result = load_paths([str(path)])
    assert result.diagnostics == []
    assert result.files == [str(path)]
    [manifest] = result.manifests
    assert (manifest.file, manifest.position, manifest.kind, manifest.name) == (
        str(path),
        (1, 1),
        "Pod",
        "db",
    )
    assert manifest.body["spec"]["containers"] == [{"name": "web", "image": "nginx"}]


def test_directories_are_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root / "b.yaml", pod("b"))
    write(root / "a.yml", pod("a"))
    write(root / "sub" / "deeper" / "c.json", json.dumps(yaml.safe_load(pod("c"))))
    write(root / "sub" / "D.YAML", pod("d"))  # suffixes are matched case-insensitively
    write(root / "zz" / "e.yaml", pod("e"))
    result = load_paths([str(root)])
    assert result.diagnostics == []
    assert result.files == [
        str(root / "a.yml"),
        str(root / "b.yaml"),
        str(root / "sub" / "D.YAML"),
        str(root / "sub" / "deeper" / "c.json"),
        str(root / "zz" / "e.yaml"),
    ]
    assert names(result) == ["a", "b", "d", "c", "e"]


def test_directories_skip_dot_entries_git_and_other_suffixes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root / "keep.yaml", pod("keep"))
    write(root / ".hidden.yaml", pod("hidden"))
    write(root / ".git" / "config.yaml", pod("git"))
    write(root / ".github" / "workflows" / "ci.yml", "on: push\n")
    write(root / ".dotdir" / "x.yaml", pod("dotdir"))
    write(root / "README.md", "# not a manifest: {\n")
    write(root / "notes.txt", "not: [a manifest\n")
    write(root / "kustomization.yaml.bak", "{")
    assert discover([str(root)]) == [str(root / "keep.yaml")]
    assert names(load_paths([str(root)])) == ["keep"]


def test_an_explicit_file_is_read_whatever_its_name(tmp_path: Path) -> None:
    odd = write(tmp_path / ".pod.txt", pod("odd"))
    result = load_paths([str(odd)])
    assert names(result) == ["odd"]
    assert result.manifests[0].file == str(odd)


def test_files_and_directories_mix_in_the_order_given(tmp_path: Path) -> None:
    write(tmp_path / "dir" / "one.yaml", pod("one"))
    two = write(tmp_path / "two.yaml", pod("two"))
    assert names(load_paths([str(two), str(tmp_path / "dir")])) == ["two", "one"]


def test_a_missing_path_raises_input_error(tmp_path: Path) -> None:
    write(tmp_path / "ok.yaml", pod())
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match=r"nope\.yaml: no such file or directory"):
        load_paths([str(tmp_path / "ok.yaml"), str(missing)])


def test_a_path_that_is_not_a_file_or_directory_raises_input_error(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file or directory"):
        load_paths([str(fifo)])


def test_a_symlink_loop_in_a_directory_does_not_hang(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root / "app" / "pod.yaml", pod("once"))
    os.symlink(root, root / "app" / "loop")  # repo/app/loop -> repo
    os.symlink(root / "app", root / "app" / "self")  # repo/app/self -> repo/app
    found: list[LoadResult] = []
    worker = threading.Thread(target=lambda: found.append(load_paths([str(root)])), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "load_paths did not return within 10 s"
    assert names(found[0]) == ["once"]
    assert found[0].files == [str(root / "app" / "pod.yaml")]


def test_a_symlinked_directory_inside_the_tree_is_followed_once(tmp_path: Path) -> None:
    write(tmp_path / "repo" / "team" / "common" / "pod.yaml", pod("linked"))
    write(tmp_path / "repo" / "own.yaml", pod("own"))
    os.symlink(tmp_path / "repo" / "team" / "common", tmp_path / "repo" / "shared")
    result = load_paths([str(tmp_path / "repo")])
    assert result.diagnostics == []
    assert names(result) == ["own", "linked"]
    assert result.files[-1] == str(tmp_path / "repo" / "shared" / "pod.yaml")


def test_loading_never_stops_at_the_first_bad_file(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "kind: [\n")
    write(tmp_path / "b.yaml", pod("b"))
    write(tmp_path / "c.yaml", "- a list\n")
    result = load_paths([str(tmp_path)])
    assert names(result) == ["b"]
    assert [(f.rsplit("/", 1)[-1], line) for f, line, _, _ in messages(result)] == [
        ("a.yaml", 2),
        ("c.yaml", 1),
    ]
    assert len(result.files) == 3


# -- stdin -----------------------------------------------------------------------------------------
def test_stdin_is_read_from_the_stream_given_and_named_stdin(tmp_path: Path) -> None:
    result = load_paths(["-"], stdin=io.BytesIO(pod("piped").encode()))
    assert result.files == [STDIN_NAME]
    [manifest] = result.manifests
    assert (manifest.file, manifest.name) == ("<stdin>", "piped")
    assert manifest.locate(("metadata", "name")) == Location("<stdin>", 4, 3)


def test_stdin_problems_are_reported_against_stdin() -> None:
    result = load_paths(["-"], stdin=io.BytesIO(b"apiVersion: v1\nkind: Pod\n\tx: 1\n"))
    [(file, line, column, message)] = messages(result)
    assert (file, line, column) == ("<stdin>", 3, 1)
    assert message.startswith("invalid YAML: tab character: YAML indentation must use spaces")


def test_stdin_and_files_together(tmp_path: Path) -> None:
    path = write(tmp_path / "f.yaml", pod("from-file"))
    result = load_paths([str(path), "-"], stdin=io.BytesIO(pod("from-stdin").encode()))
    assert [(m.file, m.name) for m in result.manifests] == [
        (str(path), "from-file"),
        ("<stdin>", "from-stdin"),
    ]


# -- documents ----------------------------------------------------------------------------------
def test_several_documents_each_start_where_they_are_written() -> None:
    text = pod("one") + "---\n" + pod("two") + "...\n---\n" + pod("three")
    result = parse_text(text, "multi.yaml")
    assert names(result) == ["one", "two", "three"]
    assert [m.position for m in result.manifests] == [(1, 1), (10, 1), (20, 1)]
    assert [m.locate(("metadata", "name")).line for m in result.manifests] == [4, 13, 23]


def test_empty_documents_and_empty_files_are_skipped() -> None:
    text = "---\n---\n# only a comment\n---\n" + pod("real") + "---\n...\n"
    result = parse_text(text, "sparse.yaml")
    assert result.diagnostics == []
    assert names(result) == ["real"]
    assert result.manifests[0].position == (5, 1)
    empty = parse_bytes(b"", "empty.yaml")
    assert (empty.manifests, empty.diagnostics, empty.files) == ([], [], ["empty.yaml"])
    assert parse_text("# nothing here\n", "c.yaml").manifests == []


def test_a_bad_document_is_skipped_and_the_next_still_loads() -> None:
    text = "a: &x [*x]\n---\n" + pod("after")
    result = parse_text(text, "f.yaml")
    assert messages(result) == [
        ("f.yaml", 1, 8, "alias *x is used inside its own anchor (recursive)")
    ]
    assert names(result) == ["after"]


def test_a_syntax_error_keeps_the_documents_before_it() -> None:
    text = pod("before") + "---\nkind: [\n---\n" + pod("after")
    result = parse_text(text, "f.yaml")
    assert names(result) == ["before"]
    [(_, line, column, message)] = messages(result)
    assert (line, column) == (11, 1)
    assert message.startswith("invalid YAML: did not find expected node content")


def test_a_byte_order_mark_is_accepted() -> None:
    result = parse_bytes(b"\xef\xbb\xbf" + pod("bom").encode(), "bom.yaml")
    assert result.diagnostics == []
    assert result.manifests[0].locate(("kind",)) == Location("bom.yaml", 2, 1)


def test_non_utf8_is_one_error_at_the_offending_byte() -> None:
    result = parse_bytes(b"kind: Pod\nmetadata:\n  name: caf\xe9\n", "latin1.yaml")
    assert messages(result) == [
        ("latin1.yaml", 3, 12, "not UTF-8 text: byte 0xe9 cannot be decoded")
    ]
    assert result.manifests == []


def test_the_size_limit_is_inclusive() -> None:
    text = pod("big").encode()
    at_limit = text + b"#" * (MAX_FILE_BYTES - len(text))
    assert len(at_limit) == MAX_FILE_BYTES
    assert names(parse_bytes(at_limit, "big.yaml")) == ["big"]
    over = parse_bytes(at_limit + b"\n", "big.yaml")
    assert over.manifests == []
    assert messages(over) == [
        (
            "big.yaml",
            1,
            1,
            "file is 8,388,609 bytes, over the 8,388,608-byte limit for one manifest file: "
            "split it",
        )
    ]


def test_a_control_character_is_reported_where_it_is() -> None:
    result = parse_text("kind: Pod\nmetadata:\n  name: we\x07b\n", "bell.yaml")
    assert messages(result) == [
        (
            "bell.yaml",
            3,
            11,
            "invalid YAML: unacceptable character #x0007: control characters are not allowed",
        )
    ]


def test_documents_that_are_not_mappings_are_errors() -> None:
    result = parse_text("- a\n---\n42\n---\ntrue\n---\n'text'\n", "n.yaml")
    assert [(line, message.rsplit(" ", 1)[-1]) for _, line, _, message in messages(result)] == [
        (1, "list"),
        (3, "number"),
        (5, "boolean"),
        (7, "string"),
    ]


# -- JSON ---------------------------------------------------------------------------------------
def test_json_with_tab_indentation_loads_with_positions(tmp_path: Path) -> None:
    text = (
        '{\n\t"apiVersion": "v1",\n\t"kind": "Pod",\n\t"metadata": {\n\t\t"name": "tabs"\n\t}\n}\n'
    )
    path = write(tmp_path / "tabs.json", text)
    result = load_paths([str(path)])
    assert result.diagnostics == []
    [manifest] = result.manifests
    assert manifest.name == "tabs"
    assert manifest.locate(("kind",)) == Location(str(path), 3, 2)
    assert manifest.locate(("metadata", "name")) == Location(str(path), 5, 3)


# -- kind: List -------------------------------------------------------------------------------
LIST = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata:
      name: first
  - kind: PodList
    items:
      - apiVersion: v1
        kind: Pod
        metadata:
          name: nested
        spec:
          containers:
            - name: web
              image: nginx
  - {apiVersion: v1, kind: Pod, metadata: {name: flow}}
"""


def test_list_items_become_manifests_rooted_at_the_item() -> None:
    result = parse_text(LIST, "list.yaml")
    assert result.diagnostics == []
    assert [(m.name, m.position) for m in result.manifests] == [
        ("first", (4, 5)),
        ("nested", (10, 9)),
        ("flow", (18, 5)),
    ]
    first, nested, flow = result.manifests
    assert first.body == {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "first"}}
    assert first.locate(("metadata", "name")) == Location("list.yaml", 7, 7)
    assert nested.locate(("spec", "containers", 0, "image")) == Location("list.yaml", 17, 15)
    assert flow.locate(("metadata", "name")) == Location("list.yaml", 18, 44)
    assert all(path[:1] != ("items",) for m in result.manifests for path in m.positions)


def test_list_items_that_are_not_mappings_and_lists_without_items() -> None:
    text = (
        "kind: List\nitems:\n  - 3\n  - [a]\n"
        "---\nkind: List\nitems: {}\n"
        "---\nkind: List\nitems: []\n"  # an empty list is fine
    )
    result = parse_text(text, "l.yaml")
    assert result.manifests == []
    found = [(d.location.line, d.location.column, d.kind, d.path) for d in result.diagnostics]
    assert found == [(3, 5, "", ""), (4, 5, "", ""), (7, 1, "List", "items")]
    assert result.diagnostics[0].message.endswith("not a number")
    assert result.diagnostics[1].message.endswith("not a list")
    assert result.diagnostics[2].message == "kind List needs an 'items' list of objects"
