"""The admin API's background work, run by the engine (``Engine.background``) until stopped:
the alert feed (Redis -> Postgres), the hub (Postgres -> SSE), PBX key expiry.

It shares a task group with settlement and the sweeper, so it never raises: a loop that fails
unexpectedly is logged and restarted after a pause, and the charging engine keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

import asyncpg

from admin_api.alerts.feed import AlertFeed
from admin_api.context import AdminContext
from admin_api.keys import expire_pbx_keys
from charging_engine.streams.runloop import TRANSIENT_ERRORS

log = logging.getLogger("admin_api")

KEY_EXPIRY_EVERY_S: Final = 1.0
RESTART_AFTER_S: Final = 1.0

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def supervised(name: str, loop: Loop, stop: asyncio.Event) -> None:
    """Run ``loop(stop)`` until ``stop``; restart it (after a pause) if it fails."""
    while not stop.is_set():
        try:
            await loop(stop)
        except Exception:
            log.exception("admin background loop %r failed; restarting", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_AFTER_S)


class AdminBackground:
    def __init__(self, ctx: AdminContext) -> None:
        engine = ctx.engine
        self.ctx = ctx
        self.feed = AlertFeed(
            engine.redis, engine.pool, engine.settings.buckets,
            f"{engine.settings.consumer_name}-alerts", on_stored=ctx.metrics.alert_stored,
            reclaim_idle_ms=engine.settings.reclaim_idle_ms,
        )

    async def run(self, stop: asyncio.Event) -> None:
        try:
            sent = await self.ctx.accounts.resync_thresholds()
            log.info("sent low-balance lines of %d accounts to Redis", sent)
        except Exception as exc:  # alerts lines are re-sent by the next start or account save
            log.warning("low-balance lines not re-sent to Redis (%r)", exc)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(supervised("alert feed", self.feed.run, stop))
            tg.create_task(supervised("alert hub", self.ctx.hub.run, stop))
            tg.create_task(supervised("key expiry", self._expire_keys, stop))

    async def _expire_keys(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await expire_pbx_keys(self.ctx.pool):
                    await self.ctx.refresher.refresh()
            except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("PBX key expiry skipped (%r)", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), KEY_EXPIRY_EVERY_S)
