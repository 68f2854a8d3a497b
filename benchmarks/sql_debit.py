"""The Redis reservation path against a Postgres-only row-locking debit, side by side.

SQL-balance billing systems (A2Billing, ASTPP, MagnusBilling) charge with a transaction that
locks the account row: authorize = ``SELECT ... FOR UPDATE`` + insert a reservation; end =
lock again, debit, delete the reservation, insert the CDR. Both sides run the same number of
concurrent calls over the same accounts, in one run, and the ratio is printed.
The private Postgres runs with fsync and synchronous_commit off, which flatters it.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from benchmarks.lifecycle import ACCOUNTS, engine_peak
from charging_engine.devservers import PostgresServer, RedisServer, ensure_binaries

SCHEMA = """
CREATE TABLE sql_accounts (id int PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE sql_reservations (call_id text PRIMARY KEY, account int NOT NULL, amount bigint);
CREATE TABLE sql_cdrs (call_id text PRIMARY KEY, account int, cost bigint, at timestamptz);
"""


async def sql_lifecycles(dsn: str, seconds: float, workers: int, tag: str) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=workers // 2, max_size=workers // 2)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            call, acc = f"{tag}-{w}-{i}", (w + i) % ACCOUNTS
            async with pool.acquire() as conn:
                async with conn.transaction():  # authorize: lock, check, reserve
                    bal = await conn.fetchval(
                        "SELECT balance FROM sql_accounts WHERE id = $1 FOR UPDATE", acc)
                    reserved = await conn.fetchval(
                        "SELECT coalesce(sum(amount), 0) FROM sql_reservations "
                        "WHERE account = $1", acc)
                    if bal - reserved < 1000:
                        continue
                    await conn.execute(
                        "INSERT INTO sql_reservations VALUES ($1, $2, $3)", call, acc, 1000)
                async with conn.transaction():  # end: lock, debit, release, CDR
                    await conn.execute(
                        "SELECT 1 FROM sql_accounts WHERE id = $1 FOR UPDATE", acc)
                    await conn.execute(
                        "UPDATE sql_accounts SET balance = balance - $2 WHERE id = $1", acc, 700)
                    await conn.execute("DELETE FROM sql_reservations WHERE call_id = $1", call)
                    await conn.execute(
                        "INSERT INTO sql_cdrs VALUES ($1, $2, $3, now())", call, acc, 700)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    rate = done / (time.perf_counter() - start)
    await pool.close()
    return rate


async def prepare_sql(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        await conn.executemany("INSERT INTO sql_accounts VALUES ($1, $2)",
                               [(i, 10**14) for i in range(ACCOUNTS)])
    finally:
        await conn.close()


def run(seconds: float = 4.0, rounds: int = 3, workers: int = 200) -> tuple[float, float]:
    import uvloop

    redis_bin, pg_bin = ensure_binaries()
    sql, engine = [], []
    with tempfile.TemporaryDirectory(prefix="ce-sql-") as tmp:
        rs = RedisServer(Path(tmp) / "redis", redis_server=redis_bin)
        pg = PostgresServer(Path(tmp) / "pg", bin_dir=pg_bin)
        rs.start()
        pg.start()
        try:
            dsn = pg.create_database("sqldebit")
            uvloop.run(prepare_sql(dsn))
            for n in range(rounds):
                sql.append(uvloop.run(sql_lifecycles(dsn, seconds, workers, f"r{n}")))
                engine.append(uvloop.run(engine_peak(rs.url, seconds, n)))
        finally:
            rs.stop()
            pg.remove_data()
    return statistics.median(engine), statistics.median(sql)


def report(figures: tuple[float, float]) -> str:
    engine, sql = figures
    return "\n".join([
        "## Redis reservations vs Postgres row-locking debit (200 concurrent calls, 64 accounts)",
        f"Postgres-only debit lifecycles (SELECT FOR UPDATE, 2 transactions): {sql:9.0f} /s",
        f"engine lifecycles (Redis functions, coalesced pipelines):          {engine:9.0f} /s",
        f"ratio engine / Postgres-only:                                      {engine / sql:9.1f}"
        "  (target >= 5)",
    ])
