"""Pricing rules, checked against a second implementation written from the docstring.

Live charging and re-rating must agree to the micro, so ``cost`` is compared with an
independent Decimal oracle, and ``max_duration`` with the guarantees authorization relies on.
"""

from __future__ import annotations

from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Decimal,
    localcontext,
)

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charging_engine.money import Rounding
from charging_engine.rating.model import Rate
from charging_engine.rating.pricing import (
    MAX_CALL_SECONDS,
    billed_seconds,
    boundary_at_or_below,
    cost,
    first_boundary,
    free_seconds,
    max_duration,
    next_boundary,
)

DECIMAL_MODE = {
    Rounding.UP: ROUND_CEILING,
    Rounding.DOWN: ROUND_FLOOR,
    Rounding.HALF_UP: ROUND_HALF_UP,
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
}


@st.composite
def rates(draw: st.DrawFn) -> Rate:
    """Any valid rate, with prices from free to 1,000 major units a minute."""
    # Multiples of 3,000 micros/min are 50 micros/s: exact ties at most decimals settings.
    ties = st.integers(1, 10**5).map(lambda k: k * 3_000)
    return Rate(
        prefix="44",
        price_per_minute=draw(st.integers(0, 10**9) | ties | st.sampled_from([0, 1, 100])),
        connect_fee=draw(st.integers(0, 10**7) | st.just(0)),
        min_duration=draw(st.integers(0, 600) | st.just(0)),
        first_increment=draw(st.integers(1, 300) | st.sampled_from([1, 6, 30, 60])),
        next_increment=draw(st.integers(1, 300) | st.sampled_from([1, 6, 30, 60])),
        grace_seconds=draw(st.integers(0, 120) | st.just(0)),
        rounding=draw(st.sampled_from(Rounding)),
        decimals=draw(st.integers(0, 6)),
    )


durations = st.integers(0, 20_000)
amounts = st.integers(0, 10**6) | st.integers(0, 10**11)
caps = st.just(MAX_CALL_SECONDS) | st.integers(0, 20_000)


def oracle_billed(rate: Rate, duration: int) -> int:
    """Billed seconds straight from the rules: grace is free, then minimum, then blocks."""
    if duration == 0 or duration < rate.grace_seconds:
        return 0
    seconds = max(duration, rate.min_duration)
    billed = rate.first_increment
    while billed < seconds:
        billed += rate.next_increment
    return billed


def oracle_cost(rate: Rate, duration: int) -> int:
    """Micros charged: Decimal price * billed / 60, quantized once to the rate's decimals."""
    billed = oracle_billed(rate, duration)
    if billed == 0:
        return 0
    with localcontext() as ctx:
        ctx.prec = 80
        major = Decimal(rate.price_per_minute) * billed / 60 / Decimal(1_000_000)
        rounded = major.quantize(Decimal(1).scaleb(-rate.decimals), DECIMAL_MODE[rate.rounding])
        return rate.connect_fee + int(rounded.scaleb(6))


@given(rates(), durations)
def test_cost_matches_decimal_oracle(rate: Rate, duration: int) -> None:
    assert billed_seconds(rate, duration) == oracle_billed(rate, duration)
    assert cost(rate, duration) == oracle_cost(rate, duration)


@given(st.integers(0, 5), st.integers(0, 10**4), st.sampled_from(Rounding), st.integers(1, 3600))
def test_cost_rounds_exact_ties_like_decimal(
    decimals: int, m: int, rounding: Rounding, duration: int
) -> None:
    # (2m+1)/2 quanta per second: every odd per-second duration lands exactly on a tie.
    q = 10 ** (6 - decimals)
    rate = Rate("44", 30 * q * (2 * m + 1), first_increment=1, next_increment=1,
                rounding=rounding, decimals=decimals)  # fmt: skip
    assert cost(rate, duration) == oracle_cost(rate, duration)


@given(rates(), durations, durations)
def test_cost_is_monotone_in_duration(rate: Rate, a: int, b: int) -> None:
    short, long = sorted((a, b))
    assert cost(rate, short) <= cost(rate, long)


@given(rates(), amounts, caps)
def test_max_duration_is_affordable(rate: Rate, amount: int, cap: int) -> None:
    m = max_duration(rate, amount, cap)
    assert 0 <= m <= cap
    assert cost(rate, m) <= amount


@given(rates(), amounts, caps)
def test_max_duration_is_the_longest_affordable(rate: Rate, amount: int, cap: int) -> None:
    m = max_duration(rate, amount, cap)
    nb = next_boundary(rate, m)
    # The next boundary is unaffordable unless the cap stopped us before it.
    if nb <= cap:
        assert amount < cost(rate, nb)
    if m >= first_boundary(rate) and m + rate.next_increment <= cap:
        assert amount < cost(rate, m + rate.next_increment)


@given(rates(), durations, st.sampled_from([-1, 0, 1]))
def test_max_duration_at_exact_prices(rate: Rate, duration: int, delta: int) -> None:
    # Amounts equal to (or one micro around) a real call's price are where rounding bites.
    amount = max(cost(rate, duration) + delta, 0)
    m = max_duration(rate, amount)
    assert cost(rate, m) <= amount
    if delta >= 0:
        assert m >= boundary_at_or_below(rate, duration)
    if next_boundary(rate, m) <= MAX_CALL_SECONDS:
        assert amount < cost(rate, next_boundary(rate, m))


