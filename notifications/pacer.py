"""The dispatcher's pacing for SMS (Postgres adapter of ``pacing``): each tenant's quiet hours
and per-minute limit, its settings cached a few seconds by the injected clock.

The count is taken in one statement (``INSERT .. ON CONFLICT DO UPDATE .. WHERE sent <
limit``): two dispatchers racing for the last slot of a minute cannot both win it. A slot is
taken before the send, so a send that then fails still used it: the limit is what the
provider was asked to take, which is what providers limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from notifications.pacing import EXEMPT_EVENTS, QuietHours, window_end, window_start

__all__ = ["Pacer"]

LOGGER = logging.getLogger(__name__)

SETTINGS_SQL: Final = """
SELECT t.timezone, s.quiet_start, s.quiet_end, s.sms_per_minute
FROM tenants t LEFT JOIN notification_settings s USING (tenant_id) WHERE t.tenant_id = $1
"""

TAKE_SQL: Final = """
INSERT INTO notification_rate_windows AS w (tenant_id, channel, window_start, sent)
VALUES ($1, $2, $3, 1)
ON CONFLICT (tenant_id, channel, window_start) DO UPDATE SET sent = w.sent + 1
    WHERE w.sent < $4
RETURNING sent
"""


@dataclass(frozen=True, slots=True)
class _Rules:
    quiet: QuietHours | None
    per_minute: int | None
    until: datetime  # cached until


class Pacer:
    """``hold(row)`` -> when an SMS may go instead of now, or None to send it now."""

    def __init__(self, pool: asyncpg.Pool, *, now: Callable[[], datetime],
                 cache: timedelta = timedelta(seconds=5)) -> None:  # fmt: skip
        self.pool, self.now, self.cache = pool, now, cache
        self._rules: dict[str, _Rules] = {}
        self._purged: datetime | None = None

    async def hold(self, r: Any) -> datetime | None:
        if r["channel"] != "sms" or r["event"] in EXEMPT_EVENTS:
            return None
        at = self.now()
        rules = await self._for(r["tenant_id"], at)
        if rules.quiet is not None and rules.quiet.quiet(at):
            return rules.quiet.next_allowed(at)
        if rules.per_minute is None:
            return None
        start = window_start(at)
        if self._purged != start:  # a new window: the old ones are no longer needed
            self._purged = start
            await self.pool.execute(
                "DELETE FROM notification_rate_windows WHERE window_start < $1", start)
        taken = await self.pool.fetchval(TAKE_SQL, r["tenant_id"], r["channel"], start,
                                         rules.per_minute)  # fmt: skip
        return None if taken is not None else window_end(at)

    async def _for(self, tenant_id: str, at: datetime) -> _Rules:
        cached = self._rules.get(tenant_id)
        if cached is not None and at < cached.until:
            return cached
        row = await self.pool.fetchrow(SETTINGS_SQL, tenant_id)
        quiet = None
        if row is not None and row["quiet_start"] is not None:
            try:
                zone = ZoneInfo(row["timezone"])
            except (ZoneInfoNotFoundError, ValueError):  # UTC quiet hours rather than no SMS
                LOGGER.warning("tenant %s: unknown timezone %r, quiet hours in UTC",
                               tenant_id, row["timezone"])  # fmt: skip
                zone = ZoneInfo("UTC")
            quiet = QuietHours(row["quiet_start"], row["quiet_end"], zone)
        rules = _Rules(quiet, row["sms_per_minute"] if row else None, at + self.cache)
        self._rules[tenant_id] = rules
        return rules
