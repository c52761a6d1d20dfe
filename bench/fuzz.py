"""Fuzz what faces a hostile input: the loader and validator, the HTTP API, the forwarder's
arguments.

Each fuzzer is a seeded generator of hostile inputs and a runner that feeds them to the
real code (no mocks) and records what happened: how many inputs, how many "crashes" (an
exception escaping the loader, a 500 from the API, a sanitizer report or an unexpected exit
status from the forwarder), the slowest input and the process's peak memory. The test
suite runs each one bounded, with a fixed seed (``tests/unit/test_fuzz.py``,
``tests/unit/daemon_http/test_fuzz_http.py``, ``tests/integration/test_forwarder_fuzz.py``);
a longer run prints the figures:

    .venv/bin/python -m bench.fuzz                      # every fuzzer, default sizes
    .venv/bin/python -m bench.fuzz --only loader --inputs 20000 --seed 7 --json

The HTTP fuzzer is in ``bench.fuzz_http``, the forwarder's in ``bench.fuzz_forwarder``.
Exit 0 when nothing crashed, 1 when something did (the first few are printed).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.check.policy import Level, Policy
from reconciler.check.validate import validate
from reconciler.source.load import parse_bytes

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample-repo"


@dataclass
class Figures:
    """What one fuzzing run found."""

    fuzzer: str
    seed: int
    inputs: int = 0
    crashes: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    slowest_input: str = ""
    seconds: float = 0.0
    max_rss_mb: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def timed(self, description: str, started: float) -> None:
        """Count one input that started at ``started`` (``time.perf_counter``)."""
        spent = time.perf_counter() - started
        self.inputs += 1
        if spent > self.slowest_s:
            self.slowest_s, self.slowest_input = spent, description[:200]

    def as_dict(self) -> dict[str, Any]:
        return {
            "fuzzer": self.fuzzer,
            "seed": self.seed,
            "inputs": self.inputs,
            "crashes": len(self.crashes),
            "first_crashes": self.crashes[:5],
            "slowest_s": round(self.slowest_s, 4),
            "slowest_input": self.slowest_input,
            "seconds": round(self.seconds, 2),
            "max_rss_mb": round(self.max_rss_mb, 1),
            **self.notes,
        }


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(who).ru_maxrss / 1024


# -- the loader and the validator ------------------------------------------------------------
#: Pieces a hostile manifest is made of: YAML's sharp corners and the reconciler's limits.
_HOSTILE_SNIPPETS = (
    "&a [*a]",
    "*undefined",
    "<<: *base",
    "!!binary aGVsbG8=",
    "!custom {a: 1}",
    "!!int 'x'",
    "0x" + "f" * 40,
    "1:" * 64 + "1",
    "1e99999",
    ".inf",
    "- " * 80 + "x",
    "[" * 100,
    "{" * 70 + "}" * 70,
    "? [a, b]\n: c",
    "\t- tab",
    "\ufeff",
    "\u2028",
    "'unterminated",
    '"\\x1b[31mred"',
    '"\\nINFO pass done"',
    "key: &x value\nother: *x",
    "%YAML 1.1\n---",
    "--- |\n  block",
    "a: b: c",
    "x" * 5000,
)
_REPLICAS = ("3000000000", "-1", "2147483647", "1e3", "0x10", "'3'", "1:1:1", "null")


def sample_documents() -> list[bytes]:
    """The sample repository's files: valid starting points for mutations."""
    return [path.read_bytes() for path in sorted(SAMPLE.rglob("*.yaml"))]


