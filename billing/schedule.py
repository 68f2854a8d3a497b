"""Ticking the billing job every few minutes with pgqueuer's cron scheduler.

Why pgqueuer: it runs on asyncpg (our driver; procrastinate needs psycopg 3), keeps its state
in our Postgres, and its schedules table hands each due tick to exactly one of the processes
running the scheduler (``FOR UPDATE SKIP LOCKED``), so several engine processes tick once
between them. The job itself stays safe to run twice anyway (see ``billing.jobs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import asyncpg
from pgqueuer.core.sm import SchedulerManager
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

from billing.jobs import BillingJobs
from charging_engine.streams.runloop import wait

log = logging.getLogger("billing.schedule")

DEFAULT_CRON: Final = "*/5 * * * *"
BACKOFF_MIN_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0
ENTRYPOINT: Final = "billing.tick"
_INSTALL_LOCK: Final = 0x6365_6270_6771  # "cebpgq": one installer at a time


async def install(conn: asyncpg.Connection) -> None:
    """Create pgqueuer's tables once (under an advisory lock: several processes may start)."""
    queries = Queries(AsyncpgDriver(conn))
    await conn.execute("SELECT pg_advisory_lock($1)", _INSTALL_LOCK)
    try:
        if not await queries.schema_is_installed():
            await queries.install()
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _INSTALL_LOCK)


async def run_scheduled(
    jobs: BillingJobs, dsn: str, stop: asyncio.Event, cron: str = DEFAULT_CRON
) -> None:
    """Tick ``jobs`` on ``cron`` until ``stop`` is set. Never ends by an exception: it runs
    beside settlement in the engine's task group, and a Postgres outage must cost billing a
    few ticks, not stop settlement; the scheduler reconnects with backoff instead."""
    backoff = BACKOFF_MIN_S
    while not stop.is_set():
        try:
            await _scheduled(jobs, dsn, stop, cron)
            backoff = BACKOFF_MIN_S
        except Exception as exc:
            log.warning("billing scheduler stopped (%r); restarting in %.0f s", exc, backoff)
        await wait(stop, backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_S)


async def _scheduled(jobs: BillingJobs, dsn: str, stop: asyncio.Event, cron: str) -> None:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await install(conn)
        sm = SchedulerManager(Queries(AsyncpgDriver(conn)))

        @sm.schedule(ENTRYPOINT, cron)
        async def tick(_: Any) -> None:
            await jobs.tick()

        runner = asyncio.create_task(sm.run())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        sm.shutdown.set()
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    finally:
        await conn.close()
