"""Every fixture under tests/fixtures, through the real loader and validator (no mocks).

``invalid/<name>.yaml`` (or a directory ``invalid/<name>/`` when the problem spans files)
comes with ``invalid/<name>.expect.json``: the diagnostics it must produce, as a list of
``{"severity", "line", "column" (optional), "path", "message_contains", "kind", "name",
"file" (optional, relative to a directory fixture)}``. In ``message_contains``, ``{file}`` and
``{dir}`` stand for the fixture's path and its directory as given to the loader. Every
expected diagnostic must be reported, and no error may be reported that is not expected.

``valid/`` holds manifests that must produce no diagnostic at all, that together use every
field the reconciler honours, and that real Kubernetes (kubernetes-validate, strict) accepts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from reconciler.check.policy import Level, Policy
from reconciler.check.schemas import SCHEMA_FILES, schema_documents, schema_id
from reconciler.check.validate import validate
from reconciler.core.model import Diagnostic
from reconciler.render.diagnostics import diagnostic_line
from reconciler.source.load import LIST_KINDS, MAX_FILE_BYTES, load_paths

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INVALID = FIXTURES / "invalid"
VALID = FIXTURES / "valid"
EXPECT_SUFFIX = ".expect.json"
KUBERNETES_VERSION = "1.37.0"

#: The operator's policy the fixtures are checked with: they test the schemas and the
#: semantic checks, and use every honoured field (host paths, ports and namespaces, privileged
#: containers); the policy's own rules are tested in test_policy.py.
FIXTURE_POLICY = Policy(Level.PRIVILEGED)

#: Honoured fields that no valid fixture may use: real Kubernetes v1 rejects them.
NOT_IN_REAL_KUBERNETES = {"ServiceSpec.publicIPs", "Secret.sops"}


# -- invalid fixtures -------------------------------------------------------------------------
def _sidecars() -> list[Path]:
    return sorted(INVALID.glob("*" + EXPECT_SUFFIX))


def _fixture_for(sidecar: Path) -> Path:
    stem = sidecar.name.removesuffix(EXPECT_SUFFIX)
    found = [
        path
        for path in (INVALID / stem, *(INVALID / f"{stem}{s}" for s in (".yaml", ".yml", ".json")))
        if path.exists()
    ]
    assert len(found) == 1, f"{sidecar.name}: expected exactly one fixture, found {found}"
    return found[0]


def _matches(d: Diagnostic, want: Mapping[str, Any], fixture: Path) -> bool:
    directory = fixture if fixture.is_dir() else fixture.parent
    file = str(directory / want["file"]) if "file" in want else str(fixture)
    message = want["message_contains"].replace("{file}", str(fixture))
    message = message.replace("{dir}", str(directory))
    return (
        d.location.file == file
        and d.severity.value == want["severity"]
        and d.location.line == want["line"]
        and ("column" not in want or d.location.column == want["column"])
        and d.path == want["path"]
        and d.kind == want["kind"]
        and d.name == want["name"]
        and message in d.message
    )


def _report(diagnostics: list[Diagnostic]) -> str:
    return "\n".join(diagnostic_line(d) for d in diagnostics) or "(no diagnostics)"


@pytest.mark.parametrize(
    "sidecar", _sidecars(), ids=[p.name.removesuffix(EXPECT_SUFFIX) for p in _sidecars()]
)
def test_invalid_fixture_reports_exactly_what_is_expected(sidecar: Path) -> None:
    fixture = _fixture_for(sidecar)
    expected: list[dict[str, Any]] = json.loads(sidecar.read_text(encoding="utf-8"))
    assert expected, f"{sidecar.name} lists no diagnostic"
    assert all(w["severity"] in ("error", "warning") for w in expected)

    result = validate(load_paths([str(fixture)]), FIXTURE_POLICY)

    got = _report(result.diagnostics)
    for want in expected:
        assert any(_matches(d, want, fixture) for d in result.diagnostics), (
            f"missing {json.dumps(want)}\nreported:\n{got}"
        )
    unexpected = [d for d in result.errors if not any(_matches(d, w, fixture) for w in expected)]
    assert not unexpected, f"unexpected errors:\n{_report(unexpected)}"
    if any(w["severity"] == "error" for w in expected):
        assert not result.valid
    else:
        assert result.valid, "a fixture that expects only warnings must still be valid"


def test_every_invalid_fixture_has_a_sidecar() -> None:
    fixtures = {
        path.name.removesuffix(path.suffix) if path.is_file() else path.name
        for path in INVALID.iterdir()
        if not path.name.endswith(EXPECT_SUFFIX)
    }
    sidecars = {p.name.removesuffix(EXPECT_SUFFIX) for p in _sidecars()}
    assert fixtures == sidecars
    assert len(fixtures) >= 40


def test_file_over_the_size_limit_is_one_error_at_line_1(tmp_path: Path) -> None:
    """Generated here, not committed: the limit is 8 MiB."""
    big = tmp_path / "huge.yaml"
    pod = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n"
    big.write_bytes(pod + b"#" * (MAX_FILE_BYTES + 1 - len(pod)))

    result = validate(load_paths([str(big)]))

    assert [(d.location.file, d.location.line, d.location.column) for d in result.errors] == [
        (str(big), 1, 1)
    ]
    assert "file is 8,388,609 bytes, over the 8,388,608-byte limit" in result.errors[0].message
    assert result.manifests == []


# -- valid fixtures -----------------------------------------------------------------------------
VALID_FILES = sorted(p for p in VALID.iterdir() if p.is_file())


def test_valid_fixtures_cover_several_shapes() -> None:
    suffixes = {p.suffix for p in VALID_FILES}
    assert {".yaml", ".yml", ".json"} <= suffixes
    texts = {p.name: p.read_text(encoding="utf-8") for p in VALID_FILES}
    assert any(t.count("\n---") >= 2 for t in texts.values()), "no multi-document file"
    assert any("kind: List" in t for t in texts.values()), "no kind: List file"
    assert any("namespace:" in t for t in texts.values()), "no namespaced object"


@pytest.mark.parametrize("path", VALID_FILES, ids=[p.name for p in VALID_FILES])
def test_valid_fixture_alone_has_no_diagnostics(path: Path) -> None:
    result = validate(load_paths([str(path)]), FIXTURE_POLICY)
    assert result.diagnostics == [], _report(result.diagnostics)
    assert result.manifests


def test_valid_fixtures_together_have_no_diagnostics() -> None:
    result = validate(load_paths([str(VALID)]), FIXTURE_POLICY)
    assert result.diagnostics == [], _report(result.diagnostics)
    refs = sorted(str(m.ref) for m in result.manifests)
    assert refs == [
        "ConfigMap/shop/app-config",
        "Deployment/shop",
        "Deployment/worker",
        "PersistentVolumeClaim/shop/app-data",
        "Pod/keystone-db",
        "Pod/log-agent",
        "Pod/node-agent",
        "Pod/shop/app",
        "Pod/staging/cache-probe",
        "ReplicationController/keystone-rc",
        "ReplicationController/probed",
        "ReplicationController/staging/cache",
        "ReplicationController/web",
        "Secret/shop/app-secrets",
        "Secret/shop/registry",
        "Service/db",
        "Service/keystone-public",
        "Service/shop",
        "Service/staging/cache",
        "Service/web",
    ]


def _objects(path: Path) -> Iterator[dict[str, Any]]:
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if document is None:
            continue
        if document.get("kind") in LIST_KINDS:
            yield from document["items"]
        else:
            yield document


@pytest.mark.parametrize("path", VALID_FILES, ids=[p.name for p in VALID_FILES])
def test_valid_fixture_passes_real_kubernetes_strict(path: Path) -> None:
    """Each object (List items included) against the real v1 schemas, strict."""
    objects = list(_objects(path))
    assert objects
    for body in objects:
        try:
            kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            first = str(exc).splitlines()[0]
            pytest.fail(f"{path.name}: {body['kind']}/{body['metadata']['name']}: {first}")


def test_valid_fixtures_pass_the_kubernetes_validate_command() -> None:
    command = Path(sys.executable).with_name("kubernetes-validate")
    assert command.exists(), "kubernetes-validate is a dev dependency: pip install -e .[dev]"
    run = subprocess.run(
        [str(command), "--strict", *map(str, VALID_FILES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "passed for resource pod/log-agent" in run.stdout


def _defs() -> dict[str, Any]:
    """Every schema's ``$defs`` by name (``_defs.json``'s, and a kind's own: Deployment)."""
    defs: dict[str, Any] = {}
    for document in schema_documents().values():
        defs.update(document.get("$defs", {}))
    return defs


