"""Batch rating gives exactly the scalar rater's answer (``Tariff.find`` + ``cost``) per CDR.

Random plans (overlapping prefixes of every length, leading zeros, bands that wrap midnight,
activation dates close to the calls, every rounding mode, grace/minimum/increments, connect
fees, prices up to the largest allowed) against random CDRs (unknown destinations, numbers
shorter than a prefix, zero/negative/huge durations, instants around DST changes).
"""

from __future__ import annotations

import itertools
import os
import random
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import TZPATH, ZoneInfo, available_timezones

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charging_engine.money import MAX_AMOUNT, Rounding
from charging_engine.rating import (
    NumberError,
    Rate,
    RateError,
    RatePlan,
    Tariff,
    TimeBand,
    batch_numbers,
)
from charging_engine.rating.batch import (
    MAX_EXACT_PRODUCT,
    BatchRater,
    Destinations,
    utc_offsets_us,
)
from charging_engine.rating.numbers import normalize
from charging_engine.rating.pricing import billed_seconds, cost

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham",
         "Asia/Kolkata", "America/Sao_Paulo", "Africa/Casablanca", "UTC")  # fmt: skip
BASE_MS = int((datetime(2026, 1, 1, tzinfo=UTC) - EPOCH).total_seconds() * 1000)


