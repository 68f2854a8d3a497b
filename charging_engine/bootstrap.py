"""The composition root: the one place that builds clients, stores and services and wires them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from charging_engine.balance.store import BalanceStore
from charging_engine.balance.transport import RespTransport
from charging_engine.catalog import Catalog
from charging_engine.config import Settings
from charging_engine.ledger.catalog_repo import catalog_version, load_catalog
from charging_engine.ledger.migrations import ENGINE as ENGINE_MIGRATIONS
from charging_engine.ledger.migrations import migrate
from charging_engine.ledger.settlement import Settlement, epoch_ms_codec
from charging_engine.sessions.service import ChargingService
from charging_engine.sessions.sweeper import Sweeper

log = logging.getLogger("charging_engine")


@dataclass
class Engine:
    settings: Settings
    redis: Any
    pool: asyncpg.Pool
    store: BalanceStore
    service: ChargingService
    settlement: Settlement
    sweeper: Sweeper
    # More loops for run_background, added by listeners mounted on the engine (the admin API's
    # alert feed); each runs until the event is set.
    background: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(
        default_factory=list
    )

    async def refresh_catalog(self, force: bool = False) -> bool:
        """Swap in a new catalogue when Postgres says it changed."""
        async with self.pool.acquire() as conn:
            version = await catalog_version(conn)
            if not force and version == self.service.catalog.version:
                return False
            self.service.catalog = Catalog(await load_catalog(conn))
        return True

    async def _refresh_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh_catalog()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("catalogue refresh failed (%s); keeping the current one", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.catalog_refresh_s)

    async def run_background(self, stop: asyncio.Event) -> None:
        """Settlement, the expiry sweeper and catalogue refresh, until ``stop`` is set."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.settlement.run(stop))
            tg.create_task(self.sweeper.run(stop, self.settings.sweep_interval_s))
            tg.create_task(self._refresh_loop(stop))
            for job in self.background:
                tg.create_task(job(stop))


@asynccontextmanager
async def open_engine(
    settings: Settings, *, apply_migrations: bool = True,
    migrations: Sequence[str] = (ENGINE_MIGRATIONS,),
) -> AsyncIterator[Engine]:
    """Connect to Redis and Postgres, load functions and the catalogue; close all on exit.
    ``migrations``: the migration packages to apply first (the assembly point adds its own)."""
    if not settings.redis_url or not settings.database_url:
        raise RuntimeError("REDIS_URL and DATABASE_URL must be set (the CLI starts private ones)")
    if apply_migrations:
        await migrate(settings.database_url, migrations)
    redis = aioredis.Redis.from_url(
        settings.redis_url, max_connections=64, socket_keepalive=True, health_check_interval=30
    )
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=settings.pg_pool_size
    )
    store = BalanceStore(
        redis, settings.buckets, settings.idem_ttl_s, transport=RespTransport(settings.redis_url)
    )
    # Settlement's large stream replies get their own connections, never queued in front of
    # the hot path's replies; its Postgres connections carry times as epoch milliseconds.
    settle_transport = RespTransport(settings.redis_url, connections=settings.settle_shards)
    settle_pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=settings.settle_shards, init=epoch_ms_codec
    )
    try:
        await store.load()
        async with pool.acquire() as conn:
            catalog = Catalog(await load_catalog(conn))
        service = ChargingService(store, catalog, settings.session_policy())
        settlement = Settlement(
            redis, settle_pool, settings.buckets, settings.consumer_name,
            batch_size=settings.settle_batch, reclaim_idle_ms=settings.reclaim_idle_ms,
            transport=settle_transport, shards=settings.settle_shards, epoch_ms=True,
            multi_stream_reads=True,  # RespTransport speaks to one node
        )
        await settlement.ensure_groups()
        yield Engine(settings, redis, pool, store, service, settlement,
                     Sweeper(service, settings.buckets))
    finally:
        await store.close()
        await settle_transport.aclose()
        await settle_pool.close()
        await pool.close()
        await redis.aclose()
