"""ISO 4217 minor units and the one rounding rule of invoices.

Declared rounding rule: every figure that becomes an integer number of minor units is rounded
exactly once, from an exact rational (``Fraction``) value, **half-up = ties away from zero**
(0.5 -> 1, 2.5 -> 3, -0.5 -> -1). Never half-even (Python's ``round`` and Decimal's default),
which bills half a cent as 0; and always symmetric, so a credit note is the exact mirror of the
invoice it reverses. Where several rounded figures must add up to one rounded whole (a discount
split over tax groups, per-invoice taxes shown per line) they are cut by ``allocate``, a
symmetric largest remainder: each part is the floor or the ceiling of its exact share, the parts
sum to the rounded whole, and ties are broken by position, never by sign. (Cumulative half-up
rounding is not used: with parts of both signs a partial sum can cross zero on a tie and leave
a part a whole unit past its exact share.)

The engine's amounts are integer micros (1e-6 of the major unit); a currency's minor unit is
``10 ** -exponent(currency)`` of it, so ``micros_to_minor`` divides by ``10 ** (6 - exponent)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

__all__ = [
    "MICROS_PER_UNIT",
    "allocate",
    "exponent",
    "half_up",
    "micros_to_minor",
    "minor_to_micros",
    ]

MICROS_PER_UNIT = 1_000_000
_MICROS_EXPONENT = 6

# ISO 4217 (list one, 2024) currencies whose minor unit is not 1/100. Every other well-formed
# code has exponent 2.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
# ISO 4217 codes with no minor unit at all ("N.A."): metals, SDR, testing and "no currency".
# Nothing can be invoiced in them, so they are refused rather than given a guessed exponent.
_NO_MINOR_UNIT = frozenset(
    ("XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX")
)


def _check_int(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def exponent(currency: str) -> int:
    """Digits after the decimal point of ``currency``'s minor unit (JPY 0, USD 2, KWD 3, CLF 4)."""
    if not isinstance(currency, str) or len(currency) != 3 or not (
        currency.isascii() and currency.isalpha() and currency.isupper()
    ):
        raise ValueError(f"currency must be an ISO 4217 code of 3 uppercase letters: {currency!r}")
    if currency in _NO_MINOR_UNIT:
        raise ValueError(f"currency {currency} has no minor unit and cannot be invoiced")
    return _EXPONENTS.get(currency, 2)


def half_up(value: Fraction | int) -> int:
    """``value`` to the nearest integer, ties away from zero, in exact integer arithmetic."""
    if type(value) is int:
        return value
    q = Fraction(value)
    return half_up_ratio(q.numerator, q.denominator)


def half_up_ratio(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` (denominator > 0) half-up, without building a Fraction (the
    invoice run calls this for every line)."""
    n = abs(numerator)
    magnitude = (2 * n + denominator) // (2 * denominator)  # floor(|q| + 1/2)
    return magnitude if numerator >= 0 else -magnitude


def allocate(parts: Iterable[Fraction | int]) -> list[int]:
    """Integer parts of exact ``parts`` that sum to ``half_up(sum(parts))``.

    Every part starts as its own ``half_up``; the shortfall to the rounded whole (at most one
    unit per part) goes, one unit each, to the parts whose rounding moved them furthest the
    other way, earlier positions first on a tie. Each result is the floor or the ceiling of
    its exact part (an integer part stays exact) and negating every part negates every result.
    """
    exact = [Fraction(p) for p in parts]
    out = [half_up(q) for q in exact]
    short = half_up(sum(exact, Fraction(0))) - sum(out)
    if short:
        step = 1 if short > 0 else -1
        # largest residual in the direction of the shortfall first, then position
        order = sorted(range(len(exact)), key=lambda i: (-step * (exact[i] - out[i]), i))
        for i in order[: abs(short)]:
            out[i] += step
    return out


def micros_to_minor(micros: int, currency: str) -> int:
    """Engine micros to minor units of ``currency``, rounded once, half-up."""
    _check_int(micros, "micros")
    return half_up_ratio(micros, 10 ** (_MICROS_EXPONENT - exponent(currency)))


def minor_to_micros(minor: int, currency: str) -> int:
    """Minor units of ``currency`` to engine micros (exact: a minor unit is whole micros)."""
    _check_int(minor, "minor")
    factor: int = 10 ** (_MICROS_EXPONENT - exponent(currency))
    return minor * factor
