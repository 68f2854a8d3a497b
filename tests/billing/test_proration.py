"""Proration: half-up (not Python's half-even), exact sums, symmetric credits, checked against
an independent Fraction computation."""

from __future__ import annotations

import itertools
from datetime import date
from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.proration import days_between, prorate, split

fast = settings(max_examples=400, deadline=None)
amounts = st.integers(-(10**15), 10**15) | st.integers(-(10**40), 10**40)
parts = st.lists(st.integers(0, 120), min_size=1, max_size=12).filter(lambda p: sum(p) > 0)


def half_up(q: Fraction) -> int:
    """Independent model: nearest integer, ties away from zero."""
    magnitude = floor(abs(q) + Fraction(1, 2))
    return magnitude if q >= 0 else -magnitude


@st.composite
def usage(draw: st.DrawFn) -> tuple[int, int, int]:
    period = draw(st.integers(1, 400))
    return draw(amounts), draw(st.integers(0, period)), period


@fast
@given(usage())
def test_prorate_matches_an_exact_fraction(case: tuple[int, int, int]) -> None:
    amount, used, period = case
    assert prorate(amount, used, period) == half_up(Fraction(amount * used, period))
    assert prorate(-amount, used, period) == -prorate(amount, used, period)


@fast
@given(amounts, st.integers(1, 400))
def test_full_period_is_the_whole_amount_and_none_is_zero(amount: int, period: int) -> None:
    assert prorate(amount, period, period) == amount
    assert prorate(amount, 0, period) == 0


@fast
@given(amounts, st.integers(1, 400))
def test_prorate_is_monotone_in_days(amount: int, period: int) -> None:
    values = [prorate(amount, d, period) for d in range(period + 1)]
    pairs = list(itertools.pairwise(values))
    assert all(a <= b for a, b in pairs) if amount >= 0 else all(a >= b for a, b in pairs)


@pytest.mark.parametrize(
    ("amount", "used", "period", "expected"),
    [
        (1, 1, 2, 1),  # half-even would give 0
        (5, 1, 2, 3),  # half-even would give 2
        (-5, 1, 2, -3),  # credits mirror charges
        (3000, 10, 31, 968),  # 967.74...
        (2999, 15, 30, 1500),  # 1499.5
        (10**30 + 1, 1, 2, 5 * 10**29 + 1),  # no precision loss on huge amounts
    ],
)
def test_prorate_examples(amount: int, used: int, period: int, expected: int) -> None:
    assert prorate(amount, used, period) == expected


@fast
@given(amounts, parts)
def test_split_sums_to_the_whole_and_each_part_is_floor_or_ceiling(
    amount: int, days: list[int]
) -> None:
    total = sum(days)
    got = split(amount, days)
    assert sum(got) == amount and len(got) == len(days)
    for share, d in zip(got, days, strict=True):
        exact = Fraction(amount * d, total)
        assert floor(exact) <= share <= ceil(exact)
    assert split(-amount, days) == [-x for x in got]


@fast
@given(amounts, parts)
def test_split_prefixes_are_the_prorated_prefix(amount: int, days: list[int]) -> None:
    """However the first days were cut, together they are billed as one proration."""
    total, got = sum(days), split(amount, days)
    for k in range(len(days) + 1):
        assert sum(got[:k]) == prorate(amount, sum(days[:k]), total)
        assert sum(got[:k]) == half_up(Fraction(amount * sum(days[:k]), total))
    assert got[0] == prorate(amount, days[0], total)


def test_split_examples() -> None:
    assert split(1000, [1, 1, 1]) == [333, 334, 333]
    assert split(-1000, [1, 1, 1]) == [-333, -334, -333]
    assert split(100, [0, 31, 0]) == [0, 100, 0]
    assert split(1, [1, 1]) == [1, 0]  # the tie goes to the first cut, half-up


def test_days_between() -> None:
    assert days_between(date(2024, 2, 1), date(2024, 3, 1)) == 29
    assert days_between(date(2024, 2, 1), date(2024, 2, 1)) == 0
    with pytest.raises(ValueError, match="before"):
        days_between(date(2024, 3, 1), date(2024, 2, 1))


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: prorate(100, 1, 0), ValueError),
        (lambda: prorate(100, 32, 31), ValueError),
        (lambda: prorate(100, -1, 31), ValueError),
        (lambda: prorate(1.5, 1, 2), TypeError),  # type: ignore[arg-type]
        (lambda: split(100, []), ValueError),
        (lambda: split(100, [0, 0]), ValueError),
        (lambda: split(100, [3, -1]), ValueError),
    ],
)
def test_invalid_input_is_refused(call: object, error: type[Exception]) -> None:
    assert callable(call)
    with pytest.raises(error):
        call()
