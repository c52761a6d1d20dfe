"""The source tree is a jail (``source.load``): symbolic links that leave it are errors at
their path, never followed; only regular files are read, each sized before it is read; the
tree as a whole is capped.

Real files, links, pipes and sparse files in tmp_path; nothing is mocked. A secret that a
link points at must appear in no diagnostic.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reconciler.check.validate import validate
from reconciler.source.load import (
    MAX_FILE_BYTES,
    STDIN_NAME,
    LoadResult,
    SourceLimits,
    load_paths,
)

from .texts import pod

SECRET = "root:$6$hunter2-should-never-be-shown:19000:0:99999:7:::"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(result: LoadResult) -> list[tuple[str, int, str]]:
    return [(Path(d.location.file).name, d.location.line, d.message) for d in result.diagnostics]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the tree holding a secret, as /etc/shadow would."""
    return write(tmp_path / "host" / "shadow.yaml", f"secret: '{SECRET}'\n")


def everything_said(result: LoadResult) -> str:
    return "\n".join(f"{d.location} {d.path} {d.message}" for d in result.diagnostics)


def test_a_link_to_a_file_outside_the_tree_is_an_error_and_never_read(
    tmp_path: Path, outside: Path
) -> None:
    tree = tmp_path / "repo"
    write(tree / "ok.yaml", pod("ok"))
    os.symlink(outside, tree / "stolen.yaml")
    result = load_paths([str(tree)])
    assert [m.name for m in result.manifests] == ["ok"]
    assert errors_of(result) == [
        (
            "stolen.yaml",
            1,
            f"symbolic link to {str(outside)!r}, outside the source tree: not followed (links "
            "may only point inside the tree)",
        )
    ]
    assert "hunter2" not in everything_said(validate(result))


def test_a_relative_link_climbing_out_is_refused_too(tmp_path: Path, outside: Path) -> None:
    tree = tmp_path / "repo"
    write(tree / "apps" / "ok.yaml", pod("ok"))
    os.symlink("../../host/shadow.yaml", tree / "apps" / "x.yaml")
    result = load_paths([str(tree)])
    assert [e[0] for e in errors_of(result)] == ["x.yaml"]
    assert "outside the source tree" in result.diagnostics[0].message
    assert "hunter2" not in everything_said(result)


def test_a_link_to_a_directory_outside_is_not_walked(tmp_path: Path) -> None:
    # a link to /usr would read thousands of files: it is one error instead
    tree = tmp_path / "repo"
    write(tree / "ok.yaml", pod("ok"))
    os.symlink("/usr", tree / "usr")
    result = load_paths([str(tree)])
    assert result.files == [str(tree / "usr"), str(tree / "ok.yaml")]
    assert errors_of(result) == [
        (
            "usr",
            1,
            "symbolic link to '/usr', outside the source tree: not followed (links may only "
            "point inside the tree)",
        )
    ]


