"""Minor units: ISO 4217 exponents, micros rounded once half-up (ties away from zero), exact
conversions back, and allocations that sum to the rounded whole."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.minor_units import (
    allocate,
    exponent,
    half_up,
    micros_to_minor,
    minor_to_micros,
)

fast = settings(max_examples=300, deadline=None)
MODEL_EXPONENT = {"JPY": 0, "KRW": 0, "CLP": 0, "USD": 2, "EUR": 2, "KWD": 3, "BHD": 3, "CLF": 4}
currencies = st.sampled_from(sorted(MODEL_EXPONENT))
micros = st.integers(-(10**15), 10**15) | st.integers(-(10**30), 10**30)


def model_half_up(q: Fraction) -> int:
    """Independent model: nearest integer, ties away from zero."""
    magnitude = floor(abs(q) + Fraction(1, 2))
    return magnitude if q >= 0 else -magnitude


def model_allocate(parts: list[Fraction]) -> list[int]:
    """Independent model of the allocation: round each part, then move the parts that rounding
    pushed furthest from the target one unit at a time (earliest first on a tie)."""
    target = model_half_up(sum(parts, Fraction(0)))
    out = [model_half_up(q) for q in parts]
    moved: set[int] = set()
    while sum(out) != target:
        step = 1 if target > sum(out) else -1
        free = [i for i in range(len(parts)) if i not in moved]
        best = max(free, key=lambda i: (step * (parts[i] - out[i]), -i))
        out[best] += step
        moved.add(best)
    return out


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        *[(c, 0) for c in ("JPY", "KRW", "CLP", "ISK", "VND", "UGX", "XAF", "XOF", "PYG")],
        *[(c, 2) for c in ("USD", "EUR", "GBP", "CHF", "INR", "BRL", "MGA", "HUF")],
        *[(c, 3) for c in ("KWD", "BHD", "OMR", "JOD", "TND", "LYD", "IQD")],
        ("CLF", 4),
        ("UYW", 4),
    ],
)
def test_iso_4217_exponents(currency: str, expected: int) -> None:
    assert exponent(currency) == expected


@pytest.mark.parametrize("code", ["usd", "Usd", "US", "USDD", "", "U$D", "US1", "ÄBC", " USD"])
def test_a_currency_is_three_uppercase_letters(code: str) -> None:
    with pytest.raises(ValueError, match="3 uppercase letters"):
        exponent(code)


def test_a_non_string_currency_is_refused() -> None:
    with pytest.raises(ValueError):
        exponent(840)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["XAU", "XDR", "XXX", "XTS"])
def test_codes_without_a_minor_unit_cannot_be_invoiced(code: str) -> None:
    with pytest.raises(ValueError, match="no minor unit"):
        exponent(code)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (5_000, "USD", 1),  # half a cent: half-even would give 0
        (15_000, "USD", 2),
        (25_000, "USD", 3),  # half-even would give 2
        (4_999, "USD", 0),
        (5_001, "USD", 1),
        (-5_000, "USD", -1),  # credits mirror charges
        (-25_000, "USD", -3),
        (12_345_678, "USD", 1235),
        (500_000, "JPY", 1),  # half a yen
        (2_500_000, "JPY", 3),
        (-1_500_000, "JPY", -2),
        (499_999, "JPY", 0),
        (500, "KWD", 1),  # half a fils
        (2_500, "KWD", 3),
        (1_234_567, "KWD", 1235),
        (50, "CLF", 1),
        (10**30 + 5_000, "USD", 10**26 + 1),  # no precision loss
    ],
)
def test_micros_to_minor_examples(amount: int, currency: str, expected: int) -> None:
    assert micros_to_minor(amount, currency) == expected


@fast
@given(micros, currencies)
def test_micros_to_minor_matches_decimal_half_up(amount: int, currency: str) -> None:
    e = MODEL_EXPONENT[currency]
    with localcontext() as ctx:
        ctx.prec = 80
        expected = int(
            (Decimal(amount) / Decimal(10) ** (6 - e)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        )
    assert micros_to_minor(amount, currency) == expected
    assert micros_to_minor(-amount, currency) == -expected


@fast
@given(micros, currencies)
def test_minor_to_micros_is_exact_and_round_trips(minor: int, currency: str) -> None:
    back = minor_to_micros(minor, currency)
    assert back == minor * 10 ** (6 - MODEL_EXPONENT[currency])
    assert micros_to_minor(back, currency) == minor


@pytest.mark.parametrize("bad", [1.5, Decimal(1), True, "5"])
def test_amounts_must_be_ints(bad: object) -> None:
    with pytest.raises(TypeError):
        micros_to_minor(bad, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        minor_to_micros(bad, "USD")  # type: ignore[arg-type]


def test_a_bad_currency_fails_the_conversions() -> None:
    with pytest.raises(ValueError):
        micros_to_minor(1, "usd")
    with pytest.raises(ValueError):
        minor_to_micros(1, "XAU")


fractions_ = st.fractions(max_denominator=10**6).filter(lambda q: abs(q) < 10**12)


@fast
@given(fractions_)
def test_half_up_is_nearest_with_ties_away_from_zero(q: Fraction) -> None:
    assert half_up(q) == model_half_up(q)
    assert half_up(-q) == -half_up(q)


@pytest.mark.parametrize(
    ("q", "expected"),
    [(Fraction(1, 2), 1), (Fraction(-1, 2), -1), (Fraction(5, 2), 3), (Fraction(-5, 2), -3),
     (Fraction(49, 100), 0), (Fraction(-51, 100), -1), (7, 7), (0, 0)],
)
def test_half_up_examples(q: Fraction | int, expected: int) -> None:
    assert half_up(q) == expected


@fast
@given(st.lists(fractions_ | st.integers(-5, 5).map(lambda n: Fraction(n, 2)), max_size=12))
def test_allocate_sums_to_the_rounded_whole_with_floor_or_ceiling_parts(
    parts: list[Fraction],
) -> None:
    got = allocate(parts)
    assert got == model_allocate(parts)
    assert sum(got) == model_half_up(sum(parts, Fraction(0)))
    for share, exact in zip(got, parts, strict=True):
        assert floor(exact) <= share <= ceil(exact)
    assert allocate([-p for p in parts]) == [-g for g in got]


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([Fraction(1, 2), Fraction(-1)], [0, -1]),  # cumulative half-up would give [1, -2]
        ([Fraction(1, 2)] * 3, [0, 1, 1]),  # 1.5 -> 2: the tie goes to the first part
        ([Fraction(-1, 2)] * 3, [0, -1, -1]),
        ([Fraction(5, 3)] * 3, [1, 2, 2]),
        ([Fraction(1, 3), Fraction(2, 3)], [0, 1]),
        ([3, -2], [3, -2]),
        ([], []),
    ],
)
def test_allocate_examples(parts: list[Fraction], expected: list[int]) -> None:
    assert allocate(parts) == expected
