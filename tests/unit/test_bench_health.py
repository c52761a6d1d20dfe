"""bench.health's pure parts: its manifests are valid and carry the probes asked for, its
targets read the results, its CPU readers parse /proc."""

from __future__ import annotations

import os

from bench.health import health_targets, probed_manifests, process_cpu
from reconciler.check.validate import validate
from reconciler.source.load import parse_text


def test_the_manifests_are_valid_with_and_without_probes() -> None:
    for text in (probed_manifests(3, 1, 2, 31999), probed_manifests(100, 10, 3, liveness=True)):
        result = validate(parse_text(text, "bench.yaml"))
        assert result.valid and not result.diagnostics, [str(d) for d in result.diagnostics]
    probed = probed_manifests(2, 10, 3, liveness=True)
    assert "readinessProbe" in probed and "livenessProbe" in probed
    assert "Probe" not in probed_manifests(2, 0, 3, liveness=True)
    assert "kind: Service" not in probed and "nodePort: 31999" in probed_manifests(1, 1, 2, 31999)


def test_targets_follow_the_results_and_what_did_not_run_is_not_measured() -> None:
    rows = health_targets({"reaction": {"worst_per_bound": 0.8}, "cpu": {}})
    assert [(r["status"], r["value"]) for r in rows] == [("PASS", 0.8), ("NOT MEASURED", None)]
    rows = health_targets({"reaction": {"worst_per_bound": 1.3}, "cpu": {"ratio": 80.0}})
    assert [r["status"] for r in rows] == ["FAIL", "FAIL"]


def test_process_cpu_reads_this_process() -> None:
    assert process_cpu(os.getpid()) >= 0.0
    assert process_cpu(os.getpid(), children=True) >= process_cpu(os.getpid())
    assert process_cpu(-1) == 0.0
