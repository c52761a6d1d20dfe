"""How every benchmark judges: a target is PASS, FAIL or NOT MEASURED; a run is a PASS only
when every one of its targets was measured and passed.

A target that needs a peer (docker-compose, kubernetes-validate, a second host) is NOT
MEASURED when that peer could not run, never a pass by default: once, docker-compose crashed
on 1,100 containers and the run still printed ``overall: PASS``. The same holds for a part
that was skipped (no root for the test hosts) or a run too small for an absolute target.
"""

from __future__ import annotations

from collections.abc import Iterable

PASS = "PASS"
FAIL = "FAIL"
NOT_MEASURED = "NOT MEASURED"


def status(ok: bool | None) -> str:
    """A target's status: None means it could not be measured."""
    return NOT_MEASURED if ok is None else PASS if ok else FAIL


def overall(statuses: Iterable[str]) -> str:
    """FAIL if any target failed; NOT MEASURED if any was not measured (or there were none);
    PASS only when every target was measured and passed."""
    seen = list(statuses)
    if FAIL in seen:
        return FAIL
    if not seen or any(s != PASS for s in seen):
        return NOT_MEASURED
    return PASS


def overall_line(statuses: Iterable[str]) -> str:
    """``== overall: X (n of m targets measured) ==``, the last word of a run."""
    seen = list(statuses)
    measured = sum(1 for s in seen if s in (PASS, FAIL))
    return f"== overall: {overall(seen)} ({measured} of {len(seen)} targets measured) =="
