"""Settlement: moves ledger entries from the Redis bucket streams into Postgres, the record.

Each bucket stream is read through one consumer group. A batch is written in one Postgres
transaction that is idempotent on (tenant, account, seq), and only after it commits are the
entries acknowledged and deleted. A crash or a Postgres outage anywhere therefore leaves the
entries pending: this consumer re-reads them, or another reclaims them once they have been idle
for ``reclaim_idle_ms``, and a redelivered entry is a no-op in Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

import asyncpg
import orjson
import redis.exceptions
from redis.asyncio import Redis

from charging_engine.balance.entries import LedgerEntry, parse_entry
from charging_engine.balance.keys import bucket_tag, stream_key
from charging_engine.balance.transport import Command, RedisPyTransport, Transport

log = logging.getLogger("charging_engine.settlement")

SETTLE_KINDS: Final = frozenset({"commit", "release", "expire"})
MIN_READ_PER_BUCKET: Final = 32
BACKOFF_MIN: Final = 0.1
BACKOFF_MAX: Final = 2.0
ACQUIRE_TIMEOUT: Final = 10.0

# Failures expected while Postgres or Redis restarts or is unreachable: retried quietly.
TRANSIENT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,  # includes ConnectionRefusedError and TimeoutError (pool acquisition)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INT32: Final = 2**31 - 1
# Times are Unix milliseconds within datetime's range (what both Python and Postgres hold).
_MIN_MS: Final = -62_135_596_800_000  # 0001-01-01T00:00:00Z
_MAX_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_PG_EPOCH_US: Final = 946_684_800_000_000  # 2000-01-01T00:00:00Z, PostgreSQL's epoch

LEDGER_COLUMNS: Final = (
    "tenant_id", "account_id", "seq", "kind", "amount", "reserved", "balance_after",
    "idem_key", "call_id", "stream_id", "bucket", "ts", "extra",
)
CALL_COLUMNS: Final = (
    "tenant_id", "call_id", "account_id", "destination", "rate_prefix", "plan_id",
    "started_at", "answered_at", "ended_at", "duration", "billed_seconds", "cost",
    "disposition", "settled_by",
)

# Per-session staging tables, emptied by every commit or rollback.
_CREATE_STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS settle_ledger (
    tenant_id text, account_id text, seq bigint, kind text, amount bigint, reserved bigint,
    balance_after bigint, idem_key text, call_id text, stream_id text, bucket int,
    ts timestamptz, extra jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS settle_calls (
    tenant_id text, call_id text, account_id text, destination text, rate_prefix text,
    plan_id text, started_at timestamptz, answered_at timestamptz, ended_at timestamptz,
    duration int, billed_seconds int, cost bigint, disposition text, settled_by text
) ON COMMIT DELETE ROWS;
"""
# Sorted inserts take row locks in one order, so concurrent settlers cannot deadlock. The CTE's
# outer query sees the table as it was before the insert: rows it joins are the pre-existing
# ones, and one with another stream id is a conflict, not a redelivery.
_INSERT_LEDGER: Final = f"""
WITH inserted AS (
    INSERT INTO ledger_entries ({", ".join(LEDGER_COLUMNS)})
    SELECT {", ".join(LEDGER_COLUMNS)} FROM settle_ledger ORDER BY tenant_id, account_id, seq
    ON CONFLICT (tenant_id, account_id, seq) DO NOTHING
    RETURNING 1
)
INSERT INTO ledger_conflicts ({", ".join(LEDGER_COLUMNS)})
SELECT {", ".join(f"s.{c}" for c in LEDGER_COLUMNS)}
FROM settle_ledger s
JOIN ledger_entries e USING (tenant_id, account_id, seq)
WHERE (e.stream_id, e.bucket) IS DISTINCT FROM (s.stream_id, s.bucket)
ON CONFLICT DO NOTHING
"""
# The column is recomputed from the ledger (the sum of the call's correction entries), so a
# redelivered entry changes nothing and a CDR correction plus a re-rate both count.
_APPLY_CORRECTIONS: Final = """
UPDATE calls SET
    correction = (SELECT coalesce(sum(-amount), 0) FROM ledger_entries l
                  WHERE l.tenant_id = $1 AND l.call_id = $2 AND l.kind = 'correction'),
    cdr_seconds = coalesce($3, cdr_seconds)
WHERE tenant_id = $1 AND call_id = $2
"""
_UPSERT_CALLS: Final = f"""
INSERT INTO calls ({", ".join(CALL_COLUMNS)})
SELECT {", ".join(CALL_COLUMNS)} FROM settle_calls ORDER BY tenant_id, call_id
ON CONFLICT (tenant_id, call_id) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS[2:])}
"""


