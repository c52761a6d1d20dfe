"""Kubernetes compatibility: what ``kubernetes-validate --strict`` says, the reconciler follows.

* every sample-repo manifest and every fixture under tests/fixtures/valid passes
  ``kubernetes-validate --strict`` (the reconciler's manifests stay real Kubernetes);
* every fixture under tests/fixtures/invalid that ``kubernetes-validate --strict`` rejects,
  ``reconciler validate`` rejects too (exit 1): the reconciler is never laxer than the API
  schema (it may be stricter: it checks what the API server checks beyond the schema);
* tests/fixtures/compat holds manifests made to be rejected by the Kubernetes schema
  (unknown fields, wrong types, bad enums, missing required fields); the reconciler must
  reject each, with an error at (or under) the field Kubernetes names.

``kubernetes-validate`` runs in-process: the same schema files and the same
Draft202012Validator its CLI builds, cached per kind. One test runs the real CLI on the
same files to check that the in-process verdicts are the CLI's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from reconciler.check.validate import validate
from reconciler.cli import cli
from reconciler.source.load import load_paths

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
VALID, INVALID, COMPAT = FIXTURES / "valid", FIXTURES / "invalid", FIXTURES / "compat"
SAMPLE = ROOT / "sample-repo"
K8S_VERSION = kv.latest_version()
CLI = Path(sys.executable).with_name("kubernetes-validate")
SUFFIXES = (".yaml", ".yml", ".json")


def _manifests_in(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    return [path]


def _entries(directory: Path) -> list[Path]:
    """Fixture units in a directory: manifest files, and sub-directories (one tree each)."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if not p.name.startswith(".")
        and not p.name.endswith(".expect.json")
        and (p.is_dir() or p.suffix in SUFFIXES)
    )


def _params(directory: Path) -> list[Any]:
    """One parameter per fixture; a single skip when the directory does not exist yet."""
    if not directory.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{directory} does not exist"))]
    return [pytest.param(p, id=p.relative_to(ROOT).as_posix()) for p in _entries(directory)]


# -- kubernetes-validate, in-process ----------------------------------------------------------
class _K8sLoader(yaml.SafeLoader):
    """The loader the CLI uses: safe, with '=' read as a string (pyyaml issue 89)."""


_K8sLoader.add_constructor(
    "tag:yaml.org,2002:value",
    lambda loader, node: str(node.value),  # type: ignore[attr-defined]
)


