"""``reconciler validate``: exit codes, the three output formats, stdin, the default path.

Driven through click's CliRunner (in process) and once through the installed command in a
subprocess; nothing is mocked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INVALID = FIXTURES / "invalid"
VALID = FIXTURES / "valid"

ENUM_MESSAGE = "must be one of Always, IfNotPresent, Never; got 'always'"


def run(*args: str, stdin: bytes | None = None) -> Result:
    result = CliRunner().invoke(cli, ["validate", *args], input=stdin)
    assert "Traceback" not in result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def copy(name: str, directory: Path, as_name: str | None = None) -> Path:
    target = directory / (as_name or name)
    shutil.copy(INVALID / name, target)
    return target


# -- exit codes ---------------------------------------------------------------------------------
def test_valid_manifests_exit_0_with_a_summary() -> None:
    result = run(str(VALID))
    assert result.exit_code == 0, result.output
    assert result.output == "10 object(s) in 4 file(s): valid, 0 error(s), 0 warning(s)\n"


def test_warnings_alone_still_exit_0(tmp_path: Path) -> None:
    path = copy("service-no-selector.yaml", tmp_path)
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{path}:5:1: warning: Service/external-db: spec.selector: the Service has no selector: "
        "it selects no pods, so its ports forward nowhere",
        f"{path}:16:3: warning: Service/empty-selector: spec.selector: the Service has no "
        "selector: it selects no pods, so its ports forward nowhere",
        "2 object(s) in 1 file(s): valid, 0 error(s), 2 warning(s)",
    ]


def test_an_error_exits_1(tmp_path: Path) -> None:
    path = copy("enum.yaml", tmp_path)
    result = run(str(path))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "1 object(s) in 1 file(s): invalid, 1 error(s), 0 warning(s)"
    )


def test_a_missing_path_exits_2_naming_it(tmp_path: Path) -> None:
    result = run(str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert f"Error: {tmp_path / 'missing.yaml'}: no such file or directory" in result.output


def test_a_missing_path_among_good_ones_still_exits_2(tmp_path: Path) -> None:
    result = run(str(VALID), str(tmp_path / "typo"))
    assert result.exit_code == 2
    assert "typo: no such file or directory" in result.output
    assert "object(s)" not in result.output


def test_an_unknown_output_format_exits_2() -> None:
    result = run("-o", "xml", str(VALID))
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json', 'github'" in result.output


# -- text ---------------------------------------------------------------------------------------
def test_text_lines_are_file_line_col_severity_object_path_message(tmp_path: Path) -> None:
    path = copy("enum.yaml", tmp_path, "pod.yaml")
    result = run(str(path))
    assert result.output.splitlines()[0] == (
        f"{path}:9:7: error: Pod/web: spec.containers[0].imagePullPolicy: {ENUM_MESSAGE}"
    )


def test_text_leaves_out_the_object_and_path_when_there_are_none(tmp_path: Path) -> None:
    path = copy("yaml-syntax.yaml", tmp_path)
    result = run(str(path))
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith(f"{path}:9:15: error: invalid YAML: mapping values are not allowed")


def test_text_marks_a_missing_kind_or_name_with_a_question_mark(tmp_path: Path) -> None:
    path = copy("missing-required.yaml", tmp_path)
    lines = run(str(path)).output.splitlines()
    assert lines[0] == f"{path}:3:1: error: Pod/?: metadata.name: missing required field 'name'"


# -- json ---------------------------------------------------------------------------------------
def test_json_output_shape_and_values(tmp_path: Path) -> None:
    enum = copy("enum.yaml", tmp_path)
    warn = copy("service-no-selector.yaml", tmp_path)
    result = run("-o", "json", str(enum), str(warn))
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert list(report) == ["valid", "objects", "errors", "warnings"]
    assert report["valid"] is False
    assert report["objects"] == 3
    assert report["errors"] == [
        {
            "file": str(enum),
            "line": 9,
            "column": 7,
            "kind": "Pod",
            "name": "web",
            "path": "spec.containers[0].imagePullPolicy",
            "message": ENUM_MESSAGE,
        }
    ]
    assert [(w["file"], w["line"], w["column"], w["name"]) for w in report["warnings"]] == [
        (str(warn), 5, 1, "external-db"),
        (str(warn), 16, 3, "empty-selector"),
    ]
    assert all(
        list(w) == ["file", "line", "column", "kind", "name", "path", "message"]
        for w in report["warnings"]
    )


def test_json_output_for_valid_input() -> None:
    result = run("--output", "json", str(VALID))
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "valid": True,
        "objects": 10,
        "errors": [],
        "warnings": [],
    }


def test_json_output_of_a_file_level_error_has_empty_kind_name_and_path(tmp_path: Path) -> None:
    path = copy("non-utf8.yaml", tmp_path)
    report = json.loads(run("-o", "json", str(path)).output)
    assert report["errors"] == [
        {
            "file": str(path),
            "line": 7,
            "column": 14,
            "kind": "",
            "name": "",
            "path": "",
            "message": "not UTF-8 text: byte 0xe9 cannot be decoded",
        }
    ]
    assert report["objects"] == 0


# -- github -------------------------------------------------------------------------------------
def test_github_annotations(tmp_path: Path) -> None:
    enum = copy("enum.yaml", tmp_path)
    warn = copy("service-no-selector.yaml", tmp_path)
    result = run("-o", "github", str(enum), str(warn))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"::error file={enum},line=9,col=7,title=Pod/web::"
        f"spec.containers[0].imagePullPolicy: {ENUM_MESSAGE}",
        f"::warning file={warn},line=5,col=1,title=Service/external-db::"
        "spec.selector: the Service has no selector: it selects no pods, so its ports forward "
        "nowhere",
        f"::warning file={warn},line=16,col=3,title=Service/empty-selector::"
        "spec.selector: the Service has no selector: it selects no pods, so its ports forward "
        "nowhere",
        "3 object(s) in 2 file(s): invalid, 1 error(s), 2 warning(s)",
    ]


def test_github_annotations_escape_commas_and_colons_in_properties(tmp_path: Path) -> None:
    directory = tmp_path / "a,b:c"
    directory.mkdir()
    path = copy("tab-indentation.yaml", directory)
    line = run("-o", "github", str(path)).output.splitlines()[0]
    escaped = str(path).replace(":", "%3A").replace(",", "%2C")
    assert line.startswith(f"::error file={escaped},line=7,col=1,title=manifest::invalid YAML: ")


# -- stdin, default path, many files --------------------------------------------------------------
def test_stdin_is_read_for_dash_and_named_stdin() -> None:
    result = run("-", stdin=(INVALID / "enum.yaml").read_bytes())
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"<stdin>:9:7: error: Pod/web: spec.containers[0].imagePullPolicy: {ENUM_MESSAGE}",
        "1 object(s) in 1 file(s): invalid, 1 error(s), 0 warning(s)",
    ]


def test_valid_stdin_exits_0() -> None:
    result = run("-o", "json", "-", stdin=(VALID / "log-agent.json").read_bytes())
    assert result.exit_code == 0
    assert json.loads(result.output)["objects"] == 1


def test_the_default_path_is_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy("enum.yaml", tmp_path)
    (tmp_path / "sub").mkdir()
    copy("negative-replicas.yaml", tmp_path / "sub")
    monkeypatch.chdir(tmp_path)
    result = run()
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"./enum.yaml:9:7: error: Pod/web: spec.containers[0].imagePullPolicy: {ENUM_MESSAGE}",
        "./sub/negative-replicas.yaml:6:3: error: ReplicationController/web: spec.replicas: "
        "must be 0 or more; got -1",
        "2 object(s) in 2 file(s): invalid, 2 error(s), 0 warning(s)",
    ]


def test_an_empty_current_directory_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run()
    assert result.exit_code == 0
    assert result.output == "0 object(s) in 0 file(s): valid, 0 error(s), 0 warning(s)\n"


def test_errors_from_every_file_are_reported_at_once(tmp_path: Path) -> None:
    names = [
        "yaml-syntax.yaml",
        "enum.yaml",
        "non-utf8.yaml",
        "alias-bomb.yaml",
        "unknown-kind.yaml",
    ]
    for name in names:
        copy(name, tmp_path)
    result = run(str(tmp_path))
    assert result.exit_code == 1
    reported = {line.split(":", 1)[0] for line in result.output.splitlines()[:-1]}
    assert reported == {str(tmp_path / name) for name in names}
    assert result.output.splitlines()[-1].startswith(
        "2 object(s) in 5 file(s): invalid, 5 error(s)"
    )


def test_every_invalid_fixture_at_once_never_a_traceback() -> None:
    result = run("-o", "json", str(INVALID))
    assert result.exit_code == 1
    report = json.loads(result.output)
    files = {d["file"] for d in report["errors"] + report["warnings"]}
    fixtures = {p for p in INVALID.iterdir() if not p.name.endswith(".expect.json")}
    assert {Path(f) for f in files} >= {p for p in fixtures if p.is_file()}


# -- the installed command --------------------------------------------------------------------
def _command() -> list[str]:
    script = Path(sys.executable).with_name("reconciler")
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler.cli"]


def test_the_installed_command_end_to_end(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    shutil.copy(VALID / "staging.yaml", good)
    bad = copy("duplicate-keys.yaml", tmp_path, "bad.yaml")
    run_bad = subprocess.run(
        [*_command(), "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run_bad.returncode == 1, run_bad.stderr
    assert run_bad.stderr == ""
    assert run_bad.stdout.splitlines() == [
        f"{bad}:25:15: error: spec.template.spec.containers[0].ports[0].containerPort: "
        "duplicate key 'containerPort': already set at line 23 of this mapping (YAML would "
        "silently keep only one: remove or rename one of them)",
        f"{bad}:26:15: error: spec.template.spec.containers[0].ports[0].name: duplicate key "
        "'name': already set at line 24 of this mapping (YAML would silently keep only one: "
        "remove or rename one of them)",
        "4 object(s) in 2 file(s): invalid, 2 error(s), 0 warning(s)",
    ]

    run_stdin = subprocess.run(
        [*_command(), "validate", "-o", "json", "-"],
        input=good.read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert run_stdin.returncode == 0, run_stdin.stderr
    assert json.loads(run_stdin.stdout)["objects"] == 3

    run_missing = subprocess.run(
        [*_command(), "validate", str(tmp_path / "gone")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run_missing.returncode == 2
    assert "no such file or directory" in run_missing.stderr
    assert "Traceback" not in run_missing.stdout + run_missing.stderr
