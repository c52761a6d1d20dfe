"""The forwarder built with AddressSanitizer and UndefinedBehaviorSanitizer, for the tests.

The same source as the static build the images hold (``reconciler.forwarder.build``), with
the sanitizers instead of ``-static`` (they need the dynamic loader): an out-of-bounds
access, a use after free, a leak at exit or undefined behaviour (an overflow, a bad shift)
makes it print a report and exit with ``SANITIZER_EXIT``, which the tests look for. The
flags and the build are ``bench.fuzz_forwarder``'s, which fuzzes the same binary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz_forwarder import SANITIZER_ENV, build_sanitized, sanitizer_report

__all__ = ["SANITIZER_ENV", "assert_no_sanitizer_report", "sanitized_build"]


def sanitized_build(directory: Path) -> Path:
    """Compile the forwarder with the sanitizers into ``directory``; skip without them."""
    program, why = build_sanitized(directory)
    if program is None:
        if "no C compiler" in why or "asan" in why.lower():
            pytest.skip(f"no sanitized forwarder here: {why}")
        pytest.fail(f"the sanitized forwarder does not build:\n{why}")
    return program


def assert_no_sanitizer_report(log: Path) -> None:
    report = sanitizer_report(log.read_text(errors="replace")) if log.exists() else ""
    assert not report, f"the forwarder's sanitizers reported:\n{report[:4000]}"