def test_a_link_to_dev_zero_is_refused_at_once(tmp_path: Path) -> None:
    # it used to be read without end (19 GB in 60 s)
    tree = tmp_path / "repo"
    tree.mkdir()
    os.symlink("/dev/zero", tree / "zero.yaml")
    found: list[LoadResult] = []
    worker = threading.Thread(target=lambda: found.append(load_paths([str(tree)])), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "reading /dev/zero did not stop"
    assert "outside the source tree" in found[0].diagnostics[0].message


def test_a_link_into_the_git_directory_is_refused(tmp_path: Path) -> None:
    # inside the checkout, but .git/config may hold the remote's credentials
    tree = tmp_path / "repo"
    write(tree / ".git" / "config", "[remote]\n  url = https://user:token@example.com/x\n")
    os.symlink(tree / ".git" / "config", tree / "config.yaml")
    result = load_paths([str(tree)])
    assert errors_of(result)[0][0] == "config.yaml"
    assert "inside a hidden directory" in result.diagnostics[0].message
    assert "token" not in everything_said(result)


def test_links_inside_the_tree_are_followed_and_broken_ones_are_errors(tmp_path: Path) -> None:
    tree = tmp_path / "repo"
    write(tree / "base" / "pod.yaml", pod("base"))
    os.symlink("base/pod.yaml", tree / "again.yaml")  # the same file twice: a duplicate
    os.symlink("missing.yaml", tree / "broken.yaml")
    result = validate(load_paths([str(tree)]))
    said = everything_said(result)
    assert "broken symbolic link to 'missing.yaml'" in said
    assert "Pod default/base is defined twice" in said


def test_a_git_checkout_is_one_jail_whatever_sub_directory_is_read(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    write(checkout / "common" / "pod.yaml", pod("shared"))
    write(checkout / "prod" / "own.yaml", pod("own"))
    os.symlink("../common", checkout / "prod" / "common")
    result = load_paths([str(checkout / "prod")], root=str(checkout))
    assert result.diagnostics == []
    assert sorted(m.name for m in result.manifests) == ["own", "shared"]
    # read as its own tree, prod/common leaves it
    alone = load_paths([str(checkout / "prod")])
    assert "outside the source tree" in alone.diagnostics[0].message


# -- only regular files, sized before they are read -----------------------------------------
def test_a_named_pipe_in_the_tree_is_an_error_not_a_hang(tmp_path: Path) -> None:
    tree = tmp_path / "repo"
    tree.mkdir()
    os.mkfifo(tree / "pipe.yaml")
    found: list[LoadResult] = []
    worker = threading.Thread(target=lambda: found.append(load_paths([str(tree)])), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "load_paths blocked on a named pipe"
    assert errors_of(found[0]) == [("pipe.yaml", 1, "not a regular file (a named pipe): not read")]


def test_a_huge_file_is_refused_from_its_size_without_being_read(tmp_path: Path) -> None:
    # 1 GB, sparse: reading it whole used to cost 1.07 GB of memory
    tree = tmp_path / "repo"
    tree.mkdir()
    with (tree / "huge.yaml").open("wb") as huge:
        huge.truncate(1024**3)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so the child would
    # report the peak of the pytest process that started it
    code = (
        "import sys\n"
        "from reconciler.source.load import load_paths\n"
        f"result = load_paths([{str(tree)!r}])\n"
        "print(result.diagnostics[0].message)\n"
        "status = open('/proc/self/status').read().splitlines()\n"
        "print(next(int(row.split()[1]) for row in status if row.startswith('VmHWM:')) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    message, peak_mb = done.stdout.splitlines()
    assert message == (
        "file is 1,073,741,824 bytes, over the 8,388,608-byte limit for one manifest file: split it"
    )
    assert int(peak_mb) < 200, f"{peak_mb} MB: the file was read"


def test_standard_input_is_read_with_a_bound() -> None:
    result = load_paths(["-"], stdin=io.BytesIO(b"#" * (MAX_FILE_BYTES + 100)))
    assert [(d.location.file, d.message[:40]) for d in result.diagnostics] == [
        (STDIN_NAME, "file is 8,388,609 bytes, over the 8,388,")
    ]


# -- caps on the whole tree ------------------------------------------------------------------
def test_a_tree_past_its_file_cap_is_refused(tmp_path: Path) -> None:
    for i in range(5):
        write(tmp_path / f"p{i}.yaml", pod(f"p{i}"))
    result = load_paths([str(tmp_path)], limits=SourceLimits(max_files=3))
    assert [m.name for m in result.manifests] == ["p0", "p1", "p2"]
    assert [e[0] for e in errors_of(result)] == ["p3.yaml", "p4.yaml"]
    assert "more than 3 manifest files (--max-source-files)" in result.diagnostics[0].message
    assert not validate(result).valid  # nothing of such a tree is applied


def test_a_tree_past_its_byte_cap_is_refused(tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path / f"p{i}.yaml", pod(f"p{i}") + "#" * 1000)
    result = load_paths([str(tmp_path)], limits=SourceLimits(max_bytes=2500))
    assert [m.name for m in result.manifests] == ["p0", "p1"]
    assert (
        "more than 2,500 bytes of manifests (--max-source-bytes)" in result.diagnostics[0].message
    )


def test_the_caps_are_flags_of_validate(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli

    for i in range(3):
        write(tmp_path / f"p{i}.yaml", pod(f"p{i}"))
    runner = CliRunner()
    assert runner.invoke(cli, ["validate", str(tmp_path)]).exit_code == 0
    done = runner.invoke(cli, ["validate", "--max-source-files", "2", str(tmp_path)])
    assert done.exit_code == 1
    assert "p2.yaml:1:1: error: the source holds more than 2 manifest files" in done.output
