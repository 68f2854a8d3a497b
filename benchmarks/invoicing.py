"""The invoice run at scale: 100,000 postpaid accounts with 100 settled calls each (10M calls).

A private Postgres (and Redis, for giving postpaid balances their invoiced usage back) is
filled set-based with accounts, their bill plan (a fee, VAT), destination groups, calls and
their ledger entries (a reserve and a commit per call, as settlement writes them). Then the
billing job's steps are timed, as ``charging-engine bill`` runs them, with ``procs`` run
processes at once: the run (claim, cut, consolidate usage by destination group, fees, taxes,
write invoices and lines), finalization (gapless numbers), and the usage credit-back in Redis.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from billing.clock import MovableClock
from billing.invoice_run import InvoiceRun
from billing.lifecycle import finalize_due
from billing.usage_credit import credit_pending
from charging_engine.balance.store import BalanceStore
from charging_engine.devservers import PostgresServer, RedisServer, ensure_binaries
from charging_server.migrations import migrate

START = datetime(2026, 1, 15, tzinfo=UTC)
END = datetime(2026, 2, 15, tzinfo=UTC)
NOW = datetime(2026, 2, 15, 0, 5, tzinfo=UTC)
BUCKETS = 64
GROUPS = {"4420": "UK London", "4477": "UK mobile", "1212": "USA New York", "33": "France",
          "49151": "Germany mobile", "91": "India"}


async def seed(dsn: str, accounts: int, calls: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO tenants (tenant_id, currency) VALUES ('bench', 'USD')")
        await conn.execute("INSERT INTO rate_plans (tenant_id, plan_id, currency)"
                           " VALUES ('bench', 'rp', 'USD')")
        for prefix, name in GROUPS.items():
            await conn.execute(
                "INSERT INTO rates (tenant_id, plan_id, prefix, description, price_per_minute)"
                " VALUES ('bench', 'rp', $1, $2, 20000)", prefix, name)
        await conn.execute("INSERT INTO tax_labels (tenant_id, code, name, rate)"
                           " VALUES ('bench', 'vat', 'VAT', 20)")
        await conn.execute(
            "INSERT INTO bill_plans (tenant_id, plan_id, currency, name, plan_fee, tax_codes)"
            " VALUES ('bench', 'pp', 'USD', 'Business', 1500, '{vat}')")
        await conn.execute(
            "INSERT INTO accounts (tenant_id, account_id, currency, kind, credit_limit,"
            " rate_plan_id, created_at) SELECT 'bench', 'a' || i, 'USD', 'postpaid',"
            " 100000000000, 'rp', $2 FROM generate_series(1, $1) i", accounts, START)
        await conn.execute(
            "INSERT INTO billing_accounts (tenant_id, account_id, plan_id, bcd, open_index,"
            " open_start_date, open_end_date, open_starts_at, open_ends_at)"
            " SELECT 'bench', 'a' || i, 'pp', 15, 0, $2::date, $3::date, $2, $3"
            " FROM generate_series(1, $1) i", accounts, START, END)
        await conn.execute(
            "INSERT INTO account_plan_history (tenant_id, account_id, plan_id, from_date)"
            " SELECT 'bench', 'a' || i, 'pp', $2::date FROM generate_series(1, $1) i",
            accounts, START)
        prefixes = list(GROUPS)
        span = int((END - START).total_seconds())
        await conn.execute(
            "INSERT INTO calls (tenant_id, call_id, account_id, destination, rate_prefix,"
            " plan_id, started_at, answered_at, ended_at, duration, billed_seconds, cost,"
            " disposition, settled_by)"
            " SELECT 'bench', 'c' || i || '-' || k, 'a' || i, p || '5550100', p, 'rp', t, t, t,"
            " 60, 60, 1000 + h % 900000, 'ANSWERED', 'commit' FROM ("
            "  SELECT i, k, h, ($3::text[])[1 + h % array_length($3::text[], 1)] AS p,"
            "         $4::timestamptz + make_interval(secs => (h % $5)) AS t FROM ("
            "   SELECT i, k, abs(hashint8(i::bigint * 1000003 + k)) AS h"
            "   FROM generate_series(1, $1) i, generate_series(1, $2) k) x) y",
            accounts, calls, prefixes, START, span)
        # A reserve and a commit per call, numbered per account in time order.
        await conn.execute(
            "INSERT INTO ledger_entries (tenant_id, account_id, seq, kind, amount, reserved,"
            " balance_after, idem_key, call_id, stream_id, bucket, ts)"
            " SELECT tenant_id, account_id, 2 * n - 1 + x, CASE x WHEN 0 THEN 'reserve'"
            " ELSE 'commit' END, CASE x WHEN 0 THEN 0 ELSE -cost END, 0, 0,"
            " 'end:' || call_id, call_id, call_id || '-' || x, 0, ended_at FROM ("
            "  SELECT *, row_number() OVER (PARTITION BY account_id ORDER BY ended_at, call_id)"
            "   AS n FROM calls) c, generate_series(0, 1) x")
        # A month of settled ledger has long been vacuumed by autovacuum in production: the
        # cut's count/max over (tenant, account, seq) then reads the index alone.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def provision(redis_url: str, accounts: int) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    store = BalanceStore(redis, BUCKETS)
    await store.load()
    sem = asyncio.Semaphore(200)

    async def one(i: int) -> None:
        async with sem:
            await store.provision("bench", f"a{i}", currency="USD",
                                  credit_limit=100_000_000_000, status="active", now_ms=0)

    await asyncio.gather(*(one(i) for i in range(1, accounts + 1)))
    await store.close()
    await redis.aclose()


async def _run_process(dsn: str, start_at: float) -> tuple[float, float, int, int]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        stats = await InvoiceRun(pool, clock=MovableClock(NOW), batch_size=1000).run_due()
        return began, time.time(), stats.invoices, stats.calls
    finally:
        await pool.close()


def _process(dsn: str, start_at: float) -> tuple[float, float, int, int]:
    import uvloop

    return uvloop.run(_run_process(dsn, start_at))


async def _finish(dsn: str, redis_url: str) -> tuple[float, int, float, int]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    redis = aioredis.Redis.from_url(redis_url)
    store = BalanceStore(redis, BUCKETS)
    try:
        t0 = time.perf_counter()
        finalized = await finalize_due(pool, NOW, batch=2000)
        t1 = time.perf_counter()
        credited = await credit_pending(pool, store, NOW)
        t2 = time.perf_counter()
        return t1 - t0, finalized, t2 - t1, credited
    finally:
        await store.close()
        await redis.aclose()
        await pool.close()


@dataclass
class Figures:
    accounts: int
    calls: int
    procs: int
    seed_s: float
    run_s: float
    invoices: int
    consolidated: int
    finalize_s: float
    finalized: int
    credit_s: float
    credited: int

    @property
    def total_s(self) -> float:
        return self.run_s + self.finalize_s + self.credit_s


def run(accounts: int = 100_000, calls: int = 100, procs: int | None = None) -> Figures:
    import uvloop

    procs = procs or max(2, os.cpu_count() or 1)
    redis_bin, pg_bin = ensure_binaries()
    with tempfile.TemporaryDirectory(prefix="ce-invoicing-") as tmp:
        rs = RedisServer(Path(tmp) / "redis", redis_server=redis_bin)
        pg = PostgresServer(Path(tmp) / "pg", bin_dir=pg_bin)
        rs.start()
        pg.start()
        try:
            dsn = pg.create_database("invoicing")
            uvloop.run(migrate(dsn))
            t0 = time.perf_counter()
            uvloop.run(seed(dsn, accounts, calls))
            uvloop.run(provision(rs.url, accounts))
            seed_s = time.perf_counter() - t0
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(procs, mp_context=ctx) as ex:
                start_at = time.time() + 3.0
                spans = [f.result() for f in [ex.submit(_process, dsn, start_at)
                                              for _ in range(procs)]]
            run_s = max(e for _, e, _, _ in spans) - min(b for b, _, _, _ in spans)
            fin_s, finalized, credit_s, credited = uvloop.run(_finish(dsn, rs.url))
        finally:
            pg.stop()
            rs.stop()
    return Figures(
        accounts, accounts * calls, procs, seed_s, run_s, sum(s[2] for s in spans),
        sum(s[3] for s in spans), fin_s, finalized, credit_s, credited,
    )


def report(f: Figures) -> str:
    return "\n".join([
        f"invoicing: {f.accounts:,} postpaid accounts, {f.calls:,} calls"
        f" (seeded in {f.seed_s:.0f} s), {f.procs} run processes",
        f"  run: {f.invoices:,} invoices in {f.run_s:.1f} s = {f.invoices / f.run_s:,.0f}"
        f" invoices/s, {f.consolidated / f.run_s:,.0f} calls consolidated/s",
        f"  finalize: {f.finalized:,} numbered in {f.finalize_s:.1f} s;"
        f" usage credit-back: {f.credited:,} balances in {f.credit_s:.1f} s",
        f"  whole job: {f.total_s:.1f} s (target <= 120 s)",
    ])


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(report(run(n)))
