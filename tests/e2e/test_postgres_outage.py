"""Postgres stopped for 30 s during traffic: nothing is lost, and the backlog drains on return."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from charging_engine.bootstrap import open_engine
from charging_engine.devservers import PostgresServer
from charging_engine.ledger.migrations import migrate
from charging_engine.ledger.reconcile import reconcile
from charging_engine.loader import load_tenant
from charging_engine.sessions.model import Reason
from tests.e2e.support import RICH_ACCOUNTS, eventually, settings, tenant_data

OUTAGE_S = 30.0


@pytest.fixture
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A Postgres of this test's own: stopping it must not disturb other tests."""
    server = PostgresServer(Path(tmp_path_factory.mktemp("pg-outage")))
    server.start()
    yield server
    server.remove_data()


async def test_postgres_down_30s_during_traffic(
    redis_url: str, own_postgres: PostgresServer
) -> None:
    dsn = own_postgres.create_database("outage")
    await migrate(dsn)
    cfg = settings(redis_url, dsn, reclaim_idle_ms=500, pg_pool_size=4)
    async with open_engine(cfg) as engine:
        await load_tenant(engine, tenant_data(RICH_ACCOUNTS))
        svc = engine.service
        stop_bg = asyncio.Event()
        background = asyncio.create_task(engine.run_background(stop_bg))
        counter = itertools.count()
        charged: dict[str, int] = {}

        async def traffic(until: float) -> None:
            while time.monotonic() < until:
                n = next(counter)
                acc, call = ("a1", "a2", "a4")[n % 3], f"c{n}"
                d = await svc.authorize("tel", acc, call, "+44 20 7946 0000")
                assert d.allowed, d
                c = await svc.end("tel", acc, call, billable_seconds=n % 90)
                assert c.reason is Reason.OK
                charged[call] = c.cost

        async def ledger_rows() -> int:
            conn = await asyncpg.connect(dsn)
            try:
                return int(await conn.fetchval("select count(*) from ledger_entries"))
            finally:
                await conn.close()

        await traffic(time.monotonic() + 2)
        own_postgres.stop()
        outage_started = len(charged)
        await traffic(time.monotonic() + OUTAGE_S)  # charging goes on: Redis is the hot path
        during = len(charged) - outage_started
        assert during > 0
        assert await engine.settlement.lag() > 0  # the backlog is held in Redis, unacknowledged
        own_postgres.start()

        async def drained() -> bool:
            return await engine.settlement.lag() == 0

        # generous: the suite runs on two workers, and the other one competes for the CPU
        await eventually(drained, 180, "the settlement backlog to drain")
        stop_bg.set()
        await background

        diffs = await reconcile(engine.redis, engine.pool, engine.settings.buckets,
                                engine.settlement)
        assert diffs == []
        conn = await asyncpg.connect(dsn)
        try:
            calls = await conn.fetch("select call_id, cost from calls")
            assert {r["call_id"]: r["cost"] for r in calls} == charged
            seqs = await conn.fetch(
                "select account_id, count(*) as n, max(seq) as m from ledger_entries "
                "group by account_id"
            )
            assert all(r["n"] == r["m"] for r in seqs), "a gap in an account's ledger"
        finally:
            await conn.close()
        assert await ledger_rows() == sum(r["n"] for r in seqs)
