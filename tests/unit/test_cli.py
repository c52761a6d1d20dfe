"""``reconciler validate``: exit codes, the three output formats, stdin, the default path;
and the command's surface: every verb listed with its help, the shared options read alike
by every verb, ``validate`` starting without docker.

Driven through click's CliRunner (in process) and through the installed command in a
subprocess; nothing is mocked.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.cli.group import LAZY_COMMANDS

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
#: What the valid fixtures need of the operator (they use host paths, ports and namespaces).
VALID_FLAGS = ("--policy", "privileged")


def test_valid_manifests_exit_0_with_a_summary() -> None:
    result = run(*VALID_FLAGS, str(VALID))
    assert result.exit_code == 0, result.output
    assert result.output == "20 object(s) in 8 file(s): valid, 0 error(s), 0 warning(s)\n"


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
    result = run(*VALID_FLAGS, "--output", "json", str(VALID))
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "valid": True,
        "objects": 20,
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
    result = run(*VALID_FLAGS, "-o", "json", "-", stdin=(VALID / "log-agent.json").read_bytes())
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


# -- the command's surface ----------------------------------------------------------------------
VERBS = [*(v for v in LAZY_COMMANDS if v != "images"), "images busybox", "images forwarder"]
#: RECONCILER_* variables that the tests below set, cleared first so the caller's do not leak in
TEST_ENV = [
    *("INSTANCE", "HOSTS", "INFRA_IMAGE", "FORWARDER_IMAGE", "CLUSTER_CIDR", "HOST_GRACE"),
    *("PRUNE", "GRACE_PERIOD", "MAX_PRUNE", "ALLOW_MASS_PRUNE", "CONCURRENCY", "SOURCE", "CONFIG"),
]
SHARED_ENV = {
    "RECONCILER_INSTANCE": "from-env",
    "RECONCILER_HOSTS": "/etc/reconciler/hosts.yaml",
    "RECONCILER_INFRA_IMAGE": "infra:env",
    "RECONCILER_FORWARDER_IMAGE": "forwarder:env",
    "RECONCILER_CLUSTER_CIDR": "10.99.0.0/20",
    "RECONCILER_HOST_GRACE": "5",
}
SERVICE_ONLY_ENV = {
    "RECONCILER_PRUNE": "false",
    "RECONCILER_GRACE_PERIOD": "7",
    "RECONCILER_MAX_PRUNE": "3",
    "RECONCILER_ALLOW_MASS_PRUNE": "1",
    "RECONCILER_CONCURRENCY": "2",
}
#: each verb with the arguments it cannot start without
ARGS = {"get": ["pods"], "images busybox": ["sample/x:1"], "run": ["--source", "/srv/m"]}


def command(verb: str) -> click.Command:
    found: click.Command | None = cli
    for name in verb.split():
        assert isinstance(found, click.Group)
        found = found.get_command(click.Context(cli), name)
    assert found is not None, verb
    return found


def params(verb: str, env: Mapping[str, str], args: Sequence[str] = ()) -> dict[str, Any]:
    """The values ``verb`` would run with (flags, env vars, defaults), without running it."""
    clean: dict[str, str | None] = {f"RECONCILER_{name}": None for name in TEST_ENV}
    with CliRunner(env={**clean, **env}).isolation():
        parent = click.Context(cli, info_name="reconciler")
        ctx = command(verb).make_context(verb, [*ARGS.get(verb, []), *args], parent=parent)
        return dict(ctx.params)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb: str) -> None:
    result = CliRunner().invoke(cli, [*verb.split(), "--help"], prog_name="reconciler")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: reconciler {verb} ")


def test_the_group_lists_every_verb_and_each_module_defines_its_own() -> None:
    listed = CliRunner().invoke(cli, ["--help"]).output
    for verb, module in LAZY_COMMANDS.items():
        assert f"\n  {verb} " in listed, verb
        importlib.import_module(module)
        callback = cli.commands[verb].callback
        assert callback is not None and callback.__module__ == module, verb


def test_validate_starts_without_docker_git_or_the_http_server() -> None:
    code = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n"
        f"    main(['validate', '--policy', 'privileged', {str(VALID)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "heavy = ('docker', 'git', 'requests', 'urllib3', 'watchdog', 'prometheus_client',\n"
        "         'http.server', 'reconciler.engine', 'reconciler.apply', 'reconciler.daemon')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("verb", ["diff", "apply", "get", "down", "run"])
def test_the_shared_options_read_the_same_env_vars_in_every_verb(verb: str) -> None:
    got = params(verb, SHARED_ENV)
    assert (got["instance"], got["hosts_file"]) == ("from-env", "/etc/reconciler/hosts.yaml")
    if verb in ("diff", "apply", "run"):
        assert (got["infra_image"], got["forwarder_image"]) == ("infra:env", "forwarder:env")
        assert (got["cluster_cidr"], got["host_grace"]) == ("10.99.0.0/20", 5.0)


def test_images_read_the_hosts_and_forwarder_image_env_vars() -> None:
    assert params("images busybox", SHARED_ENV)["hosts_file"] == "/etc/reconciler/hosts.yaml"
    assert params("images forwarder", SHARED_ENV)["image"] == "forwarder:env"


def test_the_service_only_env_vars_are_read_by_run_alone() -> None:
    names = ("prune", "grace_period", "max_prune", "allow_mass_prune", "concurrency")
    apply = params("apply", SERVICE_ONLY_ENV)
    assert tuple(apply[n] for n in names) == (True, 10, 20, False, 8)
    run_ = params("run", SERVICE_ONLY_ENV)
    assert tuple(run_[n] for n in names) == (False, 7, 3, True, 2)


def test_an_empty_env_var_counts_as_unset() -> None:
    empty = dict.fromkeys(SHARED_ENV, "")
    for verb in ("diff", "run"):
        got = params(verb, empty)
        assert (got["instance"], got["hosts_file"], got["host_grace"]) == ("default", None, 60.0)
        assert got["infra_image"] == "reconciler/pause:1"
        assert got["forwarder_image"].startswith("reconciler/forwarder:")


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({"RECONCILER_HOST_GRACE": "soon"}, "Invalid value for '--host-grace'"),
        ({"RECONCILER_CLUSTER_CIDR": "10.1.2.3/99"}, "Invalid value for --cluster-cidr"),
    ],
)
def test_a_bad_env_value_is_a_usage_error_before_any_host_is_asked(
    env: dict[str, str], wanted: str
) -> None:
    result = CliRunner(env={"DOCKER_HOST": "tcp://192.0.2.1:1", **env}).invoke(cli, ["diff"])
    assert result.exit_code == 2, result.output
    assert wanted in result.output
    assert "internal error" not in result.output


def test_the_one_shot_verbs_cap_the_grace_period_at_an_hour_and_run_does_not() -> None:
    with pytest.raises(click.BadParameter, match="0<=x<=3600"):
        params("apply", {}, ["--grace-period", "5000"])
    assert params("run", {}, ["--grace-period", "5000"])["grace_period"] == 5000


def test_a_shared_option_has_one_help_text_in_every_verb() -> None:
    """Declared once (``cli.options``), a flag reads the same in the ``--help`` of every verb
    that takes it (diff's --prune, which removes nothing, and the range of --grace-period
    excepted)."""
    shared = (
        *("--hosts TEXT", "--instance TEXT", "--infra-image TEXT", "--forwarder-image TEXT"),
        *("--cluster-cidr TEXT", "--host-grace FLOAT RANGE", "--max-prune INTEGER RANGE"),
        *("--allow-mass-prune", "--concurrency INTEGER RANGE", "--url TEXT"),
    )
    records: dict[str, set[tuple[str, str]]] = {flag: set() for flag in shared}
    verbs: dict[str, int] = dict.fromkeys(shared, 0)
    for verb in VERBS:
        ctx = click.Context(command(verb), info_name=verb)
        for param in command(verb).params:
            record = param.get_help_record(ctx)
            if record and record[0] in records:
                records[record[0]].add(record)
                verbs[record[0]] += 1
    assert {flag: len(found) for flag, found in records.items()} == dict.fromkeys(shared, 1)
    assert all(count >= 2 for count in verbs.values()), verbs


@pytest.mark.parametrize(
    ("verb", "module"),
    [("diff", "reconciler.cli.diff_apply"), ("apply", "reconciler.cli.diff_apply"),
     ("run", "reconciler.cli.run")],
)  # fmt: skip
def test_the_observe_timeout_s_default_is_the_observer_s(verb: str, module: str) -> None:
    """options.observe_timeout repeats the observer's default (importing apply/ there would
    load it for `validate` too): the two must agree."""
    from reconciler.apply.observer import DEFAULT_TIMEOUT

    importlib.import_module(module)
    (option,) = [p for p in cli.commands[verb].params if p.name == "observe_timeout"]
    assert option.default == DEFAULT_TIMEOUT
