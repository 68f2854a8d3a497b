"""Tariff data: a rate is validated data, priced by the pure functions in ``pricing``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time

from charging_engine.money import MAX_AMOUNT, MICRO_DIGITS, Rounding


class RateError(ValueError):
    """A rate or rate plan that breaks a declared rule."""


@dataclass(frozen=True, slots=True)
class TimeBand:
    """Peak/off-peak window in the tenant's local time: weekdays (0=Monday) and [start, end).

    ``end <= start`` wraps past midnight (22:00-06:00). An all-day band on some weekdays is
    start == end == 00:00.
    """

    name: str
    weekdays: frozenset[int] = frozenset(range(7))
    start: time = time(0, 0)
    end: time = time(0, 0)

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise RateError(f"band {self.name!r}: weekdays must be a non-empty subset of 0..6")

    def contains(self, local: datetime) -> bool:
        """Whether a naive or aware local time falls in this band."""
        t = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return local.weekday() in self.weekdays
        if self.start < self.end:
            return local.weekday() in self.weekdays and self.start <= t < self.end
        # Wraps midnight: the part after midnight belongs to the previous day's window.
        if t >= self.start:
            return local.weekday() in self.weekdays
        if t < self.end:
            return (local.weekday() - 1) % 7 in self.weekdays
        return False


@dataclass(frozen=True, slots=True)
class Rate:
    """Price of calls to one destination prefix.

    Amounts are micros. ``first_increment``/``next_increment`` are the billing blocks (60/60,
    30/6, 1/1); ``min_duration`` is the least billed time of a charged call; answered calls
    shorter than ``grace_seconds`` are free; the per-minute part is rounded to ``decimals``
    by ``rounding``, once.
    """

    prefix: str
    price_per_minute: int
    description: str = ""
    connect_fee: int = 0
    min_duration: int = 0
    first_increment: int = 60
    next_increment: int = 60
    grace_seconds: int = 0
    rounding: Rounding = Rounding.UP
    decimals: int = 4
    band: TimeBand | None = None
    active_from: datetime | None = None  # aware; None means always active

    def __post_init__(self) -> None:
        try:  # a plain string from JSON or a database row must not fall through to half-even
            object.__setattr__(self, "rounding", Rounding(self.rounding))
        except ValueError as exc:
            raise RateError(f"prefix {self.prefix}: unknown rounding {self.rounding!r}") from exc
        if not (self.prefix.isascii() and self.prefix.isdigit()) or len(self.prefix) > 15:
            raise RateError(f"prefix {self.prefix!r} must be 1-15 digits")
        if not 0 <= self.price_per_minute <= MAX_AMOUNT:
            raise RateError(f"prefix {self.prefix}: price_per_minute out of range")
        if not 0 <= self.connect_fee <= MAX_AMOUNT:
            raise RateError(f"prefix {self.prefix}: connect_fee out of range")
        if not 1 <= self.first_increment <= 86_400 or not 1 <= self.next_increment <= 86_400:
            raise RateError(f"prefix {self.prefix}: increments must be 1..86400 seconds")
        if not 0 <= self.min_duration <= 86_400 or not 0 <= self.grace_seconds <= 86_400:
            raise RateError(f"prefix {self.prefix}: min_duration/grace must be 0..86400 seconds")
        if not 0 <= self.decimals <= MICRO_DIGITS:
            raise RateError(f"prefix {self.prefix}: decimals must be 0..{MICRO_DIGITS}")
        if self.active_from is not None and self.active_from.tzinfo is None:
            raise RateError(f"prefix {self.prefix}: active_from must carry a timezone")


@dataclass(frozen=True, slots=True)
class RatePlan:
    """A tenant's named set of rates in one currency."""

    plan_id: str
    currency: str
    rates: tuple[Rate, ...] = field(default_factory=tuple)
