"""Which rate prices a call: longest matching prefix, then the band and activation date.

Built once per plan so a lookup is a handful of dict probes: one per distinct prefix length,
longest first, and a short scan of the (usually one or two) rates of the matching prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from charging_engine.rating.model import Rate, RatePlan
from charging_engine.rating.numbers import normalize

_OLDEST = datetime.min.replace(tzinfo=UTC)  # sort key for "always active" (None)


def _newest_first(rates: Iterable[Rate]) -> tuple[Rate, ...]:
    """Latest ``active_from`` first; None counts as oldest; plan order breaks ties."""
    return tuple(sorted(rates, key=lambda r: r.active_from or _OLDEST, reverse=True))


class _Candidates:
    """The rates of one prefix, split so the banded ones are tried first."""

    __slots__ = ("banded", "plain")

    def __init__(self, rates: list[Rate]) -> None:
        self.banded = _newest_first(r for r in rates if r.band is not None)
        self.plain = _newest_first(r for r in rates if r.band is None)

    def pick(self, at: datetime, tz: ZoneInfo) -> Rate | None:
        """The applicable rate at ``at``: active, band containing local time beats no band."""
        if self.banded:
            local = at.astimezone(tz)
            for rate in self.banded:
                band = rate.band
                if (rate.active_from is None or rate.active_from <= at) and (
                    band is not None and band.contains(local)
                ):
                    return rate
        for rate in self.plain:
            if rate.active_from is None or rate.active_from <= at:
                return rate
        return None


class Tariff:
    """A rate plan indexed for longest-prefix lookup of a destination's rate."""

    __slots__ = ("_index", "_lengths", "_plan")

    def __init__(self, plan: RatePlan) -> None:
        grouped: dict[str, list[Rate]] = {}
        for rate in plan.rates:
            grouped.setdefault(rate.prefix, []).append(rate)
        self._plan = plan
        self._index = {prefix: _Candidates(rates) for prefix, rates in grouped.items()}
        self._lengths = tuple(sorted({len(p) for p in grouped}, reverse=True))

    @classmethod
    def from_plan(cls, plan: RatePlan) -> Tariff:
        """Same as ``Tariff(plan)``; reads better at call sites that load plans."""
        return cls(plan)

    @property
    def plan_id(self) -> str:
        return self._plan.plan_id

    @property
    def currency(self) -> str:
        return self._plan.currency

    def __len__(self) -> int:
        return len(self._plan.rates)

    def __repr__(self) -> str:
        return f"Tariff(plan_id={self.plan_id!r}, currency={self.currency!r}, rates={len(self)})"

    def find(self, number: str, at: datetime, tz: ZoneInfo) -> Rate | None:
        """The rate for a call to ``number`` starting at ``at`` (aware), or None if unpriced.

        The longest prefix with a rate applicable at ``at`` wins, so a prefix whose only rate
        starts next month falls back to the shorter prefix until then. ``tz`` is the tenant's
        timezone, in which time bands are read. Raises NumberError for a non-number.
        """
        if at.tzinfo is None:
            raise ValueError("find() needs an aware datetime; naive times have no band")
        digits = normalize(number)
        index = self._index
        n = len(digits)
        for length in self._lengths:
            if length > n:
                continue
            candidates = index.get(digits[:length])
            if candidates is not None:
                rate = candidates.pick(at, tz)
                if rate is not None:
                    return rate
        return None
