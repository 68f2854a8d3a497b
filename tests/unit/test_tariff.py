"""Tariff lookup: longest prefix, activation dates and time bands in the tenant's timezone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charging_engine.rating import NumberError, Rate, RatePlan, Tariff, TimeBand

LONDON = ZoneInfo("Europe/London")
TOKYO = ZoneInfo("Asia/Tokyo")
EARLY = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday
SWITCH = datetime(2026, 12, 1, tzinfo=UTC)

PEAK = TimeBand("peak", frozenset(range(5)), time(8, 0), time(18, 0))
NIGHT = TimeBand("night", frozenset(range(5)), time(22, 0), time(6, 0))  # wraps midnight
WEEKEND = TimeBand("weekend", frozenset({5, 6}))  # all day


def rate(prefix: str, price: int, **kwargs: object) -> Rate:
    return Rate(prefix=prefix, price_per_minute=price, **kwargs)  # type: ignore[arg-type]


def tariff(*rates: Rate) -> Tariff:
    return Tariff(RatePlan("retail", "EUR", rates))


def price(t: Tariff, number: str, at: datetime, tz: ZoneInfo = LONDON) -> int | None:
    found = t.find(number, at, tz)
    return None if found is None else found.price_per_minute


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def test_longest_prefix_wins() -> None:
    t = tariff(rate("4", 1), rate("44", 2), rate("447", 3), rate("4479", 4), rate("1", 5))
    assert price(t, "+44 7811 123456", EARLY) == 3
    assert price(t, "447912345678", EARLY) == 4
    assert price(t, "442079460000", EARLY) == 2
    assert price(t, "49301234567", EARLY) == 1
    assert price(t, "12125550100", EARLY) == 5
    assert price(t, "33123456789", EARLY) is None
    assert price(t, "44", EARLY) == 2  # number equal to the prefix
    assert price(t, "4", EARLY) == 1


def test_bad_numbers_and_naive_times_are_rejected() -> None:
    t = tariff(rate("44", 1))
    with pytest.raises(NumberError, match="'12ab'"):
        t.find("12ab", EARLY, LONDON)
    with pytest.raises(ValueError, match="aware"):
        t.find("441", EARLY.replace(tzinfo=None), LONDON)


def test_activation_date_schedules_a_price_change() -> None:
    rates = [rate("44", 100), rate("44", 200, active_from=SWITCH),
             rate("44", 300, active_from=SWITCH + timedelta(days=31))]  # fmt: skip
    for order in (rates, rates[::-1]):
        t = tariff(*order)
        assert price(t, "441", SWITCH - timedelta(microseconds=1)) == 100
        assert price(t, "441", SWITCH) == 200
        assert price(t, "441", SWITCH + timedelta(days=30)) == 200
        assert price(t, "441", SWITCH + timedelta(days=31)) == 300


def test_activation_compares_instants_across_offsets() -> None:
    paris_midnight = datetime(2026, 12, 1, tzinfo=ZoneInfo("Europe/Paris"))  # 23:00 UTC
    t = tariff(rate("44", 100), rate("44", 200, active_from=paris_midnight))
    assert price(t, "441", datetime(2026, 11, 30, 22, 59, tzinfo=UTC)) == 100
    assert price(t, "441", datetime(2026, 11, 30, 23, 0, tzinfo=UTC)) == 200


def test_prefix_not_yet_active_falls_back_to_shorter_prefix() -> None:
    t = tariff(rate("44", 100), rate("447", 300, active_from=SWITCH))
    assert price(t, "447911", EARLY) == 100
    assert price(t, "447911", SWITCH) == 300


def test_prefix_whose_bands_miss_falls_back_to_shorter_prefix() -> None:
    t = tariff(rate("44", 100), rate("447", 300, band=PEAK))
    assert price(t, "447911", local(2026, 6, 1, 9)) == 300
    assert price(t, "447911", local(2026, 6, 1, 19)) == 100


def test_no_rate_yet_means_unpriced() -> None:
    t = tariff(rate("44", 100, active_from=SWITCH))
    assert t.find("441", EARLY, LONDON) is None


def test_peak_and_off_peak_in_tenant_time() -> None:
    t = tariff(rate("44", 10), rate("44", 30, band=PEAK), rate("44", 5, band=NIGHT),
               rate("44", 7, band=WEEKEND))  # fmt: skip
    assert price(t, "441", local(2026, 6, 1, 7, 59)) == 10  # Monday before peak
    assert price(t, "441", local(2026, 6, 1, 8)) == 30
    assert price(t, "441", local(2026, 6, 1, 17, 59)) == 30
    assert price(t, "441", local(2026, 6, 1, 18)) == 10  # end is exclusive
    assert price(t, "441", local(2026, 6, 1, 22)) == 5
    assert price(t, "441", local(2026, 6, 6, 10)) == 7  # Saturday


def test_band_wrapping_midnight_belongs_to_the_day_it_started() -> None:
    t = tariff(rate("44", 10), rate("44", 5, band=NIGHT))
    assert price(t, "441", local(2026, 6, 2, 3)) == 5  # Tuesday 03:00: Monday's night
    assert price(t, "441", local(2026, 6, 6, 3)) == 5  # Saturday 03:00: Friday's night
    assert price(t, "441", local(2026, 6, 7, 3)) == 10  # Sunday 03:00: Saturday has none
    assert price(t, "441", local(2026, 6, 1, 3)) == 10  # Monday 03:00: Sunday has none
    assert price(t, "441", local(2026, 6, 5, 23)) == 5  # Friday 23:00
    assert price(t, "441", local(2026, 6, 6, 23)) == 10  # Saturday 23:00
    assert price(t, "441", local(2026, 6, 2, 6)) == 10  # end is exclusive


def test_same_instant_priced_in_each_tenant_timezone() -> None:
    t = tariff(rate("44", 10), rate("44", 30, band=PEAK), rate("44", 5, band=NIGHT))
    at = datetime(2026, 6, 1, 16, 30, tzinfo=UTC)  # Monday
    assert price(t, "441", at, LONDON) == 30  # 17:30 BST
    assert price(t, "441", at, TOKYO) == 5  # Tuesday 01:30 JST, Monday's night
    assert price(t, "441", at, ZoneInfo("America/New_York")) == 30  # 12:30 EDT


def test_bands_follow_daylight_saving_on_the_change_date() -> None:
    # 29 March 2026 (Sunday): London clocks go from 01:00 GMT to 02:00 BST.
    day = TimeBand("weekend-day", frozenset({5, 6}), time(8, 0), time(18, 0))
    early = TimeBand("small-hours", frozenset({5, 6}), time(1, 0), time(2, 0))
    t = tariff(rate("44", 10), rate("44", 7, band=day), rate("44", 3, band=early))
    assert price(t, "441", datetime(2026, 3, 22, 7, 30, tzinfo=UTC)) == 10  # 07:30 GMT
    assert price(t, "441", datetime(2026, 3, 29, 7, 30, tzinfo=UTC)) == 7  # 08:30 BST
    assert price(t, "441", datetime(2026, 3, 29, 0, 59, tzinfo=UTC)) == 10  # 00:59 GMT
    # 01:00 UTC is 02:00 BST: the 01:00-02:00 local hour does not exist that day.
    assert price(t, "441", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == 10
    assert price(t, "441", datetime(2026, 3, 28, 1, 0, tzinfo=UTC)) == 3  # 01:00 GMT


def test_newer_banded_rate_replaces_older_band() -> None:
    t = tariff(
        rate("44", 10), rate("44", 30, band=PEAK), rate("44", 40, band=PEAK, active_from=SWITCH)
    )
    monday_peak = datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert price(t, "441", monday_peak) == 30
    assert price(t, "441", monday_peak + timedelta(days=7)) == 40
    assert price(t, "441", monday_peak + timedelta(days=7, hours=9)) == 10  # off-peak


def test_active_band_beats_newer_band_less_rate() -> None:
    # The spec's order: a matching band wins first, then the latest activation.
    t = tariff(rate("44", 30, band=PEAK), rate("44", 20, active_from=SWITCH))
    monday_peak = datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert price(t, "441", monday_peak) == 30
    assert price(t, "441", monday_peak.replace(hour=20)) == 20


def test_properties() -> None:
    plan = RatePlan("wholesale", "USD", (rate("44", 1), rate("44", 2, band=PEAK), rate("1", 3)))
    t = Tariff.from_plan(plan)
    assert (t.plan_id, t.currency, len(t)) == ("wholesale", "USD", 3)
    assert len(tariff()) == 0
    assert tariff().find("441", EARLY, LONDON) is None


_OLDEST = datetime.min.replace(tzinfo=UTC)


def oracle_find(rates: list[Rate], digits: str, at: datetime, tz: ZoneInfo) -> Rate | None:
    """Brute force over every rate: longest prefix, then band, then latest activation."""
    local_time = at.astimezone(tz)
    applicable = [
        r
        for r in rates
        if digits.startswith(r.prefix)
        and (r.active_from is None or r.active_from <= at)
        and (r.band is None or r.band.contains(local_time))
    ]
    if not applicable:
        return None
    return max(
        applicable,
        key=lambda r: (len(r.prefix), r.band is not None, r.active_from or _OLDEST),
    )


@st.composite
def random_rates(draw: st.DrawFn) -> Rate:
    band = draw(st.none() | st.sampled_from([PEAK, NIGHT, WEEKEND]))
    active = draw(st.none() | st.sampled_from([EARLY, SWITCH, SWITCH + timedelta(hours=5)]))
    prefix = draw(st.sampled_from(["1", "4", "44", "447", "4471"]) | st.text("4471", min_size=1))
    return rate(prefix[:15], draw(st.integers(0, 100)), band=band, active_from=active)


@settings(max_examples=400)
@given(
    st.lists(random_rates(), min_size=1, max_size=25),
    st.sampled_from(["4471234", "4412", "4", "17"]) | st.text("4471", min_size=1, max_size=8),
    st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.sampled_from([LONDON, TOKYO, ZoneInfo("America/Los_Angeles")]),
)
def test_find_matches_brute_force(
    rates: list[Rate], digits: str, at: datetime, tz: ZoneInfo
) -> None:
    assert tariff(*rates).find(digits, at, tz) is oracle_find(rates, digits, at, tz)


def test_large_plan_finds_the_longest_prefix() -> None:
    rng = random.Random(7)
    prefixes = {str(rng.randrange(10 ** rng.randrange(1, 8))) for _ in range(50_000)}
    prefixes.discard("0")
    t = tariff(*(rate(p, i) for i, p in enumerate(sorted(prefixes))))
    assert len(t) == len(prefixes)
    for _ in range(200):
        number = str(rng.randrange(10**10, 10**12))
        longest = max((p for p in prefixes if number.startswith(p)), key=len, default=None)
        found = t.find(number, EARLY, LONDON)
        assert (found and found.prefix) == longest
