"""``reconciler.parallel``: checking files in worker processes changes nothing in the result.

Every test compares the parallel path (forced with ``min_bytes=0``) with the in-process
``validate(load_paths(...))``: the same diagnostics in the same order, the same files and
object counts. Nothing is mocked: the workers are real forked processes.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.validate import generate_tree
from reconciler.check.parallel import _split, validate_paths
from reconciler.check.validate import validate
from reconciler.cli import cli
from reconciler.core.errors import InputError
from reconciler.render.diagnostics import diagnostic_line, validation_summary
from reconciler.source.load import load_paths

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def assert_same_as_in_process(paths: list[str], stdin: bytes = b"", workers: int = 3) -> None:
    loaded = load_paths(paths, stdin=io.BytesIO(stdin))
    expected = validate(loaded)
    got = validate_paths(paths, stdin=io.BytesIO(stdin), workers=workers, min_bytes=0)
    assert got.files == loaded.files
    assert got.objects == len(expected.manifests)
    assert got.diagnostics == expected.diagnostics
    assert got.valid == expected.valid


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_the_fixtures_give_the_same_diagnostics_in_workers(workers: int) -> None:
    assert_same_as_in_process([str(FIXTURES)], workers=workers)


def test_problems_across_files_are_found_whichever_worker_reads_them(tmp_path: Path) -> None:
    tree = generate_tree(tmp_path / "tree", 12, 10, 1)
    files = sorted(tree.files)
    # the same objects again in another file, whose nodePorts then clash; a Service that
    # selects nothing; a targetPort that no selected pod names
    shutil.copy(files[0], tmp_path / "tree" / "zz-copy.yaml")
    first = files[0].read_text(encoding="utf-8")
    (tmp_path / "tree" / "zz-moved.yaml").write_text(
        first.replace("team-00", "team-99"), encoding="utf-8"
    )
    last = files[-1].read_text(encoding="utf-8")
    last = last.replace("targetPort: http", "targetPort: nothere", 1)
    last = last.replace("tier: backend", "tier: nowhere", 1)
    files[-1].write_text(last, encoding="utf-8")
    (tmp_path / "tree" / "bad.yaml").write_text("kind: Pod\n  bad: [\n", encoding="utf-8")
    result = validate_paths([str(tmp_path / "tree")], workers=4, min_bytes=0)
    messages = " ".join(d.message for d in result.diagnostics)
    assert "is defined twice" in messages
    assert "is already used by Service" in messages
    assert "invalid YAML" in messages
    assert_same_as_in_process([str(tmp_path / "tree")], workers=4)


def test_stdin_among_files_keeps_its_place(tmp_path: Path) -> None:
    tree = generate_tree(tmp_path / "tree", 4, 10, 2)
    stdin = tree.files[0].read_bytes()
    paths = [str(tree.files[1]), "-", str(tmp_path / "tree")]
    assert_same_as_in_process(paths, stdin=stdin, workers=3)


def test_an_unreadable_path_is_an_input_error_before_any_checking(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        validate_paths([str(FIXTURES), str(tmp_path / "gone")], workers=2, min_bytes=0)


def test_the_command_prints_the_same_with_workers(tmp_path: Path) -> None:
    tree = generate_tree(tmp_path / "tree", 30, 10, 3)  # about 300 KB: over the threshold
    shutil.copy(tree.files[0], tmp_path / "tree" / "zz-copy.yaml")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "tree")])
    loaded = load_paths([str(tmp_path / "tree")])
    expected = validate(loaded)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        *(diagnostic_line(d) for d in expected.diagnostics),
        validation_summary(expected.diagnostics, len(expected.manifests), len(loaded.files)),
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_runs_are_contiguous_non_empty_and_about_the_same_size(count: int) -> None:
    inputs = [(f"f{i}", b"x" * (1 + (i * 37) % 11)) for i in range(20)]
    runs = _split(inputs, count)
    assert len(runs) == count
    assert all(runs)
    assert [item for run in runs for item in run] == inputs
    sizes = [sum(len(data) for _, data in run) for run in runs]
    assert max(sizes) - min(sizes) <= 2 * max(len(data) for _, data in inputs)


def test_as_many_runs_as_files_at_most() -> None:
    inputs = [("a", b"x" * 100), ("b", b"y")]
    assert [len(run) for run in _split(inputs, 2)] == [1, 1]
