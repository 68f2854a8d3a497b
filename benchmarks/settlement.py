"""Settlement into Postgres: the real path (stream read, COPY, ack) against per-row INSERTs.

N ledger entries, shaped exactly as charging.lua writes them (half of them call settlements
carrying CDR details), are put into the bucket streams; settlement workers as the engine makes
them (own RESP connections, shards, a pool carrying times as epoch ms) drain them with their run
loop: one process; then several processes of one consumer group, as several `charging-engine
settle` would run; then one process writing one INSERT statement per row (asyncpg executemany,
in transactions of the same batch size), as a row-at-a-time biller would. Each into a fresh
database.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgpack
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
    epoch_ms_codec,
)
from charging_engine.ledger.settlement_rows import call_row, ledger_extra, ledger_row

BUCKETS = 64
BATCH = 5000
SHARDS = Settings.model_fields["settle_shards"].default


def entry_fields(i: int) -> tuple[int, dict[bytes, bytes]]:
    """The stream fields charging.lua's ``append`` writes for entry ``i`` (msgpack column
    array + extra), half of them call settlements carrying CDR details."""
    account = f"a{i % 1000}"
    seq = i // 1000 + 1
    settle = i % 2 == 1
    extra = pack_extra({
        "dst": "442079460000", "prefix": "44", "plan": "std", "start_ms": 1_795_000_000_000,
        "answer_ms": 1_795_000_005_000, "end_ms": 1_795_000_065_000, "duration": 60,
        "billed": 60, "disposition": "answered",
    } if settle else {})
    columns = [
        "bench", account, seq, "commit" if settle else "reserve",
        -12000 if settle else 0, -300000 if settle else 300000, "1000000",
        f"end:c{i}", "1795000065000", f"c{i}",
    ]
    fields = {b"e": msgpack.packb(columns), b"x": extra}
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
                calls.append(call_row(e, ms=True))
                ledger.append(ledger_row(e, i.bucket, ledger_extra(e.extra, calls[-1]), True))
            else:
                ledger.append(ledger_row(e, i.bucket, e.extra, ms=True))
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


@contextlib.asynccontextmanager
async def worker(redis_url: str, dsn: str, name: str,
                 cls: type[Settlement] = Settlement) -> AsyncIterator[Settlement]:
    """A settlement worker as the engine makes one (bootstrap.open_engine): its own RESP
    connections and Postgres pool (times as epoch ms), ``SHARDS`` shards."""
    redis = aioredis.Redis.from_url(redis_url)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=SHARDS, init=epoch_ms_codec)
    transport = RespTransport(redis_url, connections=SHARDS)
    try:
        yield cls(redis, pool, BUCKETS, name, batch_size=BATCH, transport=transport,
                  shards=SHARDS, epoch_ms=True, multi_stream_reads=True)
    finally:
        await transport.aclose()
        await pool.close()
        await redis.aclose()


async def run_until_empty(w: Settlement) -> None:
    """The worker's run loop until every stream is drained (settled entries are deleted)."""
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        while await w.lag() > 0:
            if task.done():
                task.result()  # the loop died: say why
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task


async def one_process(redis_url: str, dsn: str, n: int, cls: type[Settlement]) -> float:
    async with worker(redis_url, dsn, cls.__name__, cls) as w:
        await w.ensure_groups()
        await fill(w.redis, n)
        start = time.perf_counter()
        await run_until_empty(w)
        return n / (time.perf_counter() - start)


async def _drain_process(redis_url: str, dsn: str, name: str, start_at: float) -> tuple[float,
                                                                                        float]:
    async with worker(redis_url, dsn, name) as w:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        await run_until_empty(w)
        return began, time.time()


def _settle_process(redis_url: str, dsn: str, name: str, start_at: float) -> tuple[float, float]:
    import uvloop

    return uvloop.run(_drain_process(redis_url, dsn, name, start_at))


def processes(redis_url: str, dsn: str, n: int, procs: int) -> float:
    """Rows/s of ``procs`` settlement processes (consumers of the same group, as several
    ``charging-engine settle`` would run) draining one backlog, from their common start."""
    async def filled() -> None:
        async with worker(redis_url, dsn, "filler") as w:
            await w.ensure_groups()
            await fill(w.redis, n)

    asyncio.run(filled())
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(procs, mp_context=ctx) as pool:
        start_at = time.time() + 3.0  # time for every process to start and connect
        spans = [f.result() for f in [
            pool.submit(_settle_process, redis_url, dsn, f"p{i}", start_at) for i in range(procs)
        ]]
    return n / (max(end for _, end in spans) - min(begin for begin, _ in spans))


@dataclass
class Figures:
    copy: float  # one process
    copy_procs: float  # ``procs`` processes
    procs: int
    rows: float  # one process, one INSERT per row


def run(n: int = 200_000) -> Figures:
    import uvloop

    redis_bin, pg_bin = ensure_binaries()
    procs = max(2, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="ce-settle-") as tmp:
        rs = RedisServer(Path(tmp) / "redis", redis_server=redis_bin)
        pg = PostgresServer(Path(tmp) / "pg", bin_dir=pg_bin)
        rs.start()
        pg.start()
        try:
            dsns = [pg.create_database(name) for name in ("copy", "procs", "rows")]
            for dsn in dsns:
                uvloop.run(migrate(dsn))
            copy = uvloop.run(one_process(rs.url, dsns[0], n, Settlement))
            many = processes(rs.url, dsns[1], n, procs)
            rows = uvloop.run(one_process(rs.url, dsns[2], n, RowByRowSettlement))
            return Figures(copy, many, procs, rows)
        finally:
            rs.stop()
            pg.remove_data()


def report(f: Figures) -> str:
    return "\n".join([
        "## settlement into Postgres (ledger rows, half of them call settlements with CDRs)",
        f"settlement worker, 1 process (stream read + COPY + ack):   {f.copy:9.0f} rows/s",
        f"settlement workers, {f.procs} processes (one consumer group):  {f.copy_procs:9.0f} rows/s"
        "  (target >= 50,000)",
        f"same worker, one INSERT per row (executemany), 1 process:  {f.rows:9.0f} rows/s",
        f"ratio COPY / INSERT (1 process):                            {f.copy / f.rows:9.1f}",
    ])


if __name__ == "__main__":
    print(report(run()))
