"""First contact with a real repository: other YAML beside the manifests.

``.sourceignore`` files (gitignore syntax, read in every directory of the walk) and
``--exclude`` leave files out; a YAML document with neither apiVersion nor kind is one error
that names what to add. On real files in ``tmp_path``, no mocks.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.source.load import discover, load_paths

POD = """apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: busybox}]
"""
COMPOSE = 'version: "3"\nservices:\n  web:\n    image: nginx\n'
KUSTOMIZATION = (
    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [web.yaml]\n"
)


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def found(root: Path, *exclude: str) -> list[str]:
    return [str(Path(f).relative_to(root)) for f in discover([str(root)], exclude)]


def test_a_compose_file_is_one_error_that_says_what_to_add(tmp_path: Path) -> None:
    root = tree(tmp_path, {"web.yaml": POD, "docker-compose.yml": COMPOSE})
    result = load_paths([str(root)])
    [error] = result.diagnostics
    assert error.location.file.endswith("docker-compose.yml")
    assert (error.location.line, error.location.column) == (1, 1)
    assert "not a Kubernetes object (no apiVersion, no kind)" in error.message
    assert "add the line 'docker-compose.yml' to a .sourceignore file" in error.message
    assert "--exclude 'docker-compose.yml'" in error.message
    assert [m.name for m in result.manifests] == ["web"]


def test_sourceignore_at_the_root_leaves_files_out(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "web.yaml": POD,
            "docker-compose.yml": COMPOSE,
            "kustomization.yaml": KUSTOMIZATION,
            "ci/pipeline.yml": "steps: []\n",
            "apps/ci/keep.yaml": POD,
            ".sourceignore": "# not manifests\ndocker-compose.yml\nkustomization.yaml\n/ci/\n",
        },
    )
    assert found(root) == ["apps/ci/keep.yaml", "web.yaml"]  # the walk's order: by name
    assert load_paths([str(root)]).diagnostics == []


def test_gitignore_rules_negation_depth_and_nested_files(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "a.yaml": POD,
            "b.yml": POD,
            "keep.yml": POD,
            "sub/c.yml": POD,
            "sub/d.yaml": POD,
            "sub/deeper/e.yml": POD,
            ".sourceignore": "*.yml\n!keep.yml\n",
            # a deeper file overrides the root's, relative to its own directory
            "sub/.sourceignore": "!c.yml\nd.yaml\n",
        },
    )
    assert found(root) == ["a.yaml", "keep.yml", "sub/c.yml"]


def test_an_excluded_directory_is_not_entered_and_cannot_be_reentered(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {"charts/x/values.yaml": "replicaCount: 1\n", ".sourceignore": "charts/\n!charts/x/v*"},
    )
    assert found(root) == []


def test_exclude_globs_rank_above_sourceignore(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "web.yaml": POD,
            "docker-compose.yml": COMPOSE,
            "ops/compose.yaml": COMPOSE,
            ".sourceignore": "!docker-compose.yml\n",
        },
    )
    assert found(root, "docker-compose.yml", "compose.yaml") == ["web.yaml"]
    assert found(root, "/ops/") == ["docker-compose.yml", "web.yaml"]
    assert found(root, "*.y*ml", "!web.yaml") == ["web.yaml"]


def test_a_file_named_explicitly_is_read_whatever_the_rules(tmp_path: Path) -> None:
    root = tree(tmp_path, {"web.yaml": POD, ".sourceignore": "web.yaml\n"})
    assert found(root) == []
    assert discover([str(root / "web.yaml")], ["web.yaml"]) == [str(root / "web.yaml")]


def test_only_a_document_without_both_fields_is_not_a_manifest(tmp_path: Path) -> None:
    root = tree(tmp_path, {"half.yaml": "kind: Pod\nmetadata: {name: x}\n"})
    result = load_paths([str(root)])
    assert result.diagnostics == [] and [m.kind for m in result.manifests] == ["Pod"]


def test_validate_diff_and_get_take_exclude(tmp_path: Path) -> None:
    root = tree(tmp_path, {"web.yaml": POD, "docker-compose.yml": COMPOSE})
    runner = CliRunner()
    failing = runner.invoke(cli, ["validate", str(root)])
    assert failing.exit_code == 1
    assert "add the line 'docker-compose.yml' to a .sourceignore file" in failing.output
    passing = runner.invoke(cli, ["validate", "--exclude", "docker-compose.yml", str(root)])
    assert passing.exit_code == 0, passing.output
    by_env = runner.invoke(
        cli, ["validate", str(root)], env={"RECONCILER_EXCLUDE": "docker-compose.yml"}
    )
    assert by_env.exit_code == 0, by_env.output
    for verb in ("diff", "apply", "get"):
        shown = runner.invoke(cli, [verb, "--help"])
        assert "--exclude GLOB" in shown.output, verb


def test_a_sourceignore_link_is_not_followed(tmp_path: Path) -> None:
    # the tree is input from whoever can push: a .sourceignore that is a symbolic link (to
    # a file outside it, here) is not read, so it cannot hide manifests nor read the host
    outside = tmp_path / "outside"
    outside.write_text("web.yaml\n")
    root = tree(tmp_path / "repo", {"web.yaml": POD})
    (root / ".sourceignore").symlink_to(outside)
    assert found(root) == ["web.yaml"]
    (root / ".sourceignore").unlink()
    (root / ".sourceignore").write_text("web.yaml\n")
    assert found(root) == []