def hostile_manifest(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes]:
    """One hostile input: a description and its bytes (a mutated sample, or built)."""
    choice = rng.randrange(6)
    base = bytearray(rng.choice(seeds))
    if choice == 0:  # flip, insert and delete bytes
        for _ in range(rng.randint(1, 20)):
            at = rng.randrange(len(base) + 1)
            action = rng.randrange(3)
            if action == 0 and base:
                base[min(at, len(base) - 1)] = rng.randrange(256)
            elif action == 1:
                base[at:at] = bytes([rng.randrange(256)])
            elif base:
                del base[min(at, len(base) - 1)]
        return "byte mutations", bytes(base)
    if choice == 1:  # a hostile snippet spliced into a line
        text = base.decode("utf-8", "replace")
        lines = text.splitlines()
        index = rng.randrange(len(lines))
        snippet = rng.choice(_HOSTILE_SNIPPETS)
        lines.insert(index, lines[index][: rng.randrange(len(lines[index]) + 1)] + snippet)
        return f"snippet {snippet[:20]!r}", "\n".join(lines).encode("utf-8", "surrogatepass")
    if choice == 2:  # a huge value where a name, label or env value goes
        size = rng.choice((10_000, 200_000, 1_000_000))
        char = rng.choice(("a", "-", "1:", " ", "é", "\\n", "://x@"))
        value = (char * (size // len(char)))[:size]
        field_name = rng.choice(("name", "app", "image", "value"))
        text = base.decode("utf-8").replace(f"{field_name}: ", f'{field_name}: "{value}"\n#', 1)
        return f"{size:,} x {char!r} in {field_name}", text.encode()
    if choice == 3:  # a hostile count
        replicas = rng.choice(_REPLICAS)
        text = base.decode("utf-8")
        return f"replicas {replicas}", text.replace(
            "replicas: ", f"replicas: {replicas} #", 1
        ).encode()
    if choice == 4:  # deep nesting or an alias bomb
        depth = rng.choice((63, 64, 65, 1000))
        if rng.random() < 0.5:
            return f"nested {depth}", ("a: " + "[" * depth + "]" * depth + "\n").encode()
        layers = rng.randint(3, 12)
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, layers)]
        return f"alias bomb of {layers} layers", "\n".join(lines).encode()
    # JSON: the same manifests, mutated
    try:
        import yaml

        document = next(d for d in yaml.safe_load_all(base) if d)
        text = json.dumps(document)
    except Exception:  # a sample that does not load as one document: use it as text
        text = base.decode("utf-8", "replace")
    at = rng.randrange(len(text) + 1)
    junk = rng.choice(("\\ud800", '"', "\\u0000", "}", ",,", "\\ud83d\\ude00", "\x7f"))
    return f"json with {junk!r}", (text[:at] + junk + text[at:]).encode("utf-8", "surrogatepass")


def fuzz_loader(inputs: int, seed: int, policy: Policy | None = None) -> Figures:
    """Parse and validate ``inputs`` hostile files: every one must give diagnostics, never
    an exception; the figures say how long the slowest took."""
    rng = random.Random(seed)
    seeds = sample_documents()
    figures = Figures("loader", seed)
    chosen = policy or Policy(Level.BASELINE)
    began = time.perf_counter()
    for number in range(inputs):
        description, data = hostile_manifest(rng, seeds)
        name = "fuzz.json" if description.startswith("json") else "fuzz.yaml"
        started = time.perf_counter()
        try:
            result = validate(parse_bytes(data, name), chosen)
            for diagnostic in result.diagnostics:
                assert diagnostic.location.line >= 1 and diagnostic.location.column >= 1
                assert len(diagnostic.message) <= 2100, "a message echoes a whole value"
        except Exception:
            figures.crashes.append(
                f"input {number} ({description}): {traceback.format_exc(limit=3)[-600:]}"
            )
        figures.timed(description, started)
    figures.seconds = time.perf_counter() - began
    figures.max_rss_mb = peak_rss_mb()
    return figures


# -- the command ------------------------------------------------------------------------------
def _runs(only: str) -> Iterator[tuple[str, Callable[[int, int], Figures]]]:
    if only in ("all", "loader"):
        yield "loader", fuzz_loader
    if only in ("all", "http"):
        from bench.fuzz_http import fuzz_http

        yield "http", fuzz_http
    if only in ("all", "forwarder"):
        from bench.fuzz_forwarder import fuzz_forwarder

        yield "forwarder", fuzz_forwarder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("all", "loader", "http", "forwarder"), default="all")
    parser.add_argument("--inputs", type=int, default=0, help="per fuzzer (default: its own)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args(argv)
    defaults = {"loader": 5000, "http": 2000, "forwarder": 2000}
    results = []
    for name, run in _runs(args.only):
        figures = run(args.inputs or defaults[name], args.seed)
        results.append(figures.as_dict())
        print(
            f"{name:<9} inputs {figures.inputs:>7,}  crashes {len(figures.crashes)}  "
            f"slowest {figures.slowest_s * 1000:8.1f} ms ({figures.slowest_input[:60]})  "
            f"max RSS {figures.max_rss_mb:7.1f} MB  {figures.seconds:7.1f} s"
        )
        for crash in figures.crashes[:3]:
            print(f"  CRASH {crash}")
    if args.json:
        print(json.dumps({"benchmark": "fuzz", "results": results}))
    return 1 if any(r["crashes"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
