"""The pure parts of bench/hostile.py: its inputs have the sizes it says and are the inputs
it says (the ordinary one valid, each hostile one read to its end); the verdict. No timing.
"""

from __future__ import annotations

from bench.hostile import KINDS, MB, Row, hostile, ordinary, summarise
from reconciler.check.validate import validate
from reconciler.source.load import parse_text


def test_the_ordinary_input_is_valid_and_the_size_asked() -> None:
    text = ordinary(MB // 10)
    assert MB // 10 - 2000 < len(text) <= MB // 10
    result = validate(parse_text(text, "ordinary.yaml"))
    assert result.diagnostics == []
    assert len(result.manifests) > 100


def test_every_hostile_input_is_the_size_asked_and_read_to_its_end() -> None:
    for kind in KINDS:
        text, name = hostile(kind, MB // 10)
        assert abs(len(text) - MB // 10) < MB // 50, kind
        loaded = parse_text(text, name, is_json=name.endswith(".json"))
        # read to its end: either an object, or an error about the hostile value itself
        assert loaded.manifests or loaded.diagnostics, kind


def test_the_verdict_holds_validation_to_the_ratio_and_both_to_linear_growth() -> None:
    rows = [Row("ordinary", MB, 0.001, 1.0), Row("ordinary", 10 * MB, 0.01, 10.0)]
    for kind in KINDS:
        rows += [Row(kind, MB, 0.02, 0.5), Row(kind, 10 * MB, 0.2, 5.0)]
    verdicts = {(r["input"], r["stage"]): r["status"] for r in summarise(rows, (0, 0))["results"]}
    assert set(verdicts.values()) == {"PASS"}  # redaction 20x ordinary, but linear: a pass
    rows[-1] = Row(KINDS[-1], 10 * MB, 2.0, 50.0)  # quadratic growth, and 5x ordinary
    verdicts = {(r["input"], r["stage"]): r["status"] for r in summarise(rows, (0, 0))["results"]}
    assert verdicts[(KINDS[-1], "validate")] == verdicts[(KINDS[-1], "redact")] == "FAIL"
