"""Moving alert entries from the Redis bucket streams into Postgres, like settlement does.

One consumer group (``alerts``) shared by every engine process: each entry is stored by one
process, in a transaction that also ``NOTIFY``s the stored ids (``ce_alerts``), and only then
acknowledged and deleted. A crash leaves entries pending: the same consumer re-reads them at
start and others reclaim them after ``reclaim_idle_ms``; ``(bucket, stream_id)`` is unique, so a
redelivered entry is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import redis.exceptions
from redis.asyncio import Redis

from charging_engine.balance.keys import alerts_key
from charging_engine.ledger.settlement import TRANSIENT_ERRORS

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

    bucket: int
    stream_id: str
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


def parse_alert(bucket: int, stream_id: str, fields: dict[bytes, bytes]) -> AlertEntry:
    """Decode one entry; raises KeyError/ValueError on a malformed one."""
    return AlertEntry(
        bucket=bucket, stream_id=stream_id, tenant=fields[b"t"].decode(),
        account=fields[b"a"].decode(), kind=fields[b"k"].decode(), seq=_int(fields, b"s"),
        balance=_int(fields, b"bal"), threshold=_int(fields, b"thr"),
        ts_ms=int(fields[b"ts"]), from_status=_text(fields, b"from"),
        to_status=_text(fields, b"to"),
    )


def _entries(reply: Any) -> Iterable[tuple[str, str, dict[bytes, bytes] | None]]:
    """(stream, id, fields) of an XREADGROUP reply in either RESP2 or RESP3 shape."""
    if not reply:
        return
    streams = reply.items() if isinstance(reply, dict) else reply
    for name, entries in streams:
        if len(entries) == 1 and isinstance(entries[0], list) and entries[0] and isinstance(
            entries[0][0], list | tuple
        ):
            entries = entries[0]
        stream = name.decode() if isinstance(name, bytes) else str(name)
        for sid, fields in entries:
            yield stream, sid.decode() if isinstance(sid, bytes) else str(sid), fields or None


class AlertFeed:
    """The ``alerts`` consumer over every bucket's alerts stream."""

    def __init__(
        self, redis: Redis, pool: asyncpg.Pool, buckets: int, consumer: str, *,
        batch: int = 500, block_ms: int = 250, reclaim_idle_ms: int = 30_000,
        on_stored: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.reclaim_idle_ms = reclaim_idle_ms
        self.on_stored = on_stored
        self._bucket_of = {alerts_key(b): b for b in range(buckets)}
        self._need_groups = True
        self._read_pending = True  # own entries left unacknowledged by an earlier run
        self._next_reclaim = 0.0

    async def ensure_groups(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key in self._bucket_of:
            pipe.xgroup_create(key, GROUP, id="0", mkstream=True)
        for res in await pipe.execute(raise_on_error=False):
            if isinstance(res, Exception) and "BUSYGROUP" not in str(res):
                raise res
        self._need_groups = False

    async def drain_once(self, block_ms: int | None = None) -> int:
        """Store what is readable (waiting up to ``block_ms`` for new entries); -> entries."""
        if self._need_groups:
            await self.ensure_groups()
        try:
            got = await self._read(block_ms)
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._need_groups = True  # a stream was flushed: recreate its group
            return 0
        if not got:
            return 0
        entries: list[AlertEntry] = []
        for key, sid, fields in got:
            if fields is None:
                continue  # deleted while pending: only to acknowledge
            try:
                entries.append(parse_alert(self._bucket_of[key], sid, fields))
            except (KeyError, ValueError, UnicodeDecodeError) as exc:
                log.error("undecodable alert %s in %s (%r): dropped", sid, key, exc)
        if entries:
            await self._store(entries)
        pipe = self.redis.pipeline(transaction=False)
        for key, sid, _ in got:
            pipe.xack(key, GROUP, sid)
            pipe.xdel(key, sid)
        await pipe.execute()
        return len(got)

    async def _read(self, block_ms: int | None) -> list[tuple[str, str, dict[bytes, bytes] | None]]:
        if self._read_pending:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, dict.fromkeys(self._bucket_of, "0"), count=self.batch
            )
            got = list(_entries(reply))
            if got:
                return got
            self._read_pending = False
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + RECLAIM_EVERY_S
            got = await self._reclaim()
            if got:
                return got
        reply = await self.redis.xreadgroup(
            GROUP, self.consumer, dict.fromkeys(self._bucket_of, ">"), count=self.batch,
            block=block_ms,
        )
        return list(_entries(reply))

    async def _reclaim(self) -> list[tuple[str, str, dict[bytes, bytes] | None]]:
        """Entries another consumer took and never acknowledged (it died)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self._bucket_of:
            pipe.xautoclaim(key, GROUP, self.consumer, self.reclaim_idle_ms, count=self.batch)
        got: list[tuple[str, str, dict[bytes, bytes] | None]] = []
        for key, res in zip(self._bucket_of, await pipe.execute(), strict=True):
            for sid, fields in res[1]:
                got.append((key, sid.decode() if isinstance(sid, bytes) else sid, fields or None))
        return got

    async def _store(self, entries: list[AlertEntry]) -> None:
        stored: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for e in entries:
                alert_id = await conn.fetchval(
                    _INSERT, e.tenant, e.account, e.kind, e.balance, e.threshold,
                    e.from_status, e.to_status, e.seq, e.raised_at, e.bucket, e.stream_id,
                )
                if alert_id is not None:
                    payload = json.dumps({"id": alert_id, "tenant_id": e.tenant})
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                    stored.append(e.kind)
        if self.on_stored is not None:
            for kind in stored:
                self.on_stored(kind)

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: outages are retried with backoff and nothing is acked unstored."""
        backoff = 0.1
        while not stop.is_set():
            try:
                await self.drain_once(self.block_ms)
            except TRANSIENT_ERRORS as exc:
                log.warning("alert feed unavailable (%r); retrying in %.1fs", exc, backoff)
            except Exception:
                log.exception("alert feed batch failed; retrying in %.1fs", backoff)
            else:
                backoff = 0.1
                continue
            self._read_pending = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 2.0)
