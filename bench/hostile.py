"""Benchmark redaction and validation on hostile text against ordinary manifests of the
same size: a hostile repository must cost no more per byte than an honest one.

For each size (default 1 MB and 10 MB) it builds an ordinary input (the sample
repository's manifests, repeated with new names until the size is reached) and hostile
inputs of the same size, each aimed at one of the text handling paths that used to be, or
could be, super-linear:

- ``label``: one label value of the whole size (the 150 KB / 7 MB label of issue 14);
- ``userinfo``: ``://a@`` repeated (the URL redactor's worst case);
- ``schemes``: ``://`` repeated without an ``@``;
- ``base60``: one ``1:1:1:...`` number (PyYAML reads it in quadratic time);
- ``key``: one mapping key of the whole size, written twice (a duplicate-key message);
- ``blanks``: one value of spaces and ``-`` (the name rules' regular expressions);
- ``escapes``: a JSON document of ``\\ud83d\\ude00`` pairs and backslash runs (the JSON
  reader's surrogate rewriting).

Each is timed (best of ``--runs``, CPU seconds of this process, so that other load on the
machine counts less) through ``core.redact.redact`` and through ``source.load.parse_text``
and ``check.validate.validate`` (the pure stages: the 8 MiB limit of one file is the file
reader's, and would refuse a 10 MB input before any parsing). Targets, per hostile input:
its validation time ÷ the ordinary input's at the same size ≤ 2, and for both stages its
growth from the small to the large size ÷ the ordinary input's growth ≤ 1.5 (linear, like
the ordinary input). Redaction's ratio to the ordinary input is shown, not held: ordinary
manifests hold almost no URL, so redacting them is one substring test, while a text made
of nothing but URLs has a replacement every five bytes.

    .venv/bin/python -m bench.hostile                 # 1 MB and 10 MB, 3 runs
    .venv/bin/python -m bench.hostile --sizes 1,4 --runs 1 --json

Exit 0 whatever the figures (a missed target prints FAIL), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.check.validate import validate
from reconciler.core.redact import redact
from reconciler.source.load import parse_text

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample-repo"
MB = 1_000_000
TARGET_RATIO = 2.0
TARGET_GROWTH = 1.5

_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: hostile
  labels:
    app: {value}
spec:
  containers:
    - name: app
      image: sample/frontend:1.0
"""


def ordinary(size: int) -> str:
    """The sample repository's manifests, one copy per namespace (as teams would have them),
    repeated to ``size`` bytes."""
    documents = [p.read_text() for p in sorted(SAMPLE.rglob("*.yaml"))]
    parts: list[str] = []
    total, copy = 0, 0
    while total < size:
        for document in documents:
            text = document.replace("\nmetadata:\n", f"\nmetadata:\n  namespace: team-{copy}\n", 1)
            if copy:  # node ports belong to the hosts, not to a namespace: one copy has them
                lines = text.splitlines(keepends=True)
                text = "".join(line for line in lines if "nodePort" not in line)
            parts.append(text if text.startswith("---") else "---\n" + text)
            total += len(parts[-1])
        copy += 1
    return "".join(parts)[:size].rsplit("\n---", 1)[0] + "\n"


def _pod_with(value: str) -> str:
    return _POD.format(value=value)


