"""Vectorised rating of CDR arrays: the answers of ``Tariff.find`` + ``pricing.cost``, in bulk.

Re-rating a period one call at a time costs microseconds of Python per call; here each step is a
few numpy passes over the whole batch, with the same rules as the scalar rater:

* **Prefix match** (``batch_numbers``): numbers and prefixes as padded integers; a lookup finds
  each number's longest prefix, then a walk up the parent chain skips prefixes longer than the
  number, or with no rate applicable at the call's time (the scalar falls back the same way).
* **Rate choice.** A prefix's rates are tried in the scalar order (banded newest first, then
  plain newest first); the first one active at the start instant, and whose band holds the
  local time (``batch_time``, exact across DST changes), wins. Most CDRs hit a prefix whose
  first rate always applies and are settled in one pass.
* **Pricing** in int64: billed seconds, then ``connect + round_div(price * billed, 60 q) * q``.
  ``price * billed`` is exact while it is <= 2**63 - 1 (``MAX_EXACT_PRODUCT``): at the largest
  price a rate may have (10**15 micros/min) that is 9,223 billed seconds; at 1 unit/min
  (10**6 micros) 9.2e12 s. CDRs beyond it (or with durations over 2**62 s) are priced by the
  scalar functions in Python integers; a result that does not fit int64 raises OverflowError.
  Nothing wraps silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, Final, TypeAlias
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from charging_engine.money import Rounding, quantum
from charging_engine.rating.batch_numbers import Destinations, PrefixIndex, int_array, same_length
from charging_engine.rating.batch_time import local_weekday_time, utc_offsets_us
from charging_engine.rating.model import Rate, RateError, RatePlan
from charging_engine.rating.pricing import billed_seconds, price_of_billed

I64: TypeAlias = npt.NDArray[np.int64]

MAX_EXACT_PRODUCT: Final = 2**63 - 1  # largest price_per_minute * billed_seconds done in int64
MAX_FAST_DURATION: Final = 2**62  # longer durations are priced in Python integers
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
MIN_START_MS: Final = (datetime(1900, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
MAX_START_MS: Final = (datetime(9000, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_OLDEST_US: Final = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _US  # scalar's "None" key
_ALWAYS: Final = np.iinfo(np.int64).min  # activation of a rate without active_from
_MODES: Final = (Rounding.UP, Rounding.DOWN, Rounding.HALF_UP, Rounding.HALF_EVEN)
_HALF_EVEN: Final = 3  # index in _MODES


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Per CDR: index into ``BatchRater.rates`` (-1: no rate), billed seconds, cost in micros."""

    rate_index: I64
    billed: I64
    cost: I64

    def __len__(self) -> int:
        return len(self.rate_index)


