"""Moving alert entries from the Redis bucket streams into Postgres, like settlement does.

One consumer group (``alerts``) shared by every engine process, read through the engine's one
stream consumer (``charging_engine.streams``): each entry is stored by one process, in a
transaction that also ``NOTIFY``s the stored ids (``ce_alerts``), and only then acknowledged
and deleted. A crash leaves entries pending: the same consumer re-reads them at start and
others reclaim them after ``reclaim_idle_ms``; ``(bucket, stream_id)`` is unique, so a
redelivered entry is stored once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
from redis.asyncio import Redis

from charging_engine.balance.keys import alerts_key
from charging_engine.balance.transport import RedisPyTransport
from charging_engine.streams.consumer import Delivered, StreamConsumer

log = logging.getLogger("admin_api.alerts")

CHANNEL: Final = "ce_alerts"
GROUP: Final = "alerts"
RECLAIM_EVERY_S: Final = 10.0
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_INSERT: Final = """
INSERT INTO alerts (tenant_id, account_id, kind, balance, threshold, from_status, to_status,
                    seq, raised_at, bucket, stream_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (bucket, stream_id) DO NOTHING
RETURNING id
"""


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """One entry of a ``{b:N}:alerts`` stream (written by ``alert()`` in charging.lua)."""

    tenant: str
    account: str
    kind: str
    seq: int | None
    balance: int | None
    threshold: int | None
    ts_ms: int
    from_status: str | None
    to_status: str | None

    @property
    def raised_at(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.ts_ms)


def _text(fields: dict[bytes, bytes], name: bytes) -> str | None:
    raw = fields.get(name)
    return raw.decode() if raw else None


def _int(fields: dict[bytes, bytes], name: bytes) -> int | None:
    raw = fields.get(name)
    return int(raw) if raw else None


def parse_alert(stream_id: str, fields: dict[bytes, bytes]) -> AlertEntry:
    """Decode one entry; raises KeyError/ValueError on a malformed one."""
    return AlertEntry(
        tenant=fields[b"t"].decode(), account=fields[b"a"].decode(),
        kind=fields[b"k"].decode(), seq=_int(fields, b"s"), balance=_int(fields, b"bal"),
        threshold=_int(fields, b"thr"), ts_ms=int(fields[b"ts"]),
        from_status=_text(fields, b"from"), to_status=_text(fields, b"to"),
    )


class AlertFeed(StreamConsumer[AlertEntry]):
    """The ``alerts`` consumer over every bucket's alerts stream.

    New entries are read with one blocking XREADGROUP over all the streams (``block_ms``), so
    an idle feed waits in Redis instead of polling; pending and dead consumers' entries are
    picked up every ``RECLAIM_EVERY_S``. Undecodable entries are dropped with an error log.
    """

    def __init__(
        self, redis: Redis, pool: asyncpg.Pool, buckets: int, consumer: str, *,
        batch: int = 500, block_ms: int = 250, reclaim_idle_ms: int = 30_000,
        on_stored: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            RedisPyTransport(redis), alerts_key, buckets, GROUP, consumer, parse_alert,
            log=log, what="alert feed", batch_size=batch, read_count=batch,
            reclaim_idle_ms=reclaim_idle_ms, multi_stream_reads=True, block_ms=block_ms,
            thorough_every_s=RECLAIM_EVERY_S,
        )
        self.redis = redis
        self.pool = pool
        self.on_stored = on_stored

    async def run(self, stop: asyncio.Event, idle_interval: float = 0.0) -> None:
        """Until ``stop``: the blocking read is the wait, so no pause between passes."""
        await super().run(stop, idle_interval)

    async def _write(self, items: Sequence[Delivered[AlertEntry]]) -> None:
        stored: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for item in items:
                e = item.entry
                assert e is not None  # the consumer passes decoded entries only
                alert_id = await conn.fetchval(
                    _INSERT, e.tenant, e.account, e.kind, e.balance, e.threshold,
                    e.from_status, e.to_status, e.seq, e.raised_at, item.bucket,
                    item.stream_id,
                )
                if alert_id is not None:
                    payload = json.dumps({"id": alert_id, "tenant_id": e.tenant})
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                    stored.append(e.kind)
        if self.on_stored is not None:
            for kind in stored:
                self.on_stored(kind)
