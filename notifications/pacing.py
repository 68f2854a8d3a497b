"""When an SMS may go (pure): a tenant's quiet hours and its per-minute rate window.

Quiet hours are wall-clock times in the tenant's own timezone (``tenants.timezone``), so
"21:00-08:00" stays the night across daylight-saving changes; a window may wrap midnight.
The rate limit counts messages per tenant in fixed one-minute windows (the adapter counts
them atomically in Postgres); a message over the limit waits for the next window. Messages a
customer is waiting for right now (a BALANCE answer, a collection receipt) are exempt from
both: holding them would be the opposite of what the customer asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["EXEMPT_EVENTS", "WINDOW", "QuietHours", "window_end", "window_start"]

# Customer-initiated or customer-present: sent at once and not counted against the limit.
EXEMPT_EVENTS: Final = frozenset({"sms.balance_reply", "sms.help", "collection.receipt"})
WINDOW: Final = timedelta(minutes=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """SMS are not sent from ``start`` (inclusive) to ``end`` (exclusive), local time."""

    start: time
    end: time
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("quiet hours must start and end at different times")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local wall-clock times (no tzinfo)")

    def quiet(self, at: datetime) -> bool:
        t = at.astimezone(self.zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # wraps midnight

    def next_allowed(self, at: datetime) -> datetime:
        """``at`` itself outside the quiet hours, else the first instant after them (UTC).

        The end is tried on the local day and the next, in both folds: on the night the clocks
        go back, the end's wall time happens twice and the first one past ``at`` counts; on
        the night they go forward a skipped end lands just after the gap."""
        if not self.quiet(at):
            return at
        day = at.astimezone(self.zone).date()
        candidates = sorted(
            datetime.combine(day + timedelta(days=d), self.end, self.zone).replace(fold=f)
            .astimezone(UTC) for d in (0, 1) for f in (0, 1))  # fmt: skip
        for c in candidates:
            if c > at and not self.quiet(c):
                return c
        raise AssertionError("quiet hours never end")  # pragma: no cover - start != end


def window_start(at: datetime) -> datetime:
    """The one-minute rate window ``at`` falls in (UTC, aligned to the epoch)."""
    elapsed = at.astimezone(UTC) - _EPOCH
    return _EPOCH + (elapsed // WINDOW) * WINDOW


def window_end(at: datetime) -> datetime:
    """When a message over the limit in ``at``'s window may try again."""
    return window_start(at) + WINDOW
