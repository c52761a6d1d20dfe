"""The cyclic garbage collector's thresholds for a process that holds a large state.

A pass at 10,000 pods makes and drops hundreds of thousands of small values (stamped pods,
live containers, their label dicts), almost none of them in reference cycles: reference
counting frees them. With CPython's default thresholds (a young collection every 700 net
allocations) the collector still runs hundreds of times a pass, and its older generations
traverse the whole live state each time they run: ~14% of desired state and plan at 10k
pods (`bench.scale`: 0.186 → 0.160 s, medians of three runs each), and the pass's jitter.

The long-lived service (``reconciler run``) raises the thresholds once at start; one-shot
commands keep the defaults (at the sample's size they cannot tell the difference).
"""

from __future__ import annotations

import gc

#: Net allocations between young collections, and young (then middle) collections between
#: older ones: cycles are still found, after tens of thousands of allocations, not 700.
THRESHOLDS = (50_000, 20, 20)


def tune_for_large_states() -> None:
    """Raise the collector's thresholds to ``THRESHOLDS`` (never lower one already higher)."""
    young, middle, old = (
        max(now, wanted) for now, wanted in zip(gc.get_threshold(), THRESHOLDS, strict=True)
    )
    gc.set_threshold(young, middle, old)
