"""Bill cycles: every BCD, period and anchor over 2000-2100 against an independent model,
plus property tests for index lookup, local-time spans, invoice-run dues and BCD changes."""

from __future__ import annotations

import calendar
import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.cycles import (
    BillCycle,
    BillingPeriod,
    PeriodSpan,
    boundary,
    change_bcd,
    default_bcd,
    ended_periods,
    index_of,
    next_period,
    period_of,
    previous_period,
    span_at,
    start_of_day,
)

FIRST, LAST = date(2000, 1, 1), date(2100, 12, 31)
ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "Pacific/Apia",
         "America/Sao_Paulo", "UTC"]
# Zones whose midnight is skipped or repeated on some DST days, for the day-by-day scan.
MIDNIGHT_ZONES = [*ZONES, "America/Havana", "America/Santiago", "Asia/Beirut", "Asia/Gaza"]
W, M, Q, Y = BillingPeriod
STEP = {M: 1, Q: 3, Y: 12}
DAY, US = timedelta(days=1), timedelta(microseconds=1)


def clamp(y: int, m: int, bcd: int) -> date:
    return date(y, m, min(bcd, calendar.monthrange(y, m)[1]))


def expected_starts(cycle: BillCycle) -> list[date]:
    """The independent model: every period start in 2000-2100, listed from the calendar."""
    if cycle.period is W:
        first = FIRST + timedelta(days=(cycle.bcd - FIRST.isoweekday()) % 7)
        return [first + timedelta(weeks=k) for k in range((LAST - first).days // 7 + 1)]
    months = [m for m in range(1, 13)
              if cycle.period is M or (m - cycle.anchor_month) % STEP[cycle.period] == 0]
    return [clamp(y, m, cycle.bcd) for y in range(2000, 2101) for m in months]


def check_chain(cycle: BillCycle) -> None:
    starts = expected_starts(cycle)
    n0 = index_of(cycle, starts[0])
    got = [boundary(cycle, n0 + k) for k in range(len(starts) + 1)]
    assert got[:-1] == starts
    assert got[-1] > LAST
    for k, (start, end) in enumerate(itertools.pairwise(got)):
        assert start < end  # none empty, strictly increasing
        assert index_of(cycle, start) == n0 + k
        assert index_of(cycle, end - DAY) == n0 + k  # last day still in period n
        assert period_of(cycle, start) == PeriodSpan(n0 + k, start, end, cycle)


@pytest.mark.parametrize("bcd", range(1, 32))
def test_monthly_one_period_per_month_on_the_clamped_day(bcd: int) -> None:
    cycle = BillCycle(M, bcd)
    check_chain(cycle)
    assert len(expected_starts(cycle)) == 1212


@pytest.mark.parametrize("period", [Q, Y])
@pytest.mark.parametrize("anchor", range(1, 13))
def test_quarterly_and_yearly_every_bcd_and_anchor(period: BillingPeriod, anchor: int) -> None:
    for bcd in range(1, 32):
        cycle = BillCycle(period, bcd, anchor)
        check_chain(cycle)
        starts = expected_starts(cycle)
        per_year = 4 if period is Q else 1
        assert len(starts) == 101 * per_year
        assert all((s.month - anchor) % STEP[period] == 0 for s in starts)
        assert {(s.year, (s.month - anchor) % 12 // STEP[period]) for s in starts} == {
            (y, k) for y in range(2000, 2101) for k in range(per_year)
        }  # exactly one per quarter / year


@pytest.mark.parametrize("bcd", range(1, 8))
def test_weekly_periods_are_seven_days_from_the_weekday(bcd: int) -> None:
    cycle = BillCycle(W, bcd)
    check_chain(cycle)
    starts = expected_starts(cycle)
    assert all(s.isoweekday() == bcd for s in starts)
    assert {period_of(cycle, s).days for s in starts} == {7}


def test_month_end_regressions() -> None:
    c31 = BillCycle(M, 31)
    n = index_of(c31, date(2024, 1, 31))
    # Kill Bill #127 stopped after March; Lago gave 01-31..02-27 then 02-28..03-30.
    assert [boundary(c31, n + k).isoformat()[5:] for k in range(6)] == [
        "01-31", "02-29", "03-31", "04-30", "05-31", "06-30"]
    assert period_of(c31, date(2025, 3, 1)) == PeriodSpan(
        n + 13, date(2025, 2, 28), date(2025, 3, 31), c31)
    q = BillCycle(Q, 31, 2)
    m = index_of(q, date(2024, 2, 29))
    assert [boundary(q, m + k).isoformat() for k in range(5)] == [
        "2024-02-29", "2024-05-31", "2024-08-31", "2024-11-30", "2025-02-28"]
    y = BillCycle(Y, 29, 2)
    k = index_of(y, date(2024, 2, 29))
    assert [boundary(y, k + i).isoformat() for i in range(5)] == [
        "2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"]


@st.composite
def cycles(draw: st.DrawFn) -> BillCycle:
    period = draw(st.sampled_from(list(BillingPeriod)))
    bcd = draw(st.integers(1, 7 if period is W else 31))
    return BillCycle(period, bcd, draw(st.integers(1, 12)))


dates = st.dates(FIRST, LAST)
zones = st.sampled_from(ZONES).map(ZoneInfo)
instants = st.datetimes(datetime(2000, 1, 1), datetime(2100, 12, 31), timezones=st.just(UTC))
fast = settings(max_examples=300, deadline=None)


@fast
@given(cycles(), dates)
def test_any_date_maps_to_the_period_between_its_boundaries(cycle: BillCycle, d: date) -> None:
    n = index_of(cycle, d)
    assert boundary(cycle, n) <= d < boundary(cycle, n + 1)
    span = period_of(cycle, d)
    assert (span.index, span.start, span.end) == (n, boundary(cycle, n), boundary(cycle, n + 1))
    assert d in span
    assert next_period(span).start == span.end and previous_period(span).end == span.start
    assert previous_period(next_period(span)) == span
    lengths = {W: (7, 7), M: (28, 31), Q: (89, 92), Y: (365, 366)}[cycle.period]
    assert lengths[0] <= span.days <= lengths[1]


@fast
@given(cycles(), st.data())
def test_index_of_boundary_is_n(cycle: BillCycle, data: st.DataObject) -> None:
    reach = 1900 * 52 if cycle.period is W else 1900 * 12 // STEP[cycle.period]
    n = data.draw(st.integers(-reach, reach))
    assert index_of(cycle, boundary(cycle, n)) == n
    assert index_of(cycle, boundary(cycle, n + 1) - DAY) == n


@fast
@given(cycles(), instants, zones)
def test_span_at_contains_the_instant_and_touches_its_neighbours(
    cycle: BillCycle, instant: datetime, tz: ZoneInfo
) -> None:
    span = span_at(cycle, instant, tz)
    assert span.start <= instant < span.end
    assert span.start.tzinfo is UTC and span.end.tzinfo is UTC
    assert (span.start_date, span.end_date) == (
        boundary(cycle, span.index), boundary(cycle, span.index + 1))
    assert span.start == start_of_day(span.start_date, tz)
    after = span_at(cycle, span.end, tz)
    assert (after.index, after.start, after.start_date) == (span.index + 1, span.end, span.end_date)
    assert span_at(cycle, span.end - US, tz).index == span.index
    assert span_at(cycle, span.start, tz) == span
    assert span_at(cycle, span.start - US, tz).end == span.start
    assert span_at(cycle, instant.astimezone(tz), tz) == span  # any aware form of the instant


@pytest.mark.parametrize("zone", MIDNIGHT_ZONES)
def test_start_of_day_is_the_first_instant_of_each_date(zone: str) -> None:
    tz = ZoneInfo(zone)
    d, previous = date(2000, 1, 1), start_of_day(date(1999, 12, 31), tz)
    while d <= date(2040, 12, 31):
        s = start_of_day(d, tz)
        # Increasing, and strictly unless the date before was skipped (Apia, 2011-12-30): a
        # skipped date starts where the next one does, and periods span 7+ days, so none empty.
        assert s > previous or (s == previous and s.astimezone(tz).date() > d - DAY)
        assert s.astimezone(tz).date() >= d > (s - US).astimezone(tz).date()
        previous, d = s, d + DAY


@pytest.mark.parametrize(
    ("zone", "day", "utc"),
    [
        ("America/Sao_Paulo", date(2018, 11, 4), datetime(2018, 11, 4, 3, tzinfo=UTC)),  # no 00:00
        ("America/Havana", date(2023, 3, 12), datetime(2023, 3, 12, 5, tzinfo=UTC)),  # no 00:00
        ("America/Havana", date(2023, 11, 5), datetime(2023, 11, 5, 4, tzinfo=UTC)),  # two 00:00
        ("Pacific/Apia", date(2011, 12, 30), datetime(2011, 12, 30, 10, tzinfo=UTC)),  # no day
        ("Pacific/Apia", date(2011, 12, 31), datetime(2011, 12, 30, 10, tzinfo=UTC)),
        ("Asia/Kolkata", date(2024, 3, 1), datetime(2024, 2, 29, 18, 30, tzinfo=UTC)),
        # Gap 23:30 -> 00:30 around midnight: the answer is 00:30 EDT, where reading midnight
        # with the old offset (fold=0) would give 01:00.
        ("America/Toronto", date(1919, 3, 31), datetime(1919, 3, 31, 4, 30, tzinfo=UTC)),
    ],
)
def test_start_of_day_on_irregular_days(zone: str, day: date, utc: datetime) -> None:
    assert start_of_day(day, ZoneInfo(zone)) == utc


def test_period_starting_on_a_skipped_date_still_has_one_owner_per_instant() -> None:
    apia, weekly_friday = ZoneInfo("Pacific/Apia"), BillCycle(W, 5)  # 2011-12-30 was a Friday
    t = datetime(2011, 12, 30, 10, tzinfo=UTC)
    before, at = span_at(weekly_friday, t - US, apia), span_at(weekly_friday, t, apia)
    assert before.end == at.start == t and at.start_date == date(2011, 12, 30)
    assert at.index == before.index + 1


@fast
@given(cycles(), instants, zones, st.integers(-4, 2))
def test_ended_periods_are_exactly_those_over_by_now(
    cycle: BillCycle, now: datetime, tz: ZoneInfo, back: int
) -> None:
    current = span_at(cycle, now, tz).index
    since = current + back
    due = ended_periods(cycle, since, now, tz)
    assert due == list(range(since + 1, current))
    for n in {since, since + 1, current - 1, current, current + 1}:
        end = start_of_day(boundary(cycle, n + 1), tz)
        assert (end <= now) == (n < current)  # ended by now exactly when before the current one
        assert (n in due) == (since < n < current)


def test_ended_periods_turn_due_at_local_midnight() -> None:
    cycle, ist = BillCycle(M, 1), ZoneInfo("Asia/Kolkata")
    feb = index_of(cycle, date(2024, 2, 1))
    last_invoiced = feb - 1
    midnight = datetime(2024, 2, 29, 18, 30, tzinfo=UTC)  # 2024-03-01 00:00 IST
    assert ended_periods(cycle, last_invoiced, midnight - US, ist) == []
    assert ended_periods(cycle, last_invoiced, midnight, ist) == [feb]
    assert ended_periods(cycle, feb, midnight, ist) == []


@fast
@given(cycles(), dates, st.data())
def test_change_bcd_bridges_without_gap_or_overlap(
    cycle: BillCycle, at: date, data: st.DataObject
) -> None:
    new_bcd = data.draw(st.integers(1, 7 if cycle.period is W else 31))
    t = change_bcd(cycle, at, new_bcd)
    old = period_of(cycle, at)
    assert t.new_cycle == replace(cycle, bcd=new_bcd)
    assert t.span.start == old.start and t.span.start <= at < t.span.end
    assert boundary(t.new_cycle, index_of(t.new_cycle, t.span.end)) == t.span.end  # a boundary
    assert index_of(t.new_cycle, t.span.end) == index_of(t.new_cycle, at) + 1  # the first one
    span = t.span
    for _ in range(3):  # what follows is the new cycle, contiguous
        after = next_period(span)
        assert after == period_of(t.new_cycle, span.end) and after.start == span.end
        span = after
    if new_bcd == cycle.bcd:
        assert t.span == old


@pytest.mark.parametrize(
    ("at", "new_bcd", "end"),
    [
        (date(2024, 1, 20), 25, date(2024, 1, 25)),  # short transition
        (date(2024, 1, 20), 15, date(2024, 2, 15)),  # long transition
        (date(2024, 1, 15), 15, date(2024, 2, 15)),  # `at` on a new boundary: strictly after
        (date(2024, 1, 20), 31, date(2024, 1, 31)),
    ],
)
def test_change_bcd_examples(at: date, new_bcd: int, end: date) -> None:
    t = change_bcd(BillCycle(M, 1), at, new_bcd)
    assert (t.span.start, t.span.end) == (date(2024, 1, 1), end)
    assert next_period(t.span).start == end


def test_default_bcd() -> None:
    assert default_bcd(date(2024, 1, 31), None) == 31
    assert default_bcd(date(2024, 1, 31), 5) == 5
    assert default_bcd(date(2024, 1, 31), None, period=W) == 3  # a Wednesday
    with pytest.raises(ValueError, match="1-31"):
        default_bcd(date(2024, 1, 31), 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bcd": 0}, "day of month 1-31"), ({"bcd": 32}, "day of month 1-31"),
        ({"period": W, "bcd": 8}, "ISO weekday 1-7"), ({"bcd": True}, "day of month"),
        ({"anchor_month": 13}, "anchor_month"), ({"period": "daily"}, "unknown billing period"),
    ],
)
def test_invalid_cycles_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BillCycle(**kwargs)  # type: ignore[arg-type]


def test_text_period_becomes_the_enum_and_naive_instants_are_refused() -> None:
    assert BillCycle("quarterly", 5, 2).period is Q  # type: ignore[arg-type]
    assert BillCycle().period is M
    with pytest.raises(ValueError, match="aware"):
        span_at(BillCycle(), datetime(2024, 1, 1), ZoneInfo("UTC"))