def ms_of(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def at_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def offset_at(zone: ZoneInfo, ms: int) -> timedelta:
    offset = at_ms(ms).astimezone(zone).utcoffset()
    assert offset is not None
    return offset


@cache
def changes(zone_name: str) -> tuple[int, ...]:
    """Epoch ms of every offset change of a zone in 2025-2027 (hourly scan, then to the ms)."""
    zone = ZoneInfo(zone_name)
    found = []
    start = ms_of(datetime(2025, 1, 1, tzinfo=UTC))
    step = 3_600_000
    for k in range(3 * 366 * 24):
        a, b = start + k * step, start + (k + 1) * step
        if offset_at(zone, a) != offset_at(zone, b):
            before = offset_at(zone, a)
            while b - a > 1:
                mid = (a + b) // 2
                a, b = (mid, b) if offset_at(zone, mid) == before else (a, mid)
            found.append(b)
    return tuple(found)


def scalar(plan: RatePlan, numbers: list[str], starts: list[int], durations: list[int],
           zone: ZoneInfo) -> tuple[list[int], list[int], list[int]]:  # fmt: skip
    """The reference: one ``Tariff.find`` and ``cost`` per CDR; -1 for no rate."""
    tariff = Tariff(plan)
    position = {id(r): i for i, r in enumerate(plan.rates)}
    index, billed, costs = [], [], []
    for number, start, duration in zip(numbers, starts, durations, strict=True):
        rate = tariff.find(number, at_ms(start), zone)
        index.append(-1 if rate is None else position[id(rate)])
        billed.append(0 if rate is None else billed_seconds(rate, duration))
        costs.append(0 if rate is None else cost(rate, duration))
    return index, billed, costs


# -- strategies ----------------------------------------------------------------------------

DIGITS = st.text("0147", min_size=1, max_size=4)  # few digits: prefixes overlap a lot
TIMES = st.sampled_from([time(0), time(1), time(1, 30), time(2), time(3), time(8), time(18),
                         time(22), time(23, 59, 59, 999_999)]) | st.times()  # fmt: skip


@st.composite
def bands(draw: st.DrawFn) -> TimeBand | None:
    if draw(st.booleans()):
        return None
    days = draw(st.sets(st.integers(0, 6), min_size=1))
    start = draw(TIMES)
    end = draw(st.just(start) | TIMES)  # equal: all day; end < start: wraps midnight
    return TimeBand("b", frozenset(days), start, end)


@st.composite
def plans(draw: st.DrawFn, anchors: list[int]) -> RatePlan:
    roots = draw(st.lists(DIGITS, min_size=1, max_size=6))
    prefixes = draw(st.lists(
        st.builds(lambda r, tail: (r + tail)[:15], st.sampled_from(roots),
                  st.text("0147", max_size=3) | st.text("0123456789", min_size=9, max_size=14)),
        min_size=1, max_size=14,
    ))  # fmt: skip
    ties = st.integers(1, 10**5).map(lambda k: k * 3_000)
    rates = []
    for prefix in prefixes:
        when = draw(st.none() | st.builds(
            lambda a, d, z: (at_ms(a) + timedelta(microseconds=d)).astimezone(ZoneInfo(z)),
            st.sampled_from(anchors), st.integers(-10**11, 10**11) | st.integers(-2000, 2000),
            st.sampled_from(ZONES),
        ))  # fmt: skip
        rates.append(Rate(
            prefix=prefix,
            price_per_minute=draw(st.integers(0, 10**9) | ties | st.sampled_from(
                [0, 1, 59, 60, 61, MAX_AMOUNT])),
            connect_fee=draw(st.just(0) | st.integers(0, 10**7)),
            min_duration=draw(st.just(0) | st.integers(0, 600)),
            first_increment=draw(st.sampled_from([1, 6, 30, 60]) | st.integers(1, 86_400)),
            next_increment=draw(st.sampled_from([1, 6, 30, 60]) | st.integers(1, 86_400)),
            grace_seconds=draw(st.just(0) | st.integers(0, 120)),
            rounding=draw(st.sampled_from(Rounding)),
            decimals=draw(st.integers(0, 6)),
            band=draw(bands()),
            active_from=when,
        ))  # fmt: skip
    return RatePlan("p", "USD", tuple(rates))


@st.composite
def numbers_for(draw: st.DrawFn, plan: RatePlan) -> str:
    prefix = draw(st.sampled_from([r.prefix for r in plan.rates]))
    kind = draw(st.integers(0, 3))
    if kind == 0:  # a number under a known prefix
        return (prefix + draw(st.text("0123456789", max_size=12)))[:15]
    if kind == 1:  # shorter than the prefix: only shorter prefixes may match
        return prefix[: draw(st.integers(1, len(prefix)))]
    return draw(st.text("0123456789", min_size=1, max_size=15))  # mostly unknown


@st.composite
def batches(draw: st.DrawFn) -> tuple[RatePlan, list[str], list[int], list[int], ZoneInfo]:
    zone_name = draw(st.sampled_from(ZONES))
    anchors = list(changes(zone_name)) or [BASE_MS]
    plan = draw(plans(anchors))
    size = draw(st.integers(0, 60))
    numbers = draw(st.lists(numbers_for(plan), min_size=size, max_size=size))
    start = st.builds(lambda a, d: a + d, st.sampled_from(anchors),
                      st.integers(-2000, 2000) | st.integers(-86_400_000, 86_400_000)
                      | st.integers(-10**11, 10**11))  # fmt: skip
    starts = draw(st.lists(start, min_size=size, max_size=size))
    duration = (st.integers(-3, 400) | st.integers(0, 10**6)
                | st.sampled_from([0, 1, 59, 60, 61, 9_223]))  # fmt: skip
    durations = draw(st.lists(duration, min_size=size, max_size=size))
    return plan, numbers, starts, durations, ZoneInfo(zone_name)


# -- batch == scalar -----------------------------------------------------------------------


def assert_same(plan: RatePlan, numbers: list[str], starts: list[int], durations: list[int],
                zone: ZoneInfo) -> None:  # fmt: skip
    rater = BatchRater(plan)
    try:
        index, billed, costs = scalar(plan, numbers, starts, durations, zone)
    except NumberError:  # e.g. "00": the international prefix and nothing after it
        with pytest.raises(NumberError):
            rater.rate(numbers, starts, durations, zone)
        return
    if max([*billed, *costs, 0]) > MAX_EXACT_PRODUCT:
        with pytest.raises(OverflowError):
            rater.rate(numbers, starts, durations, zone)
        return
    got = rater.rate(numbers, np.array(starts, dtype=np.int64), durations, zone)
    assert got.rate_index.tolist() == index
    assert got.billed.tolist() == billed
    assert got.cost.tolist() == costs
    as_array = rater.rate(np.array(numbers, dtype=np.str_), starts, durations, zone.key)
    assert as_array.cost.tolist() == costs
    plain = [i for i, n in enumerate(numbers) if not n.startswith("00")]  # as normalize() has it
    ints = Destinations.from_ints([int(numbers[i]) for i in plain],
                                  [len(numbers[i]) for i in plain])  # fmt: skip
    got_ints = rater.rate(ints, [starts[i] for i in plain], [durations[i] for i in plain], zone)
    assert got_ints.rate_index.tolist() == [index[i] for i in plain]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_batch_equals_scalar(case: tuple[RatePlan, list[str], list[int], list[int], ZoneInfo]
                             ) -> None:  # fmt: skip
    assert_same(*case)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_batch_equals_scalar_through_lookup_tables(
    case: tuple[RatePlan, list[str], list[int], list[int], ZoneInfo]
) -> None:
    """Large plans go through the digit tables; force them on the small random plans."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batch_numbers.PrefixIndex, "SMALL", -1)
        assert_same(*case)


@settings(max_examples=60, deadline=None)
@given(st.integers(MAX_AMOUNT // 2, MAX_AMOUNT), st.integers(9_000, 10_000_000),
       st.sampled_from(Rounding))  # fmt: skip
def test_products_beyond_int64_are_exact_or_refused(price: int, seconds: int, mode: Rounding
                                                    ) -> None:  # fmt: skip
    plan = RatePlan("p", "USD", (Rate("1", price, first_increment=1, next_increment=1,
                                      rounding=mode),))  # fmt: skip
    assert_same(plan, ["12", "13"], [BASE_MS, BASE_MS], [seconds, seconds // 7], ZoneInfo("UTC"))
    assert_same(plan, ["12"], [BASE_MS], [2**62 + seconds], ZoneInfo("UTC"))  # refused


def test_huge_durations_at_zero_price_cost_the_connect_fee() -> None:
    plan = RatePlan("p", "USD", (Rate("1", 0, connect_fee=5, first_increment=1,
                                      next_increment=1),))  # fmt: skip
    got = BatchRater(plan).rate(["1"] * 3, [BASE_MS] * 3, [2**62, 2**62 + 1, 2**63 - 86_400],
                                "UTC")  # fmt: skip
    assert got.cost.tolist() == [5, 5, 5]
    assert got.billed.tolist() == [2**62, 2**62 + 1, 2**63 - 86_400]
    minutes = RatePlan("p", "USD", (Rate("1", 0, first_increment=1, next_increment=60),))
    with pytest.raises(OverflowError, match="CDR 1"):  # billed rounds up beyond int64
        BatchRater(minutes).rate(["1"] * 2, [BASE_MS] * 2, [60, 2**63 - 1], "UTC")


def test_a_realistic_plan_rates_like_the_scalar() -> None:
    rng = random.Random(5)
    peak = TimeBand("peak", frozenset(range(5)), time(8), time(18))
    night = TimeBand("night", frozenset(range(7)), time(22), time(6))
    rates: list[Rate] = []
    prefixes: set[str] = set()
    while len(prefixes) < 3000:
        prefixes.add(str(rng.randint(1, 999)) + str(rng.randint(0, 10**rng.randint(0, 9))))
    for p in sorted(prefixes):
        price = rng.randint(100, 500_000)
        rates.append(Rate(p, price, rounding=rng.choice(list(Rounding)),
                          first_increment=rng.choice([1, 30, 60]),
                          next_increment=rng.choice([1, 6, 60])))  # fmt: skip
        if rng.random() < 0.2:
            rates.append(Rate(p, price * 2, band=rng.choice([peak, night])))
    plan = RatePlan("p", "GBP", tuple(rates))
    pool = sorted(prefixes)
    numbers = [(rng.choice(pool) + str(rng.randint(0, 10**9)))[:15] if rng.random() < 0.9
               else str(rng.randint(0, 10**11)) for _ in range(20_000)]  # fmt: skip
    spring = ms_of(datetime(2026, 3, 29, 1, tzinfo=UTC))  # London's clocks go forward
    starts = [spring + rng.randint(-10 * 86_400_000, 10 * 86_400_000) for _ in numbers]
    durations = [rng.randint(0, 3600) for _ in numbers]
    assert_same(plan, numbers, starts, durations, ZoneInfo("Europe/London"))


# -- local time ----------------------------------------------------------------------------


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize("span_days", [3, 40_000])  # every hour sampled, or only used hours
def test_offsets_match_zoneinfo_at_every_instant(zone_name: str, span_days: int) -> None:
    zone = ZoneInfo(zone_name)
    rng = np.random.default_rng(span_days)
    # changes off the hour first (Lord Howe's half hour): the sampling must bisect to them
    around = sorted((c for c in changes(zone_name) if c > BASE_MS),
                    key=lambda c: c % 3_600_000 == 0) or [BASE_MS]  # fmt: skip
    near = [c + d for c in around for d in (-1001, -1000, -1, 0, 1, 999, 1000)]
    if span_days < 100:  # a short span: one change, every hour of it sampled
        near = near[:7]
    half = span_days * 43_200_000
    spread = rng.integers(around[0] - half, around[0] + half, 500).tolist()
    instants = [*near, *spread]
    got = utc_offsets_us(np.array(instants, dtype=np.int64), zone).tolist()
    want = [offset_at(zone, ms) // timedelta(microseconds=1) for ms in instants]
    assert got == want


def test_no_zone_changes_offset_twice_within_an_hour() -> None:
    """The offset sampling relies on it: check every zone of the installed tz database."""
    zoneinfo_common = pytest.importorskip("zoneinfo._common")
    shortest = None
    for key in available_timezones():
        path = next((os.path.join(d, key) for d in TZPATH
                     if os.path.isfile(os.path.join(d, key))), None)  # fmt: skip
        if path is None:
            continue
        with open(path, "rb") as f:
            _, trans_utc, *_ = zoneinfo_common.load_data(f)
        gaps = [b - a for a, b in itertools.pairwise(trans_utc)]
        if gaps and (shortest is None or min(gaps) < shortest[0]):
            shortest = (min(gaps), key)
    if shortest is None:
        pytest.skip("no tz database files found on TZPATH")
    assert shortest[0] > 3600, shortest


# -- inputs --------------------------------------------------------------------------------

PLAN = RatePlan("p", "USD", (Rate("44", 60_000), Rate("0044", 1), Rate("1", 6_000)))


def test_leading_zeros_and_integer_numbers() -> None:
    rater = BatchRater(PLAN)
    got = rater.rate(["00441", "441", "0441"], [BASE_MS] * 3, [60] * 3, "UTC")
    # "00441" is normalised to "441" (international prefix) exactly as Tariff.find does
    assert got.rate_index.tolist() == [0, 0, -1]
    ints = np.array([441, 12125550100], dtype=np.uint64)
    assert rater.rate(ints, [BASE_MS] * 2, [60, 60], "UTC").rate_index.tolist() == [0, 2]
    zeros = Destinations.from_ints([441], [6])  # "000441"
    assert rater.rate(zeros, [BASE_MS], [60], "UTC").rate_index.tolist() == [-1]
    raw = Destinations.from_ints([441], [5])  # "00441" as final digits: under "0044"
    assert rater.rate(raw, [BASE_MS], [60], "UTC").rate_index.tolist() == [1]


def test_non_normalised_numbers_are_normalised_like_the_scalar() -> None:
    got = BatchRater(PLAN).rate(["+44 20 7946 0000", "1-212-555", "0044 1"], [BASE_MS] * 3,
                                [60] * 3, "UTC")  # fmt: skip
    assert got.rate_index.tolist() == [0, 2, 0]


@pytest.mark.parametrize(("numbers", "match"), [
    (["441", "12ab"], r"numbers\[1\].*'12ab'"),
    (["441", ""], r"numbers\[1\].*empty"),
    (["1234567890123456"], r"numbers\[0\].*16 digits"),
    (["441", None], r"numbers\[1\]"),
    (["44\x001"], r"numbers\[0\]"),
    (["441", "٤٤١"], r"numbers\[1\]"),  # Arabic-Indic digits are not E.164 digits
])  # fmt: skip
def test_bad_numbers_name_their_index(numbers: list[object], match: str) -> None:
    with pytest.raises(NumberError, match=match):
        BatchRater(PLAN).rate(numbers, [BASE_MS] * len(numbers),  # type: ignore[arg-type]
                              [60] * len(numbers), "UTC")  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("0123456789+ -().٤a\x00", max_size=18)
                | st.lists(st.text("0123456789", min_size=1, max_size=16))))  # fmt: skip
def test_strings_are_read_exactly_like_normalize(numbers: list[str]) -> None:
    try:
        want = [normalize(n) for n in numbers]
    except NumberError:
        with pytest.raises(NumberError):
            Destinations.from_strings(numbers)
        return
    for encoded in (Destinations.from_strings(numbers),
                    Destinations.from_strings(np.array(numbers, dtype=np.str_))):  # fmt: skip
        assert encoded.lengths.tolist() == [len(d) for d in want]
        assert encoded.padded.tolist() == [int(d) * 10 ** (15 - len(d)) for d in want]


def test_bad_arrays_are_refused() -> None:
    rater = BatchRater(PLAN)
    with pytest.raises(ValueError, match="differ in length"):
        rater.rate(["441", "442"], [BASE_MS], [60, 60], "UTC")
    with pytest.raises(TypeError, match="durations must be integers"):
        rater.rate(["441"], [BASE_MS], [60.0], "UTC")
    with pytest.raises(TypeError, match="start_ms must be integers"):
        rater.rate(["441"], [2**70], [60], "UTC")
    with pytest.raises(ValueError, match=r"start_ms\[1\].*outside"):
        rater.rate(["441", "441"], [BASE_MS, 10**15], [60, 60], "UTC")
    with pytest.raises(ValueError, match="1-D"):
        rater.rate(["441"], [[BASE_MS]], [60], "UTC")
    with pytest.raises(NumberError, match=r"numbers\[1\]"):
        Destinations.from_ints([441, 10**15])
    with pytest.raises(NumberError, match="does not fit 2 digits"):
        Destinations.from_ints([441], [2])
    with pytest.raises(RateError, match="without a tzinfo"):
        BatchRater([Rate("1", 1, band=TimeBand("b", start=time(1, tzinfo=UTC)))])
    with pytest.raises(TypeError, match="Rate objects"):
        BatchRater(["1"])  # type: ignore[list-item]


def test_empty_batches_and_plans() -> None:
    got = BatchRater(PLAN).rate([], [], [], "UTC")
    assert len(got) == 0 and got.cost.dtype == np.dtype(np.int64)
    none = BatchRater(RatePlan("p", "USD", ())).rate(["441"], [BASE_MS], [60], "UTC")
    assert none.rate_index.tolist() == [-1] and none.cost.tolist() == [0]
