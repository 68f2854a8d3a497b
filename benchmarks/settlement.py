"""Settlement into Postgres: the real path (stream read, COPY, ack) against per-row INSERTs.

N ledger entries, shaped exactly as the Redis functions write them (half of them call
settlements carrying CDR details), are put into the bucket streams; the settlement worker drains
them (XREADGROUP, decode, COPY, XACK/XDEL). Then the same worker drains the same entries again
into a fresh database writing one INSERT statement per row (asyncpg executemany, in
transactions of the same batch size), as a row-at-a-time biller would.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from charging_engine.balance.entries import pack_extra
from charging_engine.balance.keys import bucket_of, stream_key
from charging_engine.balance.transport import RespTransport
from charging_engine.config import Settings
from charging_engine.devservers import PostgresServer, RedisServer, ensure_binaries
from charging_engine.ledger.migrations import migrate
from charging_engine.ledger.settlement import (
    CALL_COLUMNS,
    LEDGER_COLUMNS,
    SETTLE_KINDS,
    Settlement,
    _call_row,
    _ledger_extra,
    _ledger_row,
)

BUCKETS = 64
BATCH = 5000
SHARDS = Settings.model_fields["settle_shards"].default


def entry_fields(i: int) -> tuple[int, dict[bytes, bytes]]:
    account = f"a{i % 1000}"
    seq = i // 1000 + 1
    settle = i % 2 == 1
    extra = pack_extra({
        "dst": "442079460000", "prefix": "44", "plan": "std", "start_ms": 1_795_000_000_000,
        "answer_ms": 1_795_000_005_000, "end_ms": 1_795_000_065_000, "duration": 60,
        "billed": 60, "disposition": "answered",
    } if settle else {})
    fields = {
        b"t": b"bench", b"a": account.encode(), b"s": str(seq).encode(),
        b"k": b"commit" if settle else b"reserve", b"amt": b"-12000" if settle else b"0",
        b"rsv": b"-300000" if settle else b"300000", b"bal": b"1000000",
        b"idem": f"end:c{i}".encode(), b"ts": b"1795000065000",
        b"call": f"c{i}".encode(), b"x": extra,
    }
    return bucket_of("bench", account, BUCKETS), fields


async def fill(redis: Any, n: int) -> list[tuple[int, dict[bytes, bytes]]]:
    rows = [entry_fields(i) for i in range(n)]
    for start in range(0, n, 10_000):
        pipe = redis.pipeline(transaction=False)
        for bucket, fields in rows[start:start + 10_000]:
            pipe.xadd(stream_key(bucket), fields)
        await pipe.execute()
    return rows


class RowByRowSettlement(Settlement):
    """The same worker, writing each ledger row and CDR with its own INSERT statement."""

    async def _write(self, items: Any) -> None:
        ledger, calls = [], []
        for i in items:
            if (e := i.entry) is None:
                continue
            if e.kind in SETTLE_KINDS and e.call_id:
                calls.append(_call_row(e))
                ledger.append(_ledger_row(e, i.bucket, _ledger_extra(e.extra, calls[-1])))
            else:
                ledger.append(_ledger_row(e, i.bucket, e.extra))
        cols = ", ".join(LEDGER_COLUMNS)
        marks = ", ".join(f"${k}" for k in range(1, len(LEDGER_COLUMNS) + 1))
        call_cols = ", ".join(CALL_COLUMNS)
        call_marks = ", ".join(f"${k}" for k in range(1, len(CALL_COLUMNS) + 1))
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                f"INSERT INTO ledger_entries ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                ledger)
            await conn.executemany(
                f"INSERT INTO calls ({call_cols}) VALUES ({call_marks}) ON CONFLICT DO NOTHING",
                calls)


async def drain_all(worker: Settlement, redis: Any, n: int) -> float:
    """Rows/s of the worker's run loop (as the engine runs it) draining a filled backlog."""
    await worker.ensure_groups()
    await fill(redis, n)
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    while await worker.lag() > 0:  # settled entries are deleted from the streams
        if task.done():
            task.result()  # the loop died: say why
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return n / elapsed


async def both_paths(redis_url: str, dsn_copy: str, dsn_rows: str, n: int) -> tuple[float, float]:
    redis = aioredis.Redis.from_url(redis_url)
    pools = [await asyncpg.create_pool(d, min_size=1, max_size=SHARDS)
             for d in (dsn_copy, dsn_rows)]
    transports = [RespTransport(redis_url, connections=SHARDS) for _ in range(2)]
    try:
        # As the engine runs it (bootstrap.open_engine): its own RESP connections, 2 shards.
        copy_worker = Settlement(redis, pools[0], BUCKETS, "copy", batch_size=BATCH,
                                 transport=transports[0], shards=SHARDS)
        row_worker = RowByRowSettlement(redis, pools[1], BUCKETS, "rows", batch_size=BATCH,
                                        transport=transports[1], shards=SHARDS)
        copy = await drain_all(copy_worker, redis, n)
        rows = await drain_all(row_worker, redis, n)
        return copy, rows
    finally:
        for t in transports:
            await t.aclose()
        for p in pools:
            await p.close()
        await redis.aclose()


def run(n: int = 200_000) -> tuple[float, float]:
    import uvloop

    redis_bin, pg_bin = ensure_binaries()
    with tempfile.TemporaryDirectory(prefix="ce-settle-") as tmp:
        rs = RedisServer(Path(tmp) / "redis", redis_server=redis_bin)
        pg = PostgresServer(Path(tmp) / "pg", bin_dir=pg_bin)
        rs.start()
        pg.start()
        try:
            dsn_copy, dsn_rows = pg.create_database("copy"), pg.create_database("rows")

            async def both() -> tuple[float, float]:
                await migrate(dsn_copy)
                await migrate(dsn_rows)
                return await both_paths(rs.url, dsn_copy, dsn_rows, n)

            return uvloop.run(both())
        finally:
            rs.stop()
            pg.remove_data()


def report(figures: tuple[float, float]) -> str:
    copy, rows = figures
    return "\n".join([
        "## settlement into Postgres (ledger rows, half of them call settlements with CDRs)",
        f"settlement worker (stream read + COPY + calls upsert + ack): {copy:9.0f} rows/s"
        "  (target >= 50,000)",
        f"same worker, one INSERT per row (executemany):               {rows:9.0f} rows/s",
        f"ratio:                                                        {copy / rows:9.1f}",
    ])


if __name__ == "__main__":
    print(report(run()))
