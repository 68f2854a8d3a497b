"""Prepaid periods at scale: expiring the money of 10,000 prepaid accounts, as the tick does.

A private Postgres and Redis; N prepaid accounts provisioned in Redis, each topped up 10 USD
with a validity that has just run out, half of it spent, and everything settled into the
Postgres ledger (settlement, as in production). Timed, as the billing tick runs it
(``validity_run.evaluate_due``): the set-based screen, the pass that takes what is left of each
top-up out of its balance (an ``expiry`` money operation each, exactly once), and the same
tick again (the screen finds nothing more to do). Accounts/s is the figure to plan with.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import redis.asyncio as aioredis

from billing import validity_run
from billing.validity import Policy, policy_doc
from charging_engine.accounts.changes import AccountChanges
from charging_engine.accounts.money import MoneyOperations
from charging_engine.balance.functions import load_functions
from charging_engine.balance.store import BalanceStore
from charging_engine.devservers import PostgresServer, RedisServer, ensure_binaries
from charging_engine.ledger.settlement import Settlement
from charging_server.migrations import migrate

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
BUCKETS = 64
USD = 1_000_000


@dataclass(frozen=True)
class Figures:
    accounts: int
    screen_s: float
    candidates: int
    pass_s: float
    expired: int
    again_s: float
    again: int


async def seed(dsn: str, redis_url: str, accounts: int) -> None:
    conn = await asyncpg.connect(dsn)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await load_functions(redis)
        await conn.execute("INSERT INTO tenants (tenant_id, currency) VALUES ('bench', 'USD')")
        await conn.execute("INSERT INTO accounts (tenant_id, account_id, currency, kind)"
                           " SELECT 'bench', 'p' || i, 'USD', 'prepaid'"
                           " FROM generate_series(1, $1) i", accounts)  # fmt: skip
        policy = Policy(validity_days=30, inactivate_after=None)
        await conn.execute("INSERT INTO prepaid_policies (tenant_id, policy) VALUES"
                           " ('bench', $1)", orjson.dumps(policy_doc(policy)).decode())
        store = BalanceStore(redis, BUCKETS)
        until = (AT - timedelta(hours=1)).isoformat()
        now = int((AT - timedelta(days=30)).timestamp() * 1000)
        gate = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            async with gate:
                a = f"p{i}"
                await store.provision("bench", a, currency="USD", credit_limit=0,
                                      status="active", now_ms=now, idem_key=f"prov-{a}")
                await store.credit("bench", a, kind="topup", amount=10 * USD,
                                   idem_key=f"top-{a}", extra={"valid_until": until},
                                   now_ms=now)  # fmt: skip
                await store.credit("bench", a, kind="withdraw", amount=-5 * USD,
                                   idem_key=f"spend-{a}", extra={}, now_ms=now + 1)

        await asyncio.gather(*(one(i) for i in range(1, accounts + 1)))
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
        try:
            settlement = Settlement(redis, pool, BUCKETS, "bench")
            await settlement.ensure_groups()
            while await settlement.drain_once():
                pass
        finally:
            await pool.close()
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
        await redis.aclose()


async def _measure(dsn: str, redis_url: str) -> tuple[float, int, float, int, float, int]:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        store = BalanceStore(redis, BUCKETS)

        async def refreshed() -> None:
            return None

        clock = lambda: int(time.time() * 1000)  # noqa: E731
        accounts = AccountChanges(pool, store, clock=clock, on_catalog_change=refreshed)
        money = MoneyOperations(pool, store, clock=clock)
        t0 = time.perf_counter()
        found = len(await pool.fetch(validity_run.CANDIDATES_SQL, AT))
        t1 = time.perf_counter()
        expired = await validity_run.evaluate_due(pool, money, accounts, at=AT)
        t2 = time.perf_counter()
        settlement = Settlement(redis, pool, BUCKETS, "bench")
        while await settlement.drain_once():
            pass
        t3 = time.perf_counter()
        again = await validity_run.evaluate_due(pool, money, accounts, at=AT)
        t4 = time.perf_counter()
        taken = await pool.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'expiry'")
        assert taken == expired, (taken, expired)
        return t1 - t0, found, t2 - t1, expired, t4 - t3, again
    finally:
        await pool.close()
        await redis.aclose()


def run(accounts: int = 10_000) -> Figures:
    import uvloop

    redis_bin, pg_bin = ensure_binaries()
    with tempfile.TemporaryDirectory(prefix="ce-prepaid-") as tmp:
        rs = RedisServer(Path(tmp) / "redis", redis_server=redis_bin)
        pg = PostgresServer(Path(tmp) / "pg", bin_dir=pg_bin)
        rs.start()
        pg.start()
        try:
            dsn = pg.create_database("prepaid")
            uvloop.run(migrate(dsn))
            uvloop.run(seed(dsn, rs.url, accounts))
            figures = uvloop.run(_measure(dsn, rs.url))
        finally:
            pg.stop()
            rs.stop()
    return Figures(accounts, *figures)


def report(f: Figures) -> str:
    return "\n".join([
        f"## prepaid validity over {f.accounts:,} accounts (each 5 USD left of an expired"
        " top-up)",
        f"screen (set-based, {f.candidates:,} due):          {f.screen_s:6.2f} s",
        f"expiry pass ({f.expired:,} expired, once each):   {f.pass_s:6.1f} s"
        f" ({f.expired / f.pass_s:,.0f} accounts/s)",
        f"the same tick again ({f.again} more):              {f.again_s:6.2f} s",
    ])  # fmt: skip


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.prepaid")
    p.add_argument("--accounts", type=int, default=10_000)
    args = p.parse_args()
    print(report(run(args.accounts)))


if __name__ == "__main__":
    main()
