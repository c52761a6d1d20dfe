"""The move to Kubernetes (docs/kubernetes.md) starts from the sample repository: every one of
its manifests must pass the real ``kubernetes-validate --strict`` command, object by object.

The command, not a library call: it is what docs/kubernetes.md tells a reader to run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from reconciler.source.load import discover, load_paths

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample-repo"
CLI = Path(sys.executable).with_name("kubernetes-validate")


def test_every_sample_manifest_passes_kubernetes_validate_strict() -> None:
    files = discover([str(SAMPLE)])
    objects = load_paths([str(SAMPLE)]).manifests
    assert files and objects
    completed = subprocess.run(
        [str(CLI), "--strict", *files],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    passed = re.findall(r"^INFO (\S+) passed for resource (\S+)/(\S+) against", output, re.M)
    assert sorted((f, n) for f, _, n in passed) == sorted((m.file, m.name) for m in objects), output
    assert "WARN" not in output and "ERROR" not in output, output


def test_the_guide_names_the_test_that_keeps_it_true() -> None:
    guide = (REPO / "docs" / "kubernetes.md").read_text()
    assert "tests/unit/test_kubernetes_move.py" in guide
    for kind in sorted({m.kind for m in load_paths([str(SAMPLE)]).manifests}):
        assert f"`{kind}`" in guide, kind
