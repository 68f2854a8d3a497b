"""Event time: wall-clock microseconds, strictly increasing across the whole simulator.

Asterisk stamps events with ``gettimeofday``; a strictly increasing clock keeps every event's
``Timestamp`` distinct so tests can order them, and a ``not_before`` floor lets a call stamp
the end of a timed phase no earlier than the time it was planned to last.
"""

from __future__ import annotations

import time

US = 1_000_000


class EventClock:
    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def now_us(self, not_before: int = 0) -> int:
        t = max(time.time_ns() // 1000, self._last + 1, not_before)
        self._last = t
        return t


def format_ts(us: int) -> str:
    """``Timestamp: sec.usec`` as manager.c prints it (``%ld.%06lu``)."""
    return f"{us // US}.{us % US:06d}"
