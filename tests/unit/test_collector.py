"""``core.collector``: the service raises the collector's thresholds, never lowers them."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from reconciler.core.collector import THRESHOLDS, tune_for_large_states


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)


@pytest.mark.usefixtures("restored")
def test_the_thresholds_are_raised_to_the_service_s() -> None:
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    tune_for_large_states()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.isenabled()  # cycles are still collected, less often


@pytest.mark.usefixtures("restored")
def test_a_threshold_already_higher_is_kept() -> None:
    gc.set_threshold(200_000, 5, 100)
    tune_for_large_states()
    assert gc.get_threshold() == (200_000, THRESHOLDS[1], 100)