async def epoch_ms_codec(conn: asyncpg.Connection) -> None:
    """``init`` of a pool for settlement alone (``Settlement(epoch_ms=True)``): timestamptz
    travels as Unix milliseconds, binary, with no datetime objects built per row (they were a
    tenth of settlement's Python time). Never on a pool other code shares."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_pg_time, decoder=_unix_ms, format="tuple"
    )


def _pg_time(ms: int) -> tuple[int]:
    return (ms * 1000 - _PG_EPOCH_US,)


def _unix_ms(value: tuple[int]) -> int:
    return (value[0] + _PG_EPOCH_US) // 1000


def dead_letter_key(bucket: int) -> str:
    """Where undecodable entries go, in the bucket's hash slot, so they never block a stream."""
    return f"{bucket_tag(bucket)}:ledger:dead"


class _Item(NamedTuple):
    """One delivered stream entry; ``entry`` is None when it was deleted or undecodable, and
    ``raw`` holds the fields of an undecodable one."""

    bucket: int
    stream_id: str
    entry: LedgerEntry | None
    raw: dict[bytes, bytes] | None = None


class Settlement:
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
        if buckets < 1 or batch_size < 1 or reclaim_idle_ms < 0 or shards < 1:
            raise ValueError(
                "buckets, batch_size and shards must be >= 1, reclaim_idle_ms >= 0"
            )
        self.redis = redis
        self._transport: Transport = transport or RedisPyTransport(redis)
        self._epoch_ms = epoch_ms  # the pool was made with ``init=epoch_ms_codec``
        self._multi_stream_reads = multi_stream_reads
        self._bucket_of_key = {stream_key(b): b for b in range(buckets)}
        self.pool = pool
        self.buckets = buckets
        self.consumer = consumer
        self.group = group
        self.batch_size = batch_size
        self.reclaim_idle_ms = reclaim_idle_ms
        self._shards = [tuple(range(k, buckets, shards)) for k in range(min(shards, buckets))]
        # Each shard's read takes about batch_size entries over its buckets, so a backlog in
        # every bucket (after an outage) is drained in bounded steps, not loaded at once.
        per_bucket = -(-batch_size // len(self._shards[0]))
        self._read_count = min(batch_size, max(MIN_READ_PER_BUCKET, per_bucket))
        self._claim_cursor = ["0-0"] * buckets
        self._need_groups = True

    async def ensure_groups(self) -> None:
        """Create every bucket stream's group from the start, so no earlier entry is skipped."""
        pipe = self.redis.pipeline(transaction=False)
        for b in range(self.buckets):
            pipe.xgroup_create(stream_key(b), self.group, id="0", mkstream=True)
        for res in await pipe.execute(raise_on_error=False):
            if isinstance(res, Exception) and "BUSYGROUP" not in str(res):
                raise res
        self._need_groups = False

    async def lag(self) -> int:
        """Entries not yet settled over all buckets: settled entries are deleted from streams."""
        pipe = self.redis.pipeline(transaction=False)
        for b in range(self.buckets):
            pipe.xlen(stream_key(b))
        return sum(int(n) for n in await pipe.execute())

    async def drain_once(self, thorough: bool = True) -> int:
        """Settle what is readable now, without blocking; return the number of entries acked.

        ``thorough`` also re-reads this consumer's own pending entries and reclaims those of
        dead consumers; the run loop does that on start, after a failure and every half
        ``reclaim_idle_ms``, and otherwise reads only new entries (a third of the commands).
        """
        if self._need_groups:
            await self.ensure_groups()
        # Every shard finishes its batch even when another fails (a write cut off halfway
        # would only be redone), then the first failure is raised for the run loop's backoff.
        results = await asyncio.gather(
            *(self._drain_shard(buckets, thorough) for buckets in self._shards),
            return_exceptions=True,
        )
        total = 0
        for res in results:
            if isinstance(res, BaseException):
                raise res
            total += res
        return total

    async def _drain_shard(self, buckets: Sequence[int], thorough: bool) -> int:
        seen: dict[tuple[int, str], _Item] = {}
        await self._read(seen, buckets, thorough)
        if self._need_groups:  # a stream was flushed since: recreate its group, read again
            await self.ensure_groups()
            await self._read(seen, buckets, thorough)
        if not seen:
            return 0
        # Deleted entries have nothing to write and undecodable ones are parked in Redis:
        # both are acked at once, whatever state Postgres is in.
        entries = [i for i in seen.values() if i.entry is not None]
        others = [i for i in seen.values() if i.entry is None]
        if others:
            await self._park([i for i in others if i.raw is not None])
            await self._ack(others)
        for chunk in _chunks(entries, self.batch_size):
            await self._write(chunk)
            await self._ack(chunk)
        log.debug("settled %d ledger entries", len(seen))
        return len(seen)

    async def run(self, stop: asyncio.Event, idle_interval: float = 0.05) -> None:
        """Drain until ``stop`` is set, every shard in its own loop (a slow COPY in one never
        holds back another); outages are retried with backoff, never acked past."""
        async with asyncio.TaskGroup() as tg:
            for buckets in self._shards:
                tg.create_task(self._run_shard(buckets, stop, idle_interval))

    async def _run_shard(
        self, buckets: Sequence[int], stop: asyncio.Event, idle_interval: float
    ) -> None:
        backoff = BACKOFF_MIN
        loop = asyncio.get_running_loop()
        next_thorough = 0.0  # the first pass picks up what a previous run left pending
        while not stop.is_set():
            thorough = loop.time() >= next_thorough
            try:
                if self._need_groups:
                    await self.ensure_groups()
                n = await self._drain_shard(buckets, thorough)
            except TRANSIENT_ERRORS as exc:
                next_thorough = 0.0  # what was read but not written is pending: re-read it
                log.warning("settlement unavailable (%r); retrying in %.1fs", exc, backoff)
            except Exception:
                next_thorough = 0.0
                log.exception("settlement batch failed; retrying in %.1fs", backoff)
            else:
                if thorough:
                    next_thorough = loop.time() + self.reclaim_idle_ms / 2000
                backoff = BACKOFF_MIN
                if n < self.batch_size // 4:
                    # Little to do: let entries gather into a fuller batch instead of polling
                    # every bucket in a tight loop (tens of thousands of reads/s for a trickle).
                    await _wait(stop, idle_interval)
                continue
            await _wait(stop, backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    # -- reading ---------------------------------------------------------------------------

    async def _read(
        self, seen: dict[tuple[int, str], _Item], buckets: Sequence[int], thorough: bool = True
    ) -> None:
        """Own pending entries, then reclaimed ones of dead consumers (when ``thorough``), then
        new ones, into ``seen`` (an entry delivered by two of the reads counts once)."""
        if not thorough and self._multi_stream_reads:
            await self._read_new(seen, buckets)
            return
        count = self._read_count
        group, consumer = self.group, self.consumer
        commands: list[Command] = []
        for b in buckets:
            key = stream_key(b)
            if thorough:
                commands.append(("XREADGROUP", "GROUP", group, consumer, "COUNT", count,
                                 "STREAMS", key, "0"))
                commands.append(("XAUTOCLAIM", key, group, consumer, self.reclaim_idle_ms,
                                 self._claim_cursor[b], "COUNT", count))
            commands.append(("XREADGROUP", "GROUP", group, consumer, "COUNT", count,
                             "STREAMS", key, ">"))
        results = await self._transport.execute_many(commands)
        for n, b in enumerate(buckets):
            if thorough:
                own, claimed, new = results[3 * n : 3 * n + 3]
            else:  # nothing pending re-read, nothing reclaimed: the cursor stays where it was
                own, claimed, new = [], [self._claim_cursor[b], [], []], results[n]
            if any(_is_nogroup(r) for r in (own, claimed, new)):
                self._need_groups = True  # the stream was flushed: recreate, read next time
                continue
            for res in (own, claimed, new):
                if isinstance(res, Exception):
                    raise res
            self._claim_cursor[b] = _text(claimed[0]) or "0-0"
            for raw_id, fields in [*_read_entries(own), *claimed[1], *_read_entries(new)]:
                _keep(seen, b, raw_id, fields)

    async def _read_new(self, seen: dict[tuple[int, str], _Item], buckets: Sequence[int]) -> None:
        """New entries of all the shard's streams in one XREADGROUP."""
        keys = [stream_key(b) for b in buckets]
        (res,) = await self._transport.execute_many([(
            "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self._read_count,
            "STREAMS", *keys, *[">"] * len(keys),
        )])
        if _is_nogroup(res):
            self._need_groups = True  # a stream was flushed: recreate, read again
            return
        if isinstance(res, Exception):
            raise res
        for key, entries in _streams(res):
            b = self._bucket_of_key[_text(key)]
            for raw_id, fields in entries:
                _keep(seen, b, raw_id, fields)

    async def _park(self, items: list[_Item]) -> None:
        """Copy undecodable entries (with their fields) to the dead-letter stream before the
        ack, so one bad entry neither blocks its stream nor disappears."""
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        for item in items:
            fields: dict[Any, Any] = {**(item.raw or {}), b"src": item.stream_id}
            pipe.xadd(dead_letter_key(item.bucket), fields)
        await pipe.execute()

    # -- writing ---------------------------------------------------------------------------

    async def _write(self, items: Sequence[_Item]) -> None:
        """One transaction: ledger rows (duplicates ignored) and the CDRs of settled calls."""
        ledger: list[tuple[Any, ...]] = []
        calls: dict[tuple[str, str], tuple[Any, ...]] = {}  # last settlement of a call wins
        corrections: list[tuple[str, str, int | None]] = []
        ms = self._epoch_ms
        for item in items:
            e = item.entry
            if e is None:
                continue
            if e.kind in SETTLE_KINDS and e.call_id:
                call = calls[(e.tenant, e.call_id)] = _call_row(e, ms)
                ledger.append(_ledger_row(e, item.bucket, _ledger_extra(e.extra, call), ms))
                continue
            ledger.append(_ledger_row(e, item.bucket, e.extra, ms))
            if e.kind == "correction" and e.call_id:
                cdr = e.extra.get("to_seconds") if e.extra.get("source") == "cdr" else None
                corrections.append((e.tenant, e.call_id, _int(cdr)))
        if not ledger:
            return
        call_rows = list(calls.values())
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
                await conn.executemany(_APPLY_CORRECTIONS, corrections)

    @staticmethod
    async def _write_redelivered(
        conn: Any, ledger: list[tuple[Any, ...]], call_rows: list[tuple[Any, ...]]
    ) -> None:
        await conn.execute(_CREATE_STAGING)
        await conn.copy_records_to_table("settle_ledger", records=ledger, columns=LEDGER_COLUMNS)
        status = await conn.execute(_INSERT_LEDGER)
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
            await conn.execute(_UPSERT_CALLS)

    async def _ack(self, items: Sequence[_Item]) -> None:
        """Delete, then ack: a crash in between leaves a pending id with no entry, which the
        next read of the pending list returns empty and acks, instead of an acked orphan."""
        by_bucket: dict[int, list[str]] = {}
        for item in items:
            by_bucket.setdefault(item.bucket, []).append(item.stream_id)
        commands: list[Command] = []
        for b, ids in by_bucket.items():
            commands.append(("XDEL", stream_key(b), *ids))
            commands.append(("XACK", stream_key(b), self.group, *ids))
        for res in await self._transport.execute_many(commands):
            if isinstance(res, Exception):
                raise res


# -- helpers -------------------------------------------------------------------------------


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` unless stopped first: stopping never waits out a backoff."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _chunks(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is_nogroup(res: object) -> bool:
    return isinstance(res, redis.exceptions.ResponseError) and "NOGROUP" in str(res)


def _streams(res: Any) -> Iterator[tuple[Any, list[Any]]]:
    """(stream key, entries) of an XREADGROUP reply, whichever shape the client parsed it
    into (RESP2 list, RESP3 map; redis-py's or raw)."""
    if not res:
        return
    pairs = res.items() if isinstance(res, dict) else ((s[0], s[1]) for s in res)
    for key, entries in pairs:
        # RESP3 without legacy shaping wraps each stream's list in one more list (a raw
        # RESP2 reply's single entry is also a one-element list, but of [id, fields]).
        if (len(entries) == 1 and isinstance(entries[0], list)
                and (not entries[0] or isinstance(entries[0][0], list | tuple))):
            entries = entries[0]
        yield key, entries


def _read_entries(res: Any) -> list[tuple[Any, Any]]:
    """Entries of a one-stream XREADGROUP reply."""
    return [(e[0], e[1]) for _, entries in _streams(res) for e in entries]


def _keep(seen: dict[tuple[int, str], _Item], bucket: int, raw_id: Any, fields: Any) -> None:
    """Decode a delivered entry into ``seen`` once, however many reads delivered it."""
    sid = _text(raw_id)
    if (bucket, sid) not in seen:
        seen[(bucket, sid)] = _decode(bucket, sid, fields)


def _decode(bucket: int, sid: str, fields: Any) -> _Item:
    if not fields:  # deleted while pending: nothing to write, only to ack
        return _Item(bucket, sid, None)
    if isinstance(fields, list):  # a raw RESP reply: field, value, field, value, ...
        if len(fields) == 4 and fields[0] == b"e" and fields[2] == b"x":  # as append writes
            fields = {b"e": fields[1], b"x": fields[3]}
        else:
            pairs = iter(fields)
            fields = dict(zip(pairs, pairs, strict=False))
    try:
        return _Item(bucket, sid, parse_entry(sid, fields))
    except Exception as exc:
        log.error("undecodable ledger entry %s in bucket %d (%r): dead-lettered", sid, bucket, exc)
        return _Item(bucket, sid, None, dict(fields))


def _text(value: Any) -> str:
    if type(value) is str and "\x00" not in value:  # the usual case, first and cheap
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").replace("\x00", "")
    return "" if value is None else str(value).replace("\x00", "")


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _int(value: Any, limit: int = _INT32) -> int | None:
    """An integer column from a loosely typed CDR field; NULL when absent or unusable."""
    if type(value) is int:  # the usual case, first and cheap
        return value if -limit <= value <= limit else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        n = int(value) if not isinstance(value, float) else (
            int(value) if math.isfinite(value) else None
        )
    except (TypeError, ValueError):
        return None
    return n if n is not None and -limit <= n <= limit else None


def _ts(value: Any, ms: bool = False) -> datetime | int | None:
    """A time column from Unix milliseconds: an int on an ``epoch_ms_codec`` connection, else
    a datetime; NULL when absent, unusable or out of range."""
    n = _int(value, _MAX_MS)
    if n is None or n < _MIN_MS:
        return None
    return n if ms else _EPOCH + timedelta(0, 0, 0, n)  # positional ms: no keyword parsing


def _ts_or(value: Any, fallback: Any, ms: bool) -> datetime | int:
    t = _ts(value, ms)
    if t is not None:
        return t
    t = _ts(fallback, ms)
    return t if t is not None else (0 if ms else _EPOCH)


def _jsonable(value: Any) -> Any:
    """What jsonb accepts: text without NUL, finite numbers, string keys."""
    if isinstance(value, dict):
        return {_text(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes | str):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(value)


def _extra_json(extra: Any) -> str:
    """jsonb text of an entry's extra: orjson for the usual plain dict (fast), the sanitising
    path for anything it refuses or that carries a NUL jsonb would reject."""
    try:
        out = orjson.dumps(extra).decode()
    except TypeError:
        out = "\\u0000"
    if "\\u0000" in out:
        return json.dumps(_jsonable(extra), separators=(",", ":"))
    return out


def _ledger_row(e: LedgerEntry, bucket: int, extra: Any, ms: bool = False) -> tuple[Any, ...]:
    return (
        e.tenant, e.account, e.seq, e.kind, e.amount, e.reserved, e.balance_after,
        _text(e.idem_key), _text(e.call_id) or None, e.stream_id, bucket,
        _ts_or(e.ts_ms, None, ms), _extra_json(extra) if extra else "{}",
    )


# Where each CDR field of a settlement's extra lands in the calls row (see _call_row).
_CDR_COLUMNS: Final = {
    "dst": 3, "prefix": 4, "plan": 5, "start_ms": 6, "answer_ms": 7, "end_ms": 8,
    "duration": 9, "billed": 10, "disposition": 12,
}
_CDR_TIMES: Final = frozenset({"start_ms", "answer_ms", "end_ms"})


def _ledger_extra(extra: Any, call_row: tuple[Any, ...]) -> dict[Any, Any]:
    """A call settlement's extra without the CDR its calls row now holds: the CDR is stored
    once (jsonb parsing was half of the COPY's cost). A key the row has no column for, or a
    value it could not hold as it was (a NUL, a non-number), stays in the ledger verbatim."""
    if not isinstance(extra, dict):
        return {"extra": extra}
    rest: dict[Any, Any] = {}
    for key, value in extra.items():
        col = _CDR_COLUMNS.get(key)
        if col is not None and (
            (value is None or (type(value) is int and call_row[col] is not None))
            if key in _CDR_TIMES else call_row[col] == value
        ):
            continue
        rest[key] = value
    return rest


def _call_row(e: LedgerEntry, ms: bool = False) -> tuple[Any, ...]:
    x: dict[Any, Any] = e.extra if isinstance(e.extra, dict) else {}
    return (
        e.tenant, _text(e.call_id), e.account,
        _opt_text(x.get("dst")), _opt_text(x.get("prefix")), _opt_text(x.get("plan")),
        _ts(x.get("start_ms"), ms), _ts(x.get("answer_ms"), ms),
        _ts_or(x.get("end_ms"), e.ts_ms, ms),  # an end time is always known
        _int(x.get("duration")), _int(x.get("billed")),
        -e.amount, _opt_text(x.get("disposition")), e.kind,
    )
