"""The sample repository is what a newcomer applies first: it must always be valid."""

from pathlib import Path

from reconciler.check.validate import validate
from reconciler.source.load import load_paths

SAMPLE = Path(__file__).resolve().parents[2] / "sample-repo"


def test_sample_repo_is_valid_with_no_warnings() -> None:
    result = validate(load_paths([str(SAMPLE)]))
    assert result.diagnostics == []
    kinds = sorted(m.kind for m in result.manifests)
    assert kinds == [
        "Pod",
        "ReplicationController",
        "ReplicationController",
        "Service",
        "Service",
        "Service",
    ]


def test_sample_repo_has_one_folder_per_app() -> None:
    apps = sorted(p.name for p in SAMPLE.iterdir() if p.is_dir())
    assert apps == ["db", "frontend", "keystone"]
