"""The loader and the validator, fuzzed with hostile manifests (``bench.fuzz``).

Bounded, with a fixed seed, so that a failure reproduces; ``python -m bench.fuzz --only
loader --inputs N --seed S`` runs longer and prints the figures. Every input must give
diagnostics with a position, never an exception, and no message may echo a whole value.
"""

from __future__ import annotations

import os
import random

from bench.fuzz import fuzz_loader, hostile_manifest, sample_documents

SEED = 14
INPUTS = int(os.environ.get("RECONCILER_FUZZ_INPUTS", "400"))


def test_the_generator_makes_every_kind_of_hostile_input() -> None:
    rng = random.Random(SEED)
    seeds = sample_documents()
    kinds = {hostile_manifest(rng, seeds)[0].split(" ")[0] for _ in range(200)}
    assert {"byte", "snippet", "replicas", "json", "nested", "alias"} <= kinds


def test_hostile_manifests_give_diagnostics_never_an_exception() -> None:
    figures = fuzz_loader(INPUTS, SEED)
    assert figures.inputs == INPUTS
    assert figures.crashes == [], "\n".join(figures.crashes[:5])
