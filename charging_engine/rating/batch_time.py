"""Local weekday and time of day of many UTC instants at once, exact across DST changes.

A timezone's UTC offset is piecewise constant. It is sampled at the UTC hour boundaries around
the instants (every hour of a short span, else only the hours in use and the next ones) and
each change between two samples is bisected to its second, so instants are mapped through a
handful of breakpoints with one ``searchsorted``. This relies on no zone changing its offset
twice within one hour: in tzdata the closest two changes of any zone are days apart (a test
checks the installed database).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

I64: TypeAlias = npt.NDArray[np.int64]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_HOUR_MS: Final = 3_600_000
_DAY_US: Final = 86_400_000_000
_DENSE_HOURS: Final = 4096  # sample every hour of the span up to this, else only used hours


def local_weekday_time(start_ms: I64, zone: tzinfo) -> tuple[I64, I64]:
    """(weekday 0=Monday, microseconds since local midnight) of each instant in ``zone``."""
    local = start_ms * 1000 + utc_offsets_us(start_ms, zone)
    day = local // _DAY_US
    return (day + 3) % 7, local - day * _DAY_US  # 1970-01-01 was a Thursday


def utc_offsets_us(start_ms: I64, zone: tzinfo) -> I64:
    """``zone``'s UTC offset at each instant, exact to the second of every change."""
    if not start_ms.size:
        return np.zeros(0, dtype=np.int64)
    hours = start_ms // _HOUR_MS
    lo, hi = int(hours.min()), int(hours.max())
    if hi - lo < _DENSE_HOURS:
        points = np.arange(lo, hi + 2, dtype=np.int64)
    else:
        used = np.unique(hours)
        points = np.union1d(used, used + 1)
    hour_starts = (points * 3600).tolist()
    offsets = [_offset_us(zone, s) for s in hour_starts]
    breaks: list[int] = []  # epoch ms at which values[k + 1] starts
    values = [offsets[0]]
    for k in range(len(offsets) - 1):
        if offsets[k + 1] != offsets[k]:
            a, b = hour_starts[k], hour_starts[k + 1]
            # Adjacent hours: find the change's second; otherwise no call lies in between.
            at = _first_change(zone, a, b, offsets[k]) if b - a == 3600 else b
            breaks.append(at * 1000)
            values.append(offsets[k + 1])
    where = np.searchsorted(np.array(breaks, dtype=np.int64), start_ms, side="right")
    return np.array(values, dtype=np.int64)[where]


def _offset_us(zone: tzinfo, epoch_s: int) -> int:
    offset = (_EPOCH + timedelta(seconds=epoch_s)).astimezone(zone).utcoffset()
    if offset is None:
        raise ValueError(f"timezone {zone!r} gives no UTC offset")
    return offset // _US


def _first_change(zone: tzinfo, a: int, b: int, before: int) -> int:
    """The first second in (a, b] whose offset differs from ``before`` (the one at a)."""
    while b - a > 1:
        mid = (a + b) // 2
        if _offset_us(zone, mid) == before:
            a = mid
        else:
            b = mid
    return b


__all__ = ["local_weekday_time", "utc_offsets_us"]
