"""Kubernetes quantities as exact decimals (reconciler/quantity.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciler.core.errors import QuantityError
from reconciler.core.quantity import (
    cpu_to_nano,
    is_quantity_syntax,
    memory_to_bytes,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5", "0.5"),
        ("500m", "0.5"),
        ("1", "1"),
        ("+2", "2"),
        (".5", "0.5"),
        ("5.", "5"),
        ("100n", "0.0000001"),
        ("250u", "0.00025"),
        ("1k", "1000"),
        ("2M", "2000000"),
        ("1G", "1000000000"),
        ("1T", "1e12"),
        ("1P", "1e15"),
        ("1E", "1e18"),
        ("1Ki", "1024"),
        ("128Mi", "134217728"),
        ("1.5Gi", "1610612736"),
        ("1Ti", str(2**40)),
        ("1Pi", str(2**50)),
        ("1Ei", str(2**60)),
        ("1e3", "1000"),
        ("1E3", "1000"),
        ("12e-1", "1.2"),
        ("1e+2", "100"),
        (" 64Mi ", str(64 * 2**20)),
        ("-1", "-1"),
    ],
)
def test_parse_quantity_text(text: str, expected: str) -> None:
    assert parse_quantity(text) == Decimal(expected)


def test_parse_quantity_numbers_exactly() -> None:
    assert parse_quantity(3) == Decimal(3)
    assert parse_quantity(0.1) == Decimal("0.1")  # not 0.1000000000000000055511151231257827
    assert parse_quantity(10**30) == Decimal(10**30)


@pytest.mark.parametrize(
    "text", ["12XB", "", "Mi", "1.5 cores", "1ki", "1K", "1KB", "0x10", "1e", "1.2.3", "1 Gi"]
)
def test_parse_quantity_refuses_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(QuantityError, match=r"is not a quantity \(examples: 0\.5, 500m"):
        parse_quantity(text)
    assert not is_quantity_syntax(text)


def test_booleans_are_not_quantities() -> None:
    with pytest.raises(QuantityError, match="True is not a quantity"):
        parse_quantity(True)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_not_quantities(value: float) -> None:
    with pytest.raises(QuantityError, match="not a finite number"):
        parse_quantity(value)


def test_an_exponent_too_large_is_a_quantity_error_not_a_crash() -> None:
    assert is_quantity_syntax("1e9999999")
    with pytest.raises(QuantityError, match="exponent is too large"):
        parse_quantity("1e9999999")
    assert parse_quantity("1e-9999999") == 0  # underflows to zero: harmless


def test_is_quantity_syntax_matches_the_parser() -> None:
    assert is_quantity_syntax("500m")
    assert is_quantity_syntax(" 1Gi ")
    assert not is_quantity_syntax("12XB")


@pytest.mark.parametrize(
    ("value", "nanos"),
    [
        ("1", 10**9),
        ("100m", 10**8),
        ("0.1", 10**8),
        (0.1, 10**8),
        (2, 2 * 10**9),
        ("1n", 1),
        ("0.5n", 1),  # rounded up, as Kubernetes rounds
        ("1u", 1000),
        ("1.0000000001", 10**9 + 1),
    ],
)
def test_cpu_to_nano(value: str | float, nanos: int) -> None:
    assert cpu_to_nano(value) == nanos


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("64Mi", 64 * 2**20),
        ("1Gi", 2**30),
        ("1G", 10**9),
        ("1.5Ki", 1536),
        ("0.5", 1),  # rounded up to a whole byte
        ("1e3", 1000),
        (128974848, 128974848),
        ("129e6", 129000000),
        ("123M", 123000000),
        ("1m", 1),
    ],
)
def test_memory_to_bytes(value: str | int, size: int) -> None:
    assert memory_to_bytes(value) == size


def test_conversions_refuse_what_parse_refuses() -> None:
    with pytest.raises(QuantityError):
        cpu_to_nano("1 core")
    with pytest.raises(QuantityError):
        memory_to_bytes(float("inf"))
