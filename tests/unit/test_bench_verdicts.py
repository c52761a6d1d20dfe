"""Honest benchmarks: a target whose peer could not run is NOT MEASURED, and a run with such a
target is never a PASS, in every bench module (pure parts only, no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import verdicts
from bench.scale import report
from bench.validate import Timing, generate_tree, print_report, summarise


def test_overall_is_a_pass_only_when_everything_was_measured_and_passed() -> None:
    assert verdicts.overall(["PASS", "PASS"]) == "PASS"
    assert verdicts.overall(["PASS", "FAIL", "NOT MEASURED"]) == "FAIL"
    assert verdicts.overall(["PASS", "NOT MEASURED"]) == "NOT MEASURED"
    assert verdicts.overall([]) == "NOT MEASURED"
    assert verdicts.status(None) == "NOT MEASURED"
    assert verdicts.overall_line(["PASS", "NOT MEASURED"]) == (
        "== overall: NOT MEASURED (1 of 2 targets measured) =="
    )


def test_validate_without_its_peer_reports_the_ratio_not_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = generate_tree(tmp_path, files=4, docs_per_file=2, seed=1)
    ours = [Timing(wall=0.5, cpu=0.4)]
    result = summarise(tree, ours, tree.files[:1], [], (0.1, 0.2), "kubernetes-validate: gone")
    assert result["ratio"] is None and result["kubernetes_validate"] is None
    statuses = [t["status"] for t in result["targets"].values()]
    assert statuses == ["NOT MEASURED", "NOT MEASURED"]  # a small run: the rate is not either
    assert verdicts.overall(statuses) != "PASS"
    print_report(result)
    printed = capsys.readouterr().out
    assert "could not run: kubernetes-validate: gone" in printed
    assert "== overall: NOT MEASURED (0 of 2 targets measured) ==" in printed
    with_peer = summarise(tree, ours, tree.files[:1], [Timing(wall=1.0, cpu=1.0)], (0.1, 0.2))
    assert with_peer["targets"]["ratio"]["status"] in ("PASS", "FAIL")


def test_scale_without_its_10k_size_is_not_a_pass(capsys: pytest.CaptureFixture[str]) -> None:
    row = {"pods": 1000, "containers": 2000, "desired_s": 0.01, "plan_s": 0.01, "pass_s": 0.1}
    targets = report([{**row, "rss_mb": 50.0}])
    assert [t["result"] for t in targets] == ["NOT MEASURED", "NOT MEASURED"]
    assert "== overall: NOT MEASURED (0 of 2 targets measured) ==" in capsys.readouterr().out
