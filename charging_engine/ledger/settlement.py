"""Settlement: moves ledger entries from the Redis bucket streams into Postgres, the record.

Each bucket stream is read through one consumer group (``charging_engine.streams``). A batch
is written in one Postgres transaction that is idempotent on (tenant, account, seq), and only
after it commits are the entries acknowledged and deleted. A crash or a Postgres outage
anywhere therefore leaves the entries pending: this consumer re-reads them, or another reclaims
them once they have been idle for ``reclaim_idle_ms``, and a redelivered entry is a no-op in
Postgres. Undecodable entries are parked in the bucket's dead-letter stream, then acked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
from redis.asyncio import Redis

from charging_engine.balance.entries import LedgerEntry, parse_entry
from charging_engine.balance.keys import bucket_tag, stream_key
from charging_engine.balance.transport import RedisPyTransport, Transport
from charging_engine.ledger.settlement_rows import (
    CALL_COLUMNS,
    LEDGER_COLUMNS,
    SETTLE_KINDS,
    Row,
    batch_rows,
)
from charging_engine.ledger.settlement_sql import (
    APPLY_CORRECTIONS,
    CREATE_STAGING,
    INSERT_LEDGER,
    UPSERT_CALLS,
    epoch_ms_codec,
)
from charging_engine.streams.consumer import Delivered, StreamConsumer
from charging_engine.streams.runloop import TRANSIENT_ERRORS

__all__ = [
    "CALL_COLUMNS",
    "LEDGER_COLUMNS",
    "SETTLE_KINDS",
    "TRANSIENT_ERRORS",
    "Settlement",
    "dead_letter_key",
    "epoch_ms_codec",
]

log = logging.getLogger("charging_engine.settlement")

ACQUIRE_TIMEOUT: Final = 10.0


def dead_letter_key(bucket: int) -> str:
    """Where undecodable entries go, in the bucket's hash slot, so they never block a stream."""
    return f"{bucket_tag(bucket)}:ledger:dead"


class Settlement(StreamConsumer[LedgerEntry]):
    """One settlement consumer over every bucket stream; run several for throughput or HA.

    The buckets are split into ``shards`` settled concurrently, each its own read -> write ->
    ack sequence on its own Postgres connection: while one shard waits for a COPY, another
    decodes, so Python, Redis and Postgres work at the same time. ``transport`` carries the
    stream reads and acks (a dedicated ``RespTransport`` skips redis-py's per-entry parsing
    and argument packing; the default redis-py pipeline also works with Redis Cluster).
    ``epoch_ms`` says ``pool`` is settlement's own, made with ``init=epoch_ms_codec``.
    ``multi_stream_reads`` reads a shard's new entries with one XREADGROUP over all its streams
    (one command instead of one per bucket, polled or not); only on single-node Redis, where
    keys of different hash slots may share a command.
    """

    def __init__(
        self,
        redis: Redis,
        pool: asyncpg.Pool,
        buckets: int,
        consumer: str,
        group: str = "settlement",
        batch_size: int = 2000,
        reclaim_idle_ms: int = 30_000,
        transport: Transport | None = None,
        shards: int = 1,
        epoch_ms: bool = False,
        multi_stream_reads: bool = False,
    ) -> None:
        super().__init__(
            transport or RedisPyTransport(redis), stream_key, buckets, group, consumer,
            parse_entry, log=log, what="settlement", batch_size=batch_size,
            reclaim_idle_ms=reclaim_idle_ms, shards=shards,
            multi_stream_reads=multi_stream_reads, dead_letter=dead_letter_key,
        )
        self.redis = redis
        self.pool = pool
        self._epoch_ms = epoch_ms  # the pool was made with ``init=epoch_ms_codec``

    async def _write(self, items: Sequence[Delivered[LedgerEntry]]) -> None:
        """One transaction: ledger rows (duplicates ignored) and the CDRs of settled calls."""
        ledger, call_rows, corrections = batch_rows(items, self._epoch_ms)
        if not ledger:
            return
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn, conn.transaction():
            try:
                # The usual batch holds only new entries: COPY straight into the tables.
                async with conn.transaction():  # a savepoint
                    await conn.copy_records_to_table(
                        "ledger_entries", records=ledger, columns=LEDGER_COLUMNS
                    )
                    if call_rows:
                        await conn.copy_records_to_table(
                            "calls", records=call_rows, columns=CALL_COLUMNS
                        )
            except asyncpg.UniqueViolationError:
                # A redelivery (after a crash or a reclaim): the staging path skips what is
                # already settled and keeps conflicting reuses of a seq aside.
                await self._write_redelivered(conn, ledger, call_rows)
            if corrections:
                await conn.executemany(APPLY_CORRECTIONS, corrections)

    @staticmethod
    async def _write_redelivered(conn: Any, ledger: list[Row], call_rows: list[Row]) -> None:
        await conn.execute(CREATE_STAGING)
        await conn.copy_records_to_table("settle_ledger", records=ledger, columns=LEDGER_COLUMNS)
        status = await conn.execute(INSERT_LEDGER)
        if (conflicts := int(status.rsplit(" ", 1)[-1])) > 0:
            log.error(
                "%d ledger entries reuse a (tenant, account, seq) already settled from"
                " another stream entry; kept in ledger_conflicts (Redis lost data?)",
                conflicts,
            )
        if call_rows:
            await conn.copy_records_to_table(
                "settle_calls", records=call_rows, columns=CALL_COLUMNS
            )
            await conn.execute(UPSERT_CALLS)