def hostile(kind: str, size: int) -> tuple[str, str]:
    """One hostile input of about ``size`` bytes: (its text, the file name it is read as)."""
    room = max(size - len(_POD), 16)
    if kind == "label":
        return _pod_with("a" * room), "label.yaml"
    if kind == "userinfo":
        return _pod_with('"' + "://a@" * (room // 5) + '"'), "userinfo.yaml"
    if kind == "schemes":
        return _pod_with('"' + "://" * (room // 3) + '"'), "schemes.yaml"
    if kind == "base60":
        return _pod_with("1:" * (room // 2) + "1"), "base60.yaml"
    if kind == "key":
        key = "k" * (room // 2 - 8)
        return _pod_with(f"x\n    {key}: 1\n    {key}: 2"), "key.yaml"
    if kind == "blanks":
        return _pod_with('"a' + " -" * (room // 2 - 2) + ' "'), "blanks.yaml"
    if kind == "escapes":
        pairs = "\\ud83d\\ude00\\\\\\\\" * (room // 16)  # 16 characters each
        document = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
        return document[:-1] + f', "spec": {{"x": "{pairs}"}}}}', "escapes.json"
    raise ValueError(f"unknown hostile input {kind!r}")


KINDS = ("label", "userinfo", "schemes", "base60", "key", "blanks", "escapes")


def cpu_seconds(work: Callable[[], object], runs: int) -> float:
    """The best of ``runs`` CPU times of ``work`` (this process's user + system)."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return max(best, 1e-6)


def _validation(text: str, name: str) -> Callable[[], object]:
    return lambda: validate(parse_text(text, name, is_json=name.endswith(".json")))


@dataclass
class Row:
    kind: str
    size: int
    redact_s: float
    validate_s: float


def measure(sizes: list[int], runs: int) -> list[Row]:
    rows = []
    for size in sizes:
        text = ordinary(size)
        rows.append(
            Row(
                "ordinary",
                size,
                cpu_seconds(lambda t=text: redact(t), runs),  # type: ignore[misc]
                cpu_seconds(_validation(text, "ordinary.yaml"), runs),
            )
        )
        for kind in KINDS:
            text, name = hostile(kind, size)
            rows.append(
                Row(
                    kind,
                    size,
                    cpu_seconds(lambda t=text: redact(t), runs),  # type: ignore[misc]
                    cpu_seconds(_validation(text, name), runs),
                )
            )
    return rows


def summarise(rows: list[Row], load: tuple[float, float]) -> dict[str, object]:
    """Ratios to the ordinary input of the same size, growth from the smallest size to the
    largest against the ordinary input's growth, and the targets' status."""
    sizes = sorted({r.size for r in rows})
    base = {(r.size, "redact"): r.redact_s for r in rows if r.kind == "ordinary"}
    base |= {(r.size, "validate"): r.validate_s for r in rows if r.kind == "ordinary"}
    by = {(r.kind, r.size): r for r in rows}
    results = []
    for kind in KINDS:
        for stage in ("redact", "validate"):
            seconds = {s: getattr(by[(kind, s)], f"{stage}_s") for s in sizes}
            ratios = {s: seconds[s] / base[(s, stage)] for s in sizes}
            growth = None
            if len(sizes) > 1:
                ours = seconds[sizes[-1]] / seconds[sizes[0]]
                theirs = base[(sizes[-1], stage)] / base[(sizes[0], stage)]
                growth = ours / theirs
            ratio = ratios[sizes[-1]]
            # redaction: ordinary manifests hold almost no URL, so redacting them is one
            # substring test; text made of nothing but URLs costs more per byte by
            # construction. Its figure to hold is the growth (linear), the ratio is shown.
            ratio_ok = stage == "redact" or ratio <= TARGET_RATIO
            results.append(
                {
                    "input": kind,
                    "stage": stage,
                    "seconds": {f"{s // MB}MB": round(seconds[s], 4) for s in sizes},
                    "ratio_to_ordinary": {f"{s // MB}MB": round(ratios[s], 3) for s in sizes},
                    "growth_vs_ordinary": None if growth is None else round(growth, 3),
                    "status": "PASS"
                    if ratio_ok and (growth is None or growth <= TARGET_GROWTH)
                    else "FAIL",
                }
            )
    return {
        "benchmark": "hostile",
        "sizes_mb": [s // MB for s in sizes],
        "ordinary_s": {
            f"{s // MB}MB": {"redact": base[(s, "redact")], "validate": base[(s, "validate")]}
            for s in sizes
        },
        "results": results,
        "targets": {"ratio_to_ordinary": TARGET_RATIO, "growth_vs_ordinary": TARGET_GROWTH},
        "machine": {"cpus": os.cpu_count(), "load_before": load[0], "load_after": load[1]},
    }


def report(summary: dict[str, object]) -> list[str]:
    lines = [f"hostile text vs ordinary manifests, sizes {summary['sizes_mb']} MB (CPU s, best)"]
    results = summary["results"]
    assert isinstance(results, list)
    for r in results:
        lines.append(
            f"  {r['input']:<9} {r['stage']:<8} {json.dumps(r['seconds'])}  ratio "
            f"{json.dumps(r['ratio_to_ordinary'])}  growth {r['growth_vs_ordinary']}  "
            f"{r['status']}"
        )
    lines.append(
        f"targets: validate: hostile ÷ ordinary ≤ {TARGET_RATIO} at the largest size; both: "
        f"growth ÷ ordinary growth ≤ {TARGET_GROWTH} (linear); load {summary['machine']}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.hostile", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10", help="sizes in MB, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        sizes = sorted(int(float(s) * MB) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: want numbers of megabytes")
    before = os.getloadavg()[0]
    rows = measure(sizes, max(1, args.runs))
    summary = summarise(rows, (round(before, 2), round(os.getloadavg()[0], 2)))
    print("\n".join(report(summary)))
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