@cache
def _k8s_validator(kind: str, api_version: str) -> Draft202012Validator | None:
    """The validator ``kubernetes_validate.validate(strict=True)`` builds; None: no schema."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    directory = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"
    try:
        schema = kv.schema_contents(f"{directory}/{kind.lower()}-{group_version}.json", K8S_VERSION)
    except FileNotFoundError:
        return None
    definitions = kv.schema_contents(f"{directory}/_definitions.json", K8S_VERSION)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return Draft202012Validator(schema, registry=registry)


#: Past this many nodes (aliases expanded) jsonschema spends minutes printing the value in
#: its error message; the reconciler refuses such documents (its alias-expansion budget).
MAX_NODES = 100_000


def _expanded_size(value: Any) -> float:
    """Nodes in ``value`` counting every alias expansion; inf for a recursive value."""
    sizes: dict[int, float] = {}
    busy: set[int] = set()

    def size(node: Any) -> float:
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in busy:
            return float("inf")
        if key not in sizes:
            busy.add(key)
            children = node.values() if isinstance(node, dict) else node
            sizes[key] = 1 + sum(size(child) for child in children)
            busy.discard(key)
        return sizes[key]

    return size(value)


def _documents(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    return [d for d in yaml.load_all(text, Loader=_K8sLoader) if d]


@cache
def k8s_problems(path: Path) -> tuple[str, ...]:
    """What ``kubernetes-validate --strict FILE`` reports as errors; () when it passes.

    Like the CLI: a file that does not parse is an error; an object without a schema (an
    unknown kind) is only a warning; an object that cannot be checked at all is an error.
    An alias bomb counts as an error without asking jsonschema (see MAX_NODES).
    """
    try:
        documents = _documents(path)
    except Exception as exc:  # the CLI exits with "Couldn't parse YAML from file"
        return (f"parse: {type(exc).__name__}",)
    problems: list[str] = []
    for document in documents:
        if MAX_NODES < _expanded_size(document) < float("inf"):  # recursive: jsonschema fails
            problems.append(f"expands to more than {MAX_NODES} nodes")
            continue
        try:
            validator = _k8s_validator(document["kind"], document["apiVersion"])
            if validator is None:
                continue  # WARN ... Couldn't find schema: the CLI passes the file
            error = next(validator.iter_errors(document), None)
        except Exception as exc:  # "could not be validated": the CLI exits 2
            problems.append(f"could not be validated: {type(exc).__name__}")
            continue
        if error is not None:
            where = ".".join(str(part) for part in error.absolute_path)
            problems.append(f"{where}: {error.message[:200]}")
    return tuple(problems)


def k8s_error_paths(path: Path) -> list[tuple[Any, ...]]:
    """The field path of every schema error in every object of ``path``."""
    paths = []
    for document in _documents(path):
        validator = _k8s_validator(document["kind"], document["apiVersion"])
        if validator is not None:
            for error in validator.iter_errors(document):
                paths.append(tuple(error.absolute_path))
    return paths


def _list_items(path: Path) -> list[dict[str, Any]]:
    """Objects inside ``kind: List`` documents (the CLI only checks the List itself)."""
    items: list[dict[str, Any]] = []
    for document in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_K8sLoader):
        if isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
            items.extend(i for i in document.get("items") or [] if isinstance(i, dict))
    return items


def reconciler_exit(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


# -- what passes Kubernetes ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.relative_to(ROOT).as_posix()) for p in _manifests_in(SAMPLE)],
)
def test_sample_manifests_pass_kubernetes_validate_strict(path: Path) -> None:
    assert k8s_problems(path) == ()
    assert len(k8s_error_paths(path)) == 0


@pytest.mark.parametrize("path", _params(VALID))
def test_valid_fixtures_pass_kubernetes_validate_strict(path: Path) -> None:
    for manifest in _manifests_in(path):
        assert k8s_problems(manifest) == (), manifest
        for item in _list_items(manifest):  # stricter than the CLI: each item of a List too
            validator = _k8s_validator(item["kind"], item["apiVersion"])
            assert validator is not None, item["kind"]
            assert [e.message for e in validator.iter_errors(item)] == [], item


def test_the_valid_fixtures_are_there() -> None:
    if not VALID.is_dir():
        pytest.skip(f"{VALID} does not exist yet")
    assert _entries(VALID), f"{VALID} holds no manifests"


# -- what Kubernetes rejects --------------------------------------------------------------------
@pytest.mark.parametrize("path", _params(INVALID))
def test_what_kubernetes_rejects_the_reconciler_rejects(path: Path) -> None:
    rejected = {m.name: k8s_problems(m) for m in _manifests_in(path)}
    rejected = {name: problems for name, problems in rejected.items() if problems}
    code, output = reconciler_exit(path)
    assert code in (0, 1), output
    if rejected:
        assert code == 1, f"kubernetes-validate --strict rejects {rejected}; reconciler:\n{output}"


def test_kubernetes_rejects_enough_invalid_fixtures() -> None:
    """The implication above must not hold only because Kubernetes accepts everything."""
    if not INVALID.is_dir():
        pytest.skip(f"{INVALID} does not exist yet")
    rejected = [p for p in _entries(INVALID) if any(k8s_problems(m) for m in _manifests_in(p))]
    assert len(rejected) >= 5, rejected


COMPAT_FIXTURES = _manifests_in(COMPAT)


def test_the_compat_fixtures_are_there() -> None:
    assert len(COMPAT_FIXTURES) >= 12
    assert any(p.suffix == ".json" for p in COMPAT_FIXTURES)


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in COMPAT_FIXTURES])
def test_compat_fixture_is_rejected_by_both(path: Path) -> None:
    problems = k8s_problems(path)
    assert problems, "kubernetes-validate --strict accepts it: not a compatibility fixture"
    code, output = reconciler_exit(path)
    assert code == 1, output
    # the reconciler names the field Kubernetes names (or one under it: an unknown key)
    ours = [d.path for d in validate(load_paths([str(path)])).errors]
    for k8s_path in k8s_error_paths(path):
        wanted = _format(k8s_path)
        assert any(
            not wanted or p == wanted or p.startswith((wanted + ".", wanted + "[")) for p in ours
        ), (wanted, ours)


def _format(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- the in-process verdicts are the CLI's --------------------------------------------------------
def _cli_crashes_on(path: Path) -> bool:
    """Whether the CLI stops on ``path``: no YAML, or an error in an object it cannot name."""
    problems = k8s_problems(path)
    if any(p.startswith("parse:") for p in problems):
        return True
    if not problems:
        return False
    for document in _documents(path):
        try:
            kv.kn(document)
        except Exception:
            return True
    return False


def test_in_process_verdicts_match_the_kubernetes_validate_cli() -> None:
    files = _manifests_in(SAMPLE) + COMPAT_FIXTURES
    for directory in (VALID, INVALID):
        for entry in _entries(directory):
            files += _manifests_in(entry)
    # an alias bomb keeps the CLI busy for minutes (it prints the expanded value): not run
    files = [f for f in files if not any(p.startswith("expands to") for p in k8s_problems(f))]
    alone = [f for f in files if _cli_crashes_on(f)]
    batch = [f for f in files if f not in alone]
    # one process for the batch and one per file that stops the CLI, all at once
    processes = [
        subprocess.Popen(
            [str(CLI), "--strict", "--quiet", *map(str, group)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for group in [batch, *([path] for path in alone)]
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    stdout, stderr = outputs[0]
    assert "Traceback" not in stderr, stderr[-3000:]
    failed = {line.split(" ", 2)[1] for line in stdout.splitlines() if line.startswith("ERROR ")}
    for path in batch:
        assert (str(path) in failed) == bool(k8s_problems(path)), (path, stdout[-2000:])
    assert (processes[0].returncode != 0) == bool(failed), stdout[-2000:] + stderr[-2000:]
    assert len(alone) <= 12, alone  # each costs a process start: keep the list short
    for path, process, (out, _) in zip(alone, processes[1:], outputs[1:], strict=True):
        # the CLI stops (exit 1) or crashes on these: it does not pass them either way
        assert (process.returncode != 0) == bool(k8s_problems(path)), (path, out)
