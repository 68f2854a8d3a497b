"""Quiet hours and rate windows (pure): properties over zones with and without daylight saving
(including Lord Howe's half-hour shift), and the nights the clocks change."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.pacing import QuietHours, window_end, window_start

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/Santiago"]  # fmt: skip
BERLIN = ZoneInfo("Europe/Berlin")

minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
instants = st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31),
                        timezones=st.just(UTC))  # fmt: skip


@st.composite
def quiet_hours(draw: st.DrawFn) -> QuietHours:
    start = draw(minutes)
    end = draw(minutes.filter(lambda t: t != start))
    return QuietHours(start, end, ZoneInfo(draw(st.sampled_from(ZONES))))


@given(quiet_hours(), instants)
def test_next_allowed_is_the_first_instant_outside(q: QuietHours, at: datetime) -> None:
    nxt = q.next_allowed(at)
    assert nxt >= at
    assert not q.quiet(nxt)
    assert (nxt == at) == (not q.quiet(at))
    assert nxt - at <= timedelta(hours=25)
    if nxt != at and nxt.astimezone(q.zone).utcoffset() == (
            nxt - timedelta(hours=2)).astimezone(q.zone).utcoffset():  # fmt: skip
        assert q.quiet(nxt - timedelta(seconds=1)), "a quiet-free instant came earlier"


@given(quiet_hours(), instants, st.integers(1, 24 * 60))
def test_quiet_is_a_wall_clock_window(q: QuietHours, at: datetime, step: int) -> None:
    local = at.astimezone(q.zone).time().replace(tzinfo=None)
    inside = (q.start <= local < q.end) if q.start < q.end else not (q.end <= local < q.start)
    assert q.quiet(at) == inside


@given(instants)
def test_rate_windows_are_aligned_minutes(at: datetime) -> None:
    start = window_start(at)
    assert start <= at < window_end(at) == start + timedelta(minutes=1)
    assert start.second == 0 and start.microsecond == 0


def test_the_night_the_clocks_go_forward() -> None:
    q = QuietHours(time(21), time(8), BERLIN)
    # 23:00 CET on 28 March; 08:00 on the 29th is summer time already: 06:00 UTC.
    assert q.next_allowed(datetime(2026, 3, 28, 22, tzinfo=UTC)) == datetime(
        2026, 3, 29, 6, tzinfo=UTC)  # fmt: skip
    skipped = QuietHours(time(1), time(2, 30), BERLIN)  # 02:30 does not exist that night
    nxt = skipped.next_allowed(datetime(2026, 3, 29, 0, 15, tzinfo=UTC))  # 01:15 CET
    assert not skipped.quiet(nxt) and nxt <= datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_the_night_the_clocks_go_back() -> None:
    q = QuietHours(time(0, 30), time(2, 30), BERLIN)  # 02:30 happens twice on 25 October
    first = q.next_allowed(datetime(2026, 10, 24, 23, tzinfo=UTC))  # 01:00 CEST
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30 (CEST)
    # 02:10 CET, the second time round: quiet again by the wall clock, until 02:30 CET.
    assert q.next_allowed(datetime(2026, 10, 25, 1, 10, tzinfo=UTC)) == datetime(
        2026, 10, 25, 1, 30, tzinfo=UTC)  # fmt: skip


def test_equal_or_aware_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="different"):
        QuietHours(time(8), time(8), BERLIN)
    with pytest.raises(ValueError, match="wall-clock"):
        QuietHours(time(8, tzinfo=UTC), time(9), BERLIN)
