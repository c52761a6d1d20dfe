"""Smoke tests of bench/rollout.py's pure parts (no Docker, no timing)."""

from __future__ import annotations

from bench.rollout import ROLLOUT_TARGET, deployment_manifest, report
from reconciler.check.validate import validate
from reconciler.desire.deployments import deployment_spec
from reconciler.desire.settings import Settings
from reconciler.source.load import parse_text


def test_the_manifest_is_a_valid_deployment_whose_version_is_a_new_revision() -> None:
    specs = []
    for version in ("1", "2"):
        result = validate(parse_text(deployment_manifest(10, "bench/app:1", version), "d.yaml"))
        assert result.valid, [str(d) for d in result.diagnostics]
        specs.append(deployment_spec(result.manifests[0], Settings(), False))
    assert specs[0].replicas == 10 and (specs[0].max_surge, specs[0].max_unavailable) == (3, 2)
    assert specs[0].template_hash != specs[1].template_hash


def test_the_report_states_the_ratio_and_the_verdict() -> None:
    text = report(
        {
            "replicas": 10,
            "rounds": 3,
            "concurrency": 8,
            "floor_create_s": 2.0,
            "rollout_default_s": 5.0,
            "rollout_default_passes": 5,
            "rollout_surge_all_s": 4.0,
            "rollout_surge_all_passes": 3,
            "ratio_default": 2.5,
            "ratio_surge_all": 2.0,
            "target_max_ratio": ROLLOUT_TARGET,
            "pass": True,
        }
    )
    assert "2.50x floor" in text and "create floor: PASS" in text
    assert text.endswith("== overall: PASS (1 of 1 targets measured) ==")
