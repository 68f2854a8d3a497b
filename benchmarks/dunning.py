"""Receivables at scale: the suspension ladder over 100,000 postpaid accounts, and payments.

A private Postgres and Redis; 100,000 postpaid accounts, each with one finalized invoice whose
due date is spread over 120 days around the evaluation day (about two thirds overdue by 1-90
days), and a four-step ladder (reminder, outgoing barred with a late fee, suspended,
inactive). Timed, as the billing tick runs it (``dunning_run.evaluate_due``):

* the first pass: every overdue account enters its step (late fees, events, statuses pushed to
  Redis through the engine's account use case);
* the same day again: the set-based screen finds nothing to do;
* the next day: only the accounts crossing a threshold move.

Then payments: ``payments.record`` (allocation to the open invoice, the row lock, the outbox
event) for 10,000 accounts, 8 at a time: payments/s.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import redis.asyncio as aioredis

from billing import dunning_run, payments
from billing.dunning import Ladder, LateFee, Step, ladder_doc
from billing.payments import PaymentIn
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges
from charging_engine.balance.functions import load_functions
from charging_engine.balance.store import BalanceStore
from charging_engine.devservers import PostgresServer, RedisServer, ensure_binaries
from charging_server.migrations import migrate

DAY = date(2026, 6, 1)
AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
LADDER = Ladder((
    Step("reminder", 1),
    Step("outgoing", 15, status=AccountStatus.OUTGOING_SUSPENDED, late_fee=LateFee(fixed=500)),
    Step("suspended", 31, status=AccountStatus.SUSPENDED),
    Step("inactive", 61, status=AccountStatus.INACTIVE),
))  # fmt: skip


@dataclass(frozen=True)
class Figures:
    accounts: int
    overdue: int
    first_s: float
    first_moved: int
    idle_s: float
    next_s: float
    next_moved: int
    payments: int
    pay_s: float


async def seed(dsn: str, accounts: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO tenants (tenant_id, currency) VALUES ('bench', 'USD')")
        await conn.execute("INSERT INTO rate_plans (tenant_id, plan_id, currency)"
                           " VALUES ('bench', 'rp', 'USD')")  # fmt: skip
        await conn.execute("INSERT INTO bill_plans (tenant_id, plan_id, currency, name)"
                           " VALUES ('bench', 'pp', 'USD', 'Business')")  # fmt: skip
        await conn.execute(
            "INSERT INTO accounts (tenant_id, account_id, currency, kind, credit_limit,"
            " rate_plan_id) SELECT 'bench', 'a' || i, 'USD', 'postpaid', 10000000000, 'rp'"
            " FROM generate_series(1, $1) i", accounts)  # fmt: skip
        await conn.execute(
            "INSERT INTO billing_accounts (tenant_id, account_id, plan_id, bcd, open_index,"
            " open_start_date, open_end_date, open_starts_at, open_ends_at)"
            " SELECT 'bench', 'a' || i, 'pp', 1, 0, $2::date, $3::date, $2, $3"
            " FROM generate_series(1, $1) i", accounts, datetime(2026, 6, 1, tzinfo=UTC),
            datetime(2026, 7, 1, tzinfo=UTC))  # fmt: skip
        # due dates from 90 days before DAY to 29 days after it
        await conn.execute(
            "INSERT INTO invoices (invoice_id, tenant_id, account_id, currency, status, number,"
            " number_seq, issued_on, due_on, subtotal, total, amount_due) SELECT 'inv_' || i,"
            " 'bench', 'a' || i, 'USD', 'finalized', 'B-' || i, i, d - 14, d, 5000, 5000, 5000"
            " FROM (SELECT i, $2::date - 90 + (abs(hashint4(i)) % 120) AS d"
            " FROM generate_series(1, $1) i) x", accounts, DAY)  # fmt: skip
        await conn.execute("INSERT INTO dunning_ladders (tenant_id, steps) VALUES ('bench', $1)",
                           orjson.dumps(ladder_doc(LADDER)).decode())  # fmt: skip
        await conn.execute("VACUUM ANALYZE")
        overdue: int = await conn.fetchval("SELECT count(*) FROM invoices WHERE due_on < $1",
                                           DAY)  # fmt: skip
        return overdue
    finally:
        await conn.close()


async def _measure(dsn: str, redis_url: str, paying: int) -> tuple[float, int, float, float,
                                                                    int, float]:  # fmt: skip
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    redis = aioredis.Redis.from_url(redis_url)
    await load_functions(redis)
    try:
        store = BalanceStore(redis, 64)

        async def refreshed() -> None:
            return None

        accounts = AccountChanges(pool, store, clock=lambda: int(time.time() * 1000),
                                  on_catalog_change=refreshed)  # fmt: skip
        t0 = time.perf_counter()
        first = await dunning_run.evaluate_due(pool, accounts, at=AT)
        t1 = time.perf_counter()
        again = await dunning_run.evaluate_due(pool, accounts, at=AT)
        t2 = time.perf_counter()
        assert again == 0, again
        nxt = await dunning_run.evaluate_due(pool, accounts, at=AT + timedelta(days=1))
        t3 = time.perf_counter()
        rows = await pool.fetch("SELECT account_id FROM invoice_open WHERE open > 0"
                                " ORDER BY account_id LIMIT $1", paying)  # fmt: skip
        gate = asyncio.Semaphore(8)

        async def pay(account_id: str) -> None:
            async with gate, pool.acquire() as conn, conn.transaction():
                await payments.record(conn, "bench", PaymentIn(
                    account_id, "bank_transfer", 5000, "USD", DAY, "bench"),
                    idempotency_key=f"bench-{account_id}", at=AT)  # fmt: skip

        t4 = time.perf_counter()
        await asyncio.gather(*(pay(r["account_id"]) for r in rows))
        t5 = time.perf_counter()
        return t1 - t0, first, t2 - t1, t3 - t2, nxt, t5 - t4
    finally:
        await pool.close()
        await redis.aclose()


def run(accounts: int = 100_000, paying: int = 10_000) -> Figures:
    import uvloop

    redis_bin, pg_bin = ensure_binaries()
    with tempfile.TemporaryDirectory(prefix="ce-dunning-") as tmp:
        rs = RedisServer(Path(tmp) / "redis", redis_server=redis_bin)
        pg = PostgresServer(Path(tmp) / "pg", bin_dir=pg_bin)
        rs.start()
        pg.start()
        try:
            dsn = pg.create_database("dunning")
            uvloop.run(migrate(dsn))
            overdue = uvloop.run(seed(dsn, accounts))
            first_s, first, idle_s, next_s, nxt, pay_s = uvloop.run(
                _measure(dsn, rs.url, min(paying, accounts)))
        finally:
            pg.stop()
            rs.stop()
    return Figures(accounts, overdue, first_s, first, idle_s, next_s, nxt,
                   min(paying, accounts), pay_s)  # fmt: skip


def report(f: Figures) -> str:
    return "\n".join([
        f"## suspension ladder over {f.accounts:,} postpaid accounts ({f.overdue:,} overdue)",
        f"first pass (every overdue account enters its step): {f.first_s:6.1f} s,"
        f" {f.first_moved:,} moved ({f.first_moved / f.first_s:,.0f}/s)",
        f"same day again (set-based screen, nothing to do):    {f.idle_s:6.2f} s",
        f"next day ({f.next_moved:,} cross a threshold):          {f.next_s:6.2f} s",
        f"payments recorded and allocated, 8 at a time: {f.payments / f.pay_s:,.0f}/s"
        f" ({f.payments:,} in {f.pay_s:.1f} s)",
    ])  # fmt: skip


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.dunning")
    p.add_argument("--accounts", type=int, default=100_000)
    args = p.parse_args()
    print(report(run(args.accounts)))


if __name__ == "__main__":
    main()
