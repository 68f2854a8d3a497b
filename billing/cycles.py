"""Bill cycles: the periods a postpaid account is invoiced for. Pure date arithmetic, no I/O.

Every boundary is computed from (bill cycle day, period number) and clamped to the month's last
day, never stepped from the previous boundary: stepping turns a BCD-31 account into a BCD-28 one
after February (Kill Bill #127) and lets leap days open gaps or overlaps (Lago #1567, #1840,
#6173). Period ``n`` is the half-open date range ``[boundary(n), boundary(n + 1))``; period
numbers count from a fixed origin (January 1970, or the week of Monday 1969-12-29), so the same
``n`` always names the same period of a cycle and consecutive periods can never drift apart.

Local time: a period starts at the first instant of its start date in the tenant's zone, which is
local midnight when that exists. On a day whose midnight falls in a DST gap (America/Sao_Paulo
until 2019, America/Havana) it is the first valid instant of the date (the end of the gap); on a
date the zone skipped entirely (Pacific/Apia, 2011-12-30) it is the first instant of the next
date that exists. An ambiguous midnight (clocks going back to 00:00) means its first occurrence.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from enum import StrEnum
from zoneinfo import ZoneInfo

__all__ = [
    "BillCycle",
    "BillingPeriod",
    "PeriodSpan",
    "TimedSpan",
    "Transition",
    "boundary",
    "change_bcd",
    "default_bcd",
    "ended_periods",
    "index_of",
    "next_period",
    "period_of",
    "previous_period",
    "span_at",
    "start_of_day",
]

_ORIGIN_MONTH = 1970 * 12  # month number (year * 12 + month - 1) of monthly period 0
_ORIGIN_MONDAY = date(1969, 12, 29).toordinal()  # the Monday of weekly period 0


class BillingPeriod(StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


_STEP_MONTHS = {BillingPeriod.MONTHLY: 1, BillingPeriod.QUARTERLY: 3, BillingPeriod.YEARLY: 12}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bcd_range(period: BillingPeriod) -> int:
    return 7 if period is BillingPeriod.WEEKLY else 31


@dataclass(frozen=True)
class BillCycle:
    """How an account's periods are laid out.

    ``bcd``: day of month 1-31 (clamped to short months), or ISO weekday 1-7 (Monday = 1) for
    weekly cycles. ``anchor_month``: the month quarterly and yearly periods start in (quarterly 2
    means Feb, May, Aug, Nov); monthly and weekly cycles ignore it.
    """

    period: BillingPeriod = BillingPeriod.MONTHLY
    bcd: int = 1
    anchor_month: int = 1

    def __post_init__(self) -> None:
        try:
            period = BillingPeriod(self.period)
        except ValueError:
            choices = ", ".join(p.value for p in BillingPeriod)
            raise ValueError(
                f"unknown billing period {self.period!r}; expected one of {choices}"
            ) from None
        object.__setattr__(self, "period", period)
        top = _bcd_range(period)
        if not _is_int(self.bcd) or not 1 <= self.bcd <= top:
            what = "an ISO weekday 1-7" if top == 7 else "a day of month 1-31"
            raise ValueError(f"bill cycle day of a {period} cycle must be {what}, not {self.bcd!r}")
        if not _is_int(self.anchor_month) or not 1 <= self.anchor_month <= 12:
            raise ValueError(f"anchor_month must be a month 1-12, not {self.anchor_month!r}")


@dataclass(frozen=True)
class PeriodSpan:
    """Period ``index`` of ``cycle``: the dates ``[start, end)``. Carries its cycle so that
    ``next_period`` / ``previous_period`` need nothing else."""

    index: int
    start: date
    end: date
    cycle: BillCycle

    @property
    def days(self) -> int:
        """Length in days: the denominator of proration."""
        return (self.end - self.start).days

    def __contains__(self, d: object) -> bool:
        return isinstance(d, date) and self.start <= d < self.end


@dataclass(frozen=True)
class TimedSpan:
    """A period in a tenant's zone: local dates ``[start_date, end_date)`` and the UTC instants
    ``[start, end)`` they cover."""

    index: int
    start_date: date
    end_date: date
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Transition:
    """The period that bridges a bill-cycle-day change; ``new_cycle`` governs what follows."""

    span: PeriodSpan
    new_cycle: BillCycle


def boundary(cycle: BillCycle, n: int) -> date:
    """Start date of period ``n``, from ``(bcd, n)`` alone (never from period ``n - 1``)."""
    try:
        if cycle.period is BillingPeriod.WEEKLY:
            return date.fromordinal(_ORIGIN_MONDAY + cycle.bcd - 1 + 7 * n)
        year, month0 = divmod(_month_number(cycle, n), 12)
        return date(year, month0 + 1, min(cycle.bcd, calendar.monthrange(year, month0 + 1)[1]))
    except (ValueError, OverflowError):
        raise ValueError(f"period {n} of {cycle} is outside the supported dates") from None


def _month_number(cycle: BillCycle, n: int) -> int:
    step = _STEP_MONTHS[cycle.period]
    offset = 0 if step == 1 else cycle.anchor_month - 1
    return _ORIGIN_MONTH + offset + step * n


def index_of(cycle: BillCycle, d: date) -> int:
    """The ``n`` with ``boundary(n) <= d < boundary(n + 1)``."""
    if cycle.period is BillingPeriod.WEEKLY:
        return (d.toordinal() - _ORIGIN_MONDAY - (cycle.bcd - 1)) // 7
    # The period whose start month is the last one at or before d's month; d may still be
    # before the bill cycle day of that month, and then it belongs to the period before.
    n = (d.year * 12 + d.month - 1 - _month_number(cycle, 0)) // _STEP_MONTHS[cycle.period]
    return n if boundary(cycle, n) <= d else n - 1


def _span(cycle: BillCycle, n: int) -> PeriodSpan:
    return PeriodSpan(n, boundary(cycle, n), boundary(cycle, n + 1), cycle)


def period_of(cycle: BillCycle, d: date) -> PeriodSpan:
    """The period containing date ``d``."""
    return _span(cycle, index_of(cycle, d))


def next_period(span: PeriodSpan) -> PeriodSpan:
    """The period after ``span``: it starts exactly where ``span`` ends."""
    return _span(span.cycle, span.index + 1)


def previous_period(span: PeriodSpan) -> PeriodSpan:
    """The period before ``span`` in its cycle. For a transition span this is the new cycle's
    period (history before a BCD change belongs to the old cycle)."""
    return _span(span.cycle, span.index - 1)


def start_of_day(d: date, tz: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date in ``tz`` is ``d`` or later.

    Local midnight when it exists (its first occurrence if clocks went back to it); otherwise
    midnight is in a DST gap and the answer is the end of the gap: the first valid instant.
    """
    midnight = datetime.combine(d, time())
    candidates = [midnight.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = [u for u in candidates if u.astimezone(tz).replace(tzinfo=None) == midnight]
    if real:
        return min(real)
    # In a gap the two folds read midnight with the offsets before and after the transition, so
    # they bracket it: the earlier one shows a wall time before midnight, the later one after.
    # Transitions fall on whole seconds: bisect for the first second whose wall time has passed.
    lo, hi = (int(u.timestamp()) for u in sorted(candidates))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= midnight:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not a naive one")


def span_at(cycle: BillCycle, instant: datetime, tz: ZoneInfo) -> TimedSpan:
    """The period containing ``instant`` in the tenant's zone, with UTC bounds.

    Membership is decided on UTC instants, ``start <= instant < end``, so every instant is in
    exactly one period even where the local calendar is irregular.
    """
    _aware(instant, "instant")
    span = period_of(cycle, instant.astimezone(tz).date())
    while True:  # one pass unless the zone's local date ever ran backwards
        start, end = start_of_day(span.start, tz), start_of_day(span.end, tz)
        if instant < start:
            span = previous_period(span)
        elif instant >= end:
            span = next_period(span)
        else:
            return TimedSpan(span.index, span.start, span.end, start, end)


def ended_periods(cycle: BillCycle, since_index: int, now: datetime, tz: ZoneInfo) -> list[int]:
    """Indices after ``since_index`` of the periods that have fully ended by ``now``
    (``end <= now``): what the invoice run still owes an account whose last invoiced period is
    ``since_index``. Oldest first."""
    _aware(now, "now")
    return list(range(since_index + 1, span_at(cycle, now, tz).index))


def change_bcd(cycle: BillCycle, at: date, new_bcd: int) -> Transition:
    """Move an account to bill cycle day ``new_bcd`` on date ``at``.

    Rule: the period containing ``at`` keeps its start and runs to the first boundary of the new
    cycle strictly after ``at``, then the new cycle's periods follow. The transition period is
    short or long (up to almost two periods) but never leaves a gap or an overlap, never ends in
    the past, and always contains ``at``. Its index is the new cycle's, so ``next_period`` of
    it is the new cycle's next period.
    """
    new_cycle = replace(cycle, bcd=new_bcd)
    current = period_of(cycle, at)
    n = index_of(new_cycle, at)  # so boundary(new_cycle, n + 1) is the first one after `at`
    span = PeriodSpan(n, current.start, boundary(new_cycle, n + 1), new_cycle)
    return Transition(span, new_cycle)


def default_bcd(
    created: date,
    tenant_default: int | None,
    *,
    period: BillingPeriod = BillingPeriod.MONTHLY,
) -> int:
    """An account's bill cycle day: the tenant's default when it has one, else the day the
    account was created (its ISO weekday for weekly cycles), so the first period is a full one."""
    if tenant_default is not None:
        return BillCycle(period, tenant_default).bcd  # validated for the period
    return created.isoweekday() if period is BillingPeriod.WEEKLY else created.day