class BatchRater:
    """A rate plan compiled into arrays, rating whole CDR batches at once (pure, no I/O)."""

    __slots__ = (
        "_act", "_band_end", "_band_kind", "_band_mask", "_band_start", "_cand", "_ccount",
        "_conn", "_cstart", "_den", "_first", "_first_rate", "_free_below", "_has_band",
        "_index", "_limit", "_min_first", "_min_limit", "_next", "_odd_bonus", "_price", "_q",
        "_sure", "_threshold", "rates",
    )  # fmt: skip

    def __init__(self, plan: RatePlan | Iterable[Rate]) -> None:
        rates = tuple(plan.rates if isinstance(plan, RatePlan) else plan)
        for r in rates:
            if not isinstance(r, Rate):
                raise TypeError(f"a rate plan holds Rate objects, got {type(r).__name__}")
            if r.band is not None and (r.band.start.tzinfo or r.band.end.tzinfo):
                raise RateError(f"prefix {r.prefix}: band times are local, without a tzinfo")
        self.rates = rates
        self._compile_rates(rates)
        self._compile_prefixes(rates)

    def __len__(self) -> int:
        return len(self.rates)

    def _compile_rates(self, rates: tuple[Rate, ...]) -> None:
        """One array per rate parameter. The pricing arrays carry one extra last row, read by
        index -1 (no rate): free whatever the duration, so it needs no special case."""

        def col(values: Iterable[int], sentinel: int | None = None) -> I64:
            extra = () if sentinel is None else (sentinel,)
            return np.fromiter((*values, *extra), dtype=np.int64)

        int64_max = MAX_EXACT_PRODUCT
        self._price = col((r.price_per_minute for r in rates), 0)
        self._conn = col((r.connect_fee for r in rates), 0)
        self._first = col((r.first_increment for r in rates), 1)
        self._next = col((r.next_increment for r in rates), 1)
        self._min_first = col((max(r.min_duration, r.first_increment) for r in rates), 1)
        self._free_below = col((max(r.grace_seconds, 1) for r in rates), int64_max)
        self._q = col((quantum(r.decimals) for r in rates), 1)
        self._den = 60 * self._q
        modes = [_MODES.index(r.rounding) for r in rates]
        self._odd_bonus = col((int(m == _HALF_EVEN) for m in modes), 0)
        self._threshold = col(
            (_threshold(m, 60 * quantum(r.decimals)) for m, r in zip(modes, rates, strict=True)),
            1,
        )
        self._limit = col((int64_max // max(r.price_per_minute, 1) for r in rates), int64_max)
        self._min_limit = int(self._limit.min())
        self._act = col(_ALWAYS if r.active_from is None else _us(r.active_from) for r in rates)
        bands = [r.band for r in rates]
        self._has_band = np.array([b is not None for b in bands], dtype=bool)
        self._band_mask = col(sum(1 << d for d in b.weekdays) if b else 0 for b in bands)
        self._band_start = col(_tod_us(b.start) if b else 0 for b in bands)
        self._band_end = col(_tod_us(b.end) if b else 0 for b in bands)
        # 0: all day on its weekdays, 1: [start, end) within a day, 2: wraps past midnight
        self._band_kind = col(
            0 if b is None or b.start == b.end else 1 if b.start < b.end else 2 for b in bands
        )

    def _compile_prefixes(self, rates: tuple[Rate, ...]) -> None:
        grouped: dict[str, list[int]] = {}
        for i, r in enumerate(rates):
            grouped.setdefault(r.prefix, []).append(i)
        prefixes = sorted(grouped, key=lambda p: (len(p), p))  # parents before children
        cand: list[int] = []
        starts, counts = [], []
        for p in prefixes:
            ordered = _newest_first(rates, [i for i in grouped[p] if rates[i].band is not None])
            ordered += _newest_first(rates, [i for i in grouped[p] if rates[i].band is None])
            starts.append(len(cand))
            counts.append(len(ordered))
            cand += ordered
        self._index = PrefixIndex(prefixes)
        self._cand = np.array(cand, dtype=np.int64)
        self._cstart = np.array(starts, dtype=np.int64)
        self._ccount = np.array(counts, dtype=np.int64)
        first = self._cand[self._cstart] if prefixes else np.zeros(0, dtype=np.int64)
        self._first_rate = first
        # The first candidate applies whatever the time: most CDRs are settled in one pass.
        self._sure = (self._act[first] == _ALWAYS) & ~self._has_band[first]

    # -- rating ----------------------------------------------------------------------------

    def rate(
        self,
        numbers: Destinations | Sequence[str] | npt.NDArray[Any],
        start_ms: npt.ArrayLike,
        durations: npt.ArrayLike,
        tz: tzinfo | str,
    ) -> BatchResult:
        """Rate CDRs: destinations, start instants (epoch ms), answered seconds, in ``tz``.

        Same answer as ``Tariff.find(number, start, tz)`` and ``pricing.cost`` per CDR. Bad
        input raises (NumberError, ValueError, TypeError) naming the first bad CDR.
        """
        dest = Destinations.of(numbers)
        starts = int_array("start_ms", start_ms)
        durs = int_array("durations", durations)
        same_length(("numbers", dest.padded), ("start_ms", starts), ("durations", durs))
        out = (starts < MIN_START_MS) | (starts >= MAX_START_MS)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(
                f"start_ms[{i}] = {int(starts[i])} is outside years 1900-8999 (epoch ms)"
            )
        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        index = self._match(dest, starts, zone)
        billed, cost = self._price_all(index, durs)
        return BatchResult(index, billed, cost)

    def _match(self, dest: Destinations, starts: I64, zone: tzinfo) -> I64:
        """Rate index per CDR: longest prefix with a rate applicable at the start instant."""
        if not len(dest) or not self.rates:
            return np.full(len(dest), -1, dtype=np.int64)
        owner = self._index.deepest(dest.padded)
        p = np.maximum(owner, 0)
        fits = (owner >= 0) & (self._index.length[p] <= dest.lengths)
        sure = fits & self._sure[p]
        result = np.where(sure, self._first_rate[p], -1)
        act = np.flatnonzero((owner >= 0) & ~sure)
        p, slot = owner[act], np.zeros(len(act), dtype=np.int64)
        while act.size:
            up = (self._index.length[p] > dest.lengths[act]) | (slot >= self._ccount[p])
            while up.any():  # prefix longer than the number, or its rates exhausted
                p = np.where(up, self._index.parent[p], p)
                slot = np.where(up, 0, slot)
                keep = p >= 0
                act, p, slot = act[keep], p[keep], slot[keep]
                up = (self._index.length[p] > dest.lengths[act]) | (slot >= self._ccount[p])
            r = self._cand[self._cstart[p] + slot]
            ok = self._act[r] <= starts[act] * 1000
            banded = np.flatnonzero(ok & self._has_band[r])
            if banded.size:
                at = act[banded]
                weekday, tod = local_weekday_time(starts[at], zone)
                ok[banded] = self._in_band(r[banded], weekday, tod)
            result[act[ok]] = r[ok]
            miss = ~ok
            act, p, slot = act[miss], p[miss], slot[miss] + 1
        return result

    def _in_band(self, r: I64, weekday: I64, tod: I64) -> npt.NDArray[np.bool_]:
        """``TimeBand.contains`` for rate indices ``r`` at local weekdays and times of day."""
        mask, start, end, kind = (
            self._band_mask[r], self._band_start[r], self._band_end[r], self._band_kind[r]
        )
        today = (mask >> weekday) & 1 == 1
        yesterday = (mask >> ((weekday + 6) % 7)) & 1 == 1
        within = today & (start <= tod) & (tod < end)
        wrapped = (today & (tod >= start)) | (yesterday & (tod < end))
        inside: npt.NDArray[np.bool_] = np.where(
            kind == 0, today, np.where(kind == 1, within, wrapped)
        )
        return inside

    def _price_all(self, index: I64, durs: I64) -> tuple[I64, I64]:
        """Billed seconds and cost per CDR; CDRs without a rate cost nothing.

        Index -1 reads the extra last row of every parameter array: a rate whose grace never
        ends, so it bills nothing without a special case.
        """
        r = index
        if not len(r):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        huge = durs > MAX_FAST_DURATION
        any_huge = bool(huge.any())
        d = np.where(huge, 0, durs) if any_huge else durs
        first = self._first[r]
        b = first - ((first - np.maximum(d, self._min_first[r])) // self._next[r]) * self._next[r]
        b = np.where(d < self._free_below[r], 0, b)
        slow = huge | (b > self._limit[r]) if any_huge or b.max() > self._min_limit else None
        num = self._price[r] * (b if slow is None else np.where(slow, 0, b))
        den, q = self._den[r], self._q[r]
        whole, rem = np.divmod(num, den)
        # UP: rem >= 1; DOWN: never; HALF_UP: rem >= den/2; HALF_EVEN: rem + odd >= den/2 + 1
        bump = rem + (whole & self._odd_bonus[r]) >= self._threshold[r]
        cost = np.where(b > 0, self._conn[r] + (whole + bump) * q, 0)
        if slow is not None:
            for i in np.flatnonzero(slow & (r >= 0)).tolist():  # exact Python integers
                rate = self.rates[int(r[i])]
                secs = billed_seconds(rate, int(durs[i]))
                amount = price_of_billed(rate, secs)
                if max(secs, amount) > MAX_EXACT_PRODUCT:
                    raise OverflowError(
                        f"CDR {i}: {secs} billed seconds cost {amount} micros, beyond int64"
                    )
                b[i], cost[i] = secs, amount
        return b, cost


# -- helpers -------------------------------------------------------------------------------


def _newest_first(rates: tuple[Rate, ...], indices: list[int]) -> list[int]:
    """``Tariff``'s order: latest activation first, None oldest, plan order on ties."""
    def key(i: int) -> int:
        at = rates[i].active_from
        return _OLDEST_US if at is None else _us(at)

    return sorted(indices, key=key, reverse=True)


def _threshold(mode: int, den: int) -> int:
    """Least remainder (plus 1 for an odd quotient under half-even) that rounds up."""
    return (1, den, den // 2, den // 2 + 1)[mode]  # den = 60 * quantum is even


def _us(at: datetime) -> int:
    return (at - _EPOCH) // _US


def _tod_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


__all__ = [
    "MAX_EXACT_PRODUCT",
    "MAX_FAST_DURATION",
    "MAX_START_MS",
    "MIN_START_MS",
    "BatchRater",
    "BatchResult",
    "Destinations",
    "local_weekday_time",
    "utc_offsets_us",
]
