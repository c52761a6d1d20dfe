"""Kubernetes resource quantities (``0.5``, ``500m``, ``128Mi``, ``1e3``) as exact decimals.

Kubernetes compares and converts quantities exactly; floats would turn ``0.1`` CPU into
99999999 nano-CPUs, so everything here is Decimal.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from reconciler.core.errors import QuantityError
from reconciler.core.text import shown

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
)
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_BINARY_SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


@lru_cache(maxsize=1024, typed=True)
def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a quantity to its exact value in base units (cores, bytes).

    Cached (a Decimal is immutable; ``typed`` keeps 1, 1.0 and True apart): manifests
    repeat a few quantities ("100m", "128Mi") thousands of times.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{shown(value)} is not a quantity")
    if isinstance(value, int | float):
        number = Decimal(str(value))
        if not number.is_finite():  # inf, nan: Decimal accepts them, Kubernetes does not
            raise QuantityError(f"{shown(value)} is not a quantity (it is not a finite number)")
        return number
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise QuantityError(f"{shown(value)} is not a quantity (examples: 0.5, 500m, 128Mi, 1G)")
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SUFFIXES:
        return number * _BINARY_SUFFIXES[suffix]
    if suffix in _DECIMAL_SUFFIXES:
        return number * _DECIMAL_SUFFIXES[suffix]
    try:
        return number * (Decimal(10) ** int(suffix[1:]))
    except ArithmeticError as exc:  # decimal.Overflow: 1e9999999
        raise QuantityError(
            f"{shown(value)} is not a quantity (its exponent is too large)"
        ) from exc


def is_quantity_syntax(value: str) -> bool:
    """Whether ``value`` is written like a quantity (it may still be too large to use)."""
    return _QUANTITY.match(value.strip()) is not None


def cpu_to_nano(value: str | int | float) -> int:
    """CPU cores to Docker's NanoCpus (rounded up, as Kubernetes rounds millicores up)."""
    nanos = parse_quantity(value) * Decimal(10**9)
    return int(nanos.to_integral_value(rounding="ROUND_CEILING"))


def memory_to_bytes(value: str | int | float) -> int:
    """Memory quantity to bytes (rounded up to a whole byte)."""
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))