def _resolve(node: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any], str, bool]:
    ref = node.get("$ref")
    if ref is None:
        return node, where, False
    name = str(ref).rsplit("/", 1)[-1]
    return _defs()[name], name, True


def _honoured(node: Mapping[str, Any], where: str, out: set[str], seen: set[str]) -> None:
    node, where, is_ref = _resolve(node, where)
    if is_ref:
        if where in seen:
            return
        seen.add(where)
    for key, sub in node.get("properties", {}).items():
        if "x-unhonoured" not in sub:
            out.add(f"{where}.{key}")
            _honoured(sub, f"{where}.{key}", out, seen)
    if isinstance(node.get("items"), Mapping):
        _honoured(node["items"], where, out, seen)


def _used(node: Mapping[str, Any], where: str, value: Any, out: set[str]) -> None:
    node, where, _ = _resolve(node, where)
    if isinstance(value, dict):
        properties = node.get("properties", {})
        for key, item in value.items():
            if key in properties:
                out.add(f"{where}.{key}")
                _used(properties[key], f"{where}.{key}", item, out)
    elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
        for item in value:
            _used(node["items"], where, item, out)


def test_valid_fixtures_use_every_honoured_field() -> None:
    documents = schema_documents()
    honoured: set[str] = set()
    for kind in SCHEMA_FILES:
        _honoured(documents[schema_id(kind)], kind, honoured, set())
    assert honoured >= NOT_IN_REAL_KUBERNETES
    assert {"Container.image", "ContainerPort.hostIP", "Volume.emptyDir.sizeLimit"} <= honoured

    used: set[str] = set()
    for manifest in load_paths([str(VALID)]).manifests:
        _used(documents[schema_id(manifest.kind)], manifest.kind, manifest.body, used)

    assert not (used & NOT_IN_REAL_KUBERNETES)
    assert sorted(honoured - NOT_IN_REAL_KUBERNETES - used) == []