@given(rates(), amounts, caps)
def test_max_duration_ends_on_a_boundary(rate: Rate, amount: int, cap: int) -> None:
    m = max_duration(rate, amount, cap)
    assert billed_seconds(rate, m) == m or m <= free_seconds(rate)
    assert boundary_at_or_below(rate, m) == m


@given(rates(), amounts)
def test_max_duration_with_default_cap(rate: Rate, amount: int) -> None:
    m = max_duration(rate, amount)
    assert cost(rate, m) <= amount
    if m < boundary_at_or_below(rate, MAX_CALL_SECONDS):
        assert amount < cost(rate, next_boundary(rate, m))


@given(rates(), durations)
def test_boundaries_are_billed_durations(rate: Rate, seconds: int) -> None:
    nb = next_boundary(rate, seconds)
    assert nb > seconds
    assert billed_seconds(rate, nb) == nb
    below = boundary_at_or_below(rate, seconds)
    assert below <= seconds
    assert billed_seconds(rate, below) == below or below <= free_seconds(rate)


def per_minute(price: str, **kwargs: object) -> Rate:
    micros = int(Decimal(price) * 1_000_000)
    return Rate(prefix="44", price_per_minute=micros, **kwargs)  # type: ignore[arg-type]


def test_60_60_bills_whole_minutes() -> None:
    rate = per_minute("0.60", first_increment=60, next_increment=60)
    assert [billed_seconds(rate, d) for d in (0, 1, 60, 61, 120, 121)] == [0, 60, 60, 120, 120, 180]
    assert [cost(rate, d) for d in (1, 60, 61)] == [600_000, 600_000, 1_200_000]


def test_30_6_bills_first_half_minute_then_six_seconds() -> None:
    rate = per_minute("1.00", first_increment=30, next_increment=6)
    assert [billed_seconds(rate, d) for d in (1, 30, 31, 36, 37)] == [30, 30, 36, 36, 42]
    assert [cost(rate, d) for d in (1, 31, 37)] == [500_000, 600_000, 700_000]


def test_1_1_bills_per_second() -> None:
    rate = per_minute("0.06", first_increment=1, next_increment=1)
    assert [cost(rate, d) for d in (0, 1, 7, 60)] == [0, 1000, 7000, 60_000]


def test_grace_makes_short_calls_free_including_the_connect_fee() -> None:
    rate = per_minute("0.60", first_increment=1, next_increment=1, grace_seconds=5,
                      connect_fee=100_000)  # fmt: skip
    assert [cost(rate, d) for d in (0, 1, 4)] == [0, 0, 0]
    assert cost(rate, 5) == 100_000 + 50_000
    assert free_seconds(rate) == 4
    assert first_boundary(rate) == 5
    assert max_duration(rate, 0) == 4
    assert max_duration(rate, 149_999) == 4
    assert max_duration(rate, 150_000) == 5


def test_minimum_duration_raises_short_calls() -> None:
    rate = per_minute("0.60", first_increment=1, next_increment=1, min_duration=30)
    assert [billed_seconds(rate, d) for d in (1, 29, 30, 31)] == [30, 30, 30, 31]
    assert cost(rate, 1) == 300_000
    assert first_boundary(rate) == 30
    assert max_duration(rate, 299_999) == 0
    assert max_duration(rate, 300_000) == 30
    assert max_duration(rate, 310_000) == 31


@pytest.mark.parametrize(
    ("rounding", "one_second", "three_seconds"),
    [(Rounding.UP, 10_000, 20_000), (Rounding.DOWN, 0, 10_000),
     (Rounding.HALF_UP, 10_000, 20_000), (Rounding.HALF_EVEN, 0, 20_000)],
)  # fmt: skip
def test_rounding_of_ties(rounding: Rounding, one_second: int, three_seconds: int) -> None:
    # 0.30/min is 0.005/s: 1 s = 0.005 and 3 s = 0.015, both ties at 2 decimals
    rate = per_minute("0.30", first_increment=1, next_increment=1, decimals=2, rounding=rounding)
    assert (cost(rate, 1), cost(rate, 3)) == (one_second, three_seconds)


def test_max_duration_examples() -> None:
    rate = per_minute("1.00", connect_fee=100_000)
    assert max_duration(rate, 1_099_999) == 0
    assert max_duration(rate, 1_100_000) == 60
    assert max_duration(rate, 2_599_999) == 120
    assert max_duration(rate, 10**12) == MAX_CALL_SECONDS


def test_max_duration_cap_off_a_boundary_rounds_down_to_one() -> None:
    rate = per_minute("1.00")
    m = max_duration(rate, 10**9, cap=90)
    assert m == 60  # 120 would pass the cap, even though the amount pays for it
    assert cost(rate, next_boundary(rate, m)) <= 10**9


def test_free_destination_with_connect_fee() -> None:
    rate = per_minute("0", connect_fee=50_000)
    assert cost(rate, 3600) == 50_000
    assert max_duration(rate, 49_999) == 0
    assert max_duration(rate, 50_000) == MAX_CALL_SECONDS
    assert max_duration(rate, 50_000, cap=100) == 60
