"""Discounts: validation, when one is active, what it takes from its scope and how that is split
over tax groups, against an independent Fraction model."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.discounts import (
    Discount,
    DiscountKind,
    DiscountScope,
    active,
    apply_discounts,
    reduction,
    split_pro_rata,
)
from tests.billing.test_minor_units import model_allocate, model_half_up

fast = settings(max_examples=300, deadline=None)
P, F = DiscountKind.PERCENT, DiscountKind.FIXED


def percent(value: str, code: str = "D") -> Discount:
    return Discount(code, code, P, Decimal(value), DiscountScope.INVOICE)


def fixed(value: int, code: str = "D") -> Discount:
    return Discount(code, code, F, value, DiscountScope.INVOICE)


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "100.01", "NaN", "Infinity"])
def test_percent_outside_0_to_100_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percent(value)


def test_fixed_value_must_be_a_non_negative_int() -> None:
    with pytest.raises(ValueError, match="negative"):
        fixed(-1)
    with pytest.raises(TypeError):
        Discount("D", "D", F, Decimal("1.5"), DiscountScope.USAGE)
    with pytest.raises(TypeError):
        Discount("D", "D", F, True, DiscountScope.USAGE)
    with pytest.raises(TypeError):
        Discount("D", "D", P, 10, DiscountScope.USAGE)


def test_ends_before_starts_is_refused_and_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="before starts"):
        Discount("D", "D", F, 1, DiscountScope.USAGE, date(2024, 2, 1), date(2024, 1, 1))
    with pytest.raises(ValueError):
        Discount("D", "D", "half", 1, DiscountScope.USAGE)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Discount("D", "D", F, 1, "calls")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        Discount("", "D", F, 1, DiscountScope.USAGE)
    # plain strings from the database become the enums
    d = Discount("D", "D", "fixed", 1, "usage")  # type: ignore[arg-type]
    assert d.kind is F and d.scope is DiscountScope.USAGE


# --- active ---------------------------------------------------------------------------------------

JAN, FEB, MAR = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)


@pytest.mark.parametrize(
    ("starts", "ends", "period", "expected"),
    [
        (None, None, (JAN, FEB), True),
        (JAN, None, (JAN, FEB), True),  # starts on the period's start
        (JAN + timedelta(1), None, (JAN, FEB), False),  # mid-period: from the next period
        (None, FEB, (JAN, FEB), True),
        (None, FEB, (FEB, MAR), False),  # ends is exclusive
        (None, FEB + timedelta(1), (FEB, MAR), True),
        (JAN, FEB, (JAN, FEB), True),
        (FEB, FEB, (FEB, MAR), False),  # an empty range never applies
    ],
)
def test_active_examples(
    starts: date | None, ends: date | None, period: tuple[date, date], expected: bool
) -> None:
    d = Discount("D", "D", F, 1, DiscountScope.USAGE, starts, ends)
    assert active(d, *period) is expected


days = st.integers(0, 400).map(lambda n: JAN + timedelta(n))


@fast
@given(st.none() | days, st.none() | days, days, st.integers(1, 40))
def test_active_is_start_of_period_in_the_half_open_range(
    starts: date | None, ends: date | None, start: date, length: int
) -> None:
    if starts is not None and ends is not None and ends < starts:
        starts, ends = ends, starts
    d = Discount("D", "D", F, 1, DiscountScope.USAGE, starts, ends)
    after_start = starts is None or start >= starts
    before_end = ends is None or start < ends
    assert active(d, start, start + timedelta(length)) is (after_start and before_end)


def test_a_period_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before its start"):
        active(fixed(1), FEB, JAN)


# --- reduction and splits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discount", "remaining", "expected"),
    [
        (percent("10"), 1005, 101),  # 100.5: half-up
        (percent("10"), -1005, -101),  # a credit note mirrors
        (percent("12.5"), 1000, 125),
        (percent("100"), 777, 777),
        (percent("0"), 777, 0),
        (fixed(500), 1000, 500),
        (fixed(500), 300, 300),  # never below zero
        (fixed(500), -300, -300),
        (fixed(500), -1000, -500),
        (fixed(500), 0, 0),
    ],
)
def test_reduction_examples(discount: Discount, remaining: int, expected: int) -> None:
    assert reduction(discount, remaining) == expected


weights = st.lists(st.integers(-(10**6), 10**7), min_size=1, max_size=8).filter(lambda w: sum(w))


@fast
@given(weights, st.fractions(0, 1, max_denominator=1000))
def test_split_pro_rata_sums_exactly_and_stays_between_zero_and_each_weight(
    ws: list[int], share: Fraction
) -> None:
    amount = model_half_up(share * sum(ws))
    got = split_pro_rata(amount, ws)
    assert sum(got) == amount
    assert got == model_allocate([Fraction(amount * w, sum(ws)) for w in ws])
    for part, w in zip(got, ws, strict=True):
        assert min(0, w) <= part <= max(0, w)
    assert split_pro_rata(-amount, [-w for w in ws]) == [-p for p in got]


def test_split_over_nothing() -> None:
    assert split_pro_rata(0, [5, -5]) == [0, 0]
    with pytest.raises(ValueError):
        split_pro_rata(1, [5, -5])


@st.composite
def discount_lists(draw: st.DrawFn) -> list[Discount]:
    out = []
    for i in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            value: Decimal | int = Decimal(draw(st.integers(0, 10_000))).scaleb(-2)
            out.append(Discount(f"D{i}", "d", P, value, DiscountScope.USAGE))
        else:
            out.append(Discount(f"D{i}", "d", F, draw(st.integers(0, 50_000)), DiscountScope.USAGE))
    return out


groups = st.dictionaries(st.sampled_from("abcdef"), st.integers(-(10**4), 10**6), max_size=5)


def model_apply(
    discounts: list[Discount], remaining: dict[str, int]
) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    left = dict(remaining)
    out = []
    for d in discounts:
        whole = sum(left.values())
        if d.kind is P:
            taken = model_half_up(Fraction(str(d.value)) / 100 * whole)
        else:
            taken = max(-int(d.value), min(int(d.value), whole))
        if whole == 0:
            continue
        keys = list(left)
        parts = model_allocate([Fraction(taken * left[k], whole) for k in keys])
        for key, part in zip(keys, parts, strict=True):
            if part:
                out.append((d.code, key, -part))
                left[key] -= part
    return out, left


@fast
@given(discount_lists(), groups)
def test_apply_discounts_matches_the_model(
    discounts: list[Discount], remaining: dict[str, int]
) -> None:
    shares, left = apply_discounts(discounts, remaining)
    assert [(s.discount.code, s.key, s.amount) for s in shares] == model_apply(
        discounts, remaining
    )[0]
    assert left == model_apply(discounts, remaining)[1]
    assert sum(left.values()) == sum(remaining.values()) + sum(s.amount for s in shares)
    if all(v >= 0 for v in remaining.values()):  # no group is ever discounted below zero
        assert all(v >= 0 for v in left.values())
        assert all(s.amount <= 0 for s in shares)
    neg_shares, neg_left = apply_discounts(discounts, {k: -v for k, v in remaining.items()})
    assert [(s.key, s.amount) for s in neg_shares] == [(s.key, -s.amount) for s in shares]
    assert neg_left == {k: -v for k, v in left.items()}


def test_discounts_apply_in_order_to_what_remains() -> None:
    shares, left = apply_discounts([fixed(100, "F"), percent("50", "P")], {"vat": 1100})
    assert [(s.discount.code, s.amount) for s in shares] == [("F", -100), ("P", -500)]
    assert left == {"vat": 500}
    shares, left = apply_discounts([percent("50", "P"), fixed(100, "F")], {"vat": 1100})
    assert [(s.discount.code, s.amount) for s in shares] == [("P", -550), ("F", -100)]
    assert left == {"vat": 450}


def test_a_fixed_discount_is_split_pro_rata_over_groups() -> None:
    shares, left = apply_discounts([fixed(100)], {"vat": 300, "zero": 100})
    assert [(s.key, s.amount) for s in shares] == [("vat", -75), ("zero", -25)]
    shares, left = apply_discounts([fixed(1000)], {"vat": 300, "zero": 100})
    assert left == {"vat": 0, "zero": 0}
