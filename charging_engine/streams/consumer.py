"""One consumer group over per-bucket Redis streams, written into Postgres at least once.

Guarantees, for every consumer built on it (settlement, the alert feed):

* an entry is acknowledged only after ``_write`` returned, i.e. after its Postgres
  transaction committed; a crash or an outage anywhere leaves it pending, and it is re-read
  by this consumer (its own pending list) or reclaimed by another once idle for
  ``reclaim_idle_ms`` (XAUTOCLAIM). ``_write`` must therefore be idempotent: a redelivered
  entry is stored once;
* an entry delivered twice within one pass (pending, reclaimed, new) is written once;
* acks delete, then acknowledge: a crash in between leaves a pending id with no entry (read
  back empty and acked), never an acknowledged entry left in the stream;
* an undecodable entry never blocks its stream: it is parked in a dead-letter stream, or
  dropped with an error log, then acked;
* a flushed stream (NOGROUP) gets its group back, created from the start (id 0);
* ``run`` retries outages with backoff and never waits one out when stopped (``runloop``).

A consumer is a subclass that passes the stream keys (bucket -> key), group, consumer name, a
``Transport``, its decode function and options, and implements ``_write``. The per-entry path
(reading a reply into ``Delivered`` items, acking) is kept to one decode call and one tuple
per entry: settlement moves tens of thousands of entries a second through it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Generic, NamedTuple, TypeVar

from charging_engine.balance.transport import Command, Transport
from charging_engine.streams.replies import (
    claimed,
    field_map,
    is_nogroup,
    read_entries,
    streams,
    text,
)
from charging_engine.streams.runloop import run_with_backoff

T = TypeVar("T")
Decode = Callable[[str, dict[Any, Any]], T]  # (stream id, fields) -> entry; raises if bad

MIN_READ_PER_BUCKET: Final = 32


class Delivered(NamedTuple, Generic[T]):
    """One delivered stream entry; ``entry`` is None when it was deleted or undecodable, and
    ``raw`` holds the fields of an undecodable one."""

    bucket: int
    stream_id: str
    entry: T | None
    raw: dict[Any, Any] | None = None


Seen = dict[tuple[int, str], Delivered[T]]


class StreamConsumer(Generic[T]):
    """Reads, dedups, acks and dead-letters for one group over ``buckets`` streams.

    ``shards`` splits the buckets into groups read -> written -> acked concurrently (one
    shard's Postgres write overlaps another's decoding). Each read takes ``read_count``
    entries per stream (default: about ``batch_size`` over a shard); ``_write`` gets chunks of
    at most ``batch_size``. ``multi_stream_reads`` reads a shard's new entries with one
    XREADGROUP over all its streams (single-node Redis only: the keys are in different hash
    slots); ``block_ms`` makes that read wait in Redis for new entries (needs
    ``multi_stream_reads``, and a transport timeout above it). ``dead_letter`` maps a bucket
    to the stream undecodable entries are parked in; None drops them with an error log.
    ``thorough_every_s``: how often ``run`` re-reads own pending entries and reclaims dead
    consumers' (default half ``reclaim_idle_ms``).
    """

    def __init__(
        self,
        transport: Transport,
        key_of: Callable[[int], str],
        buckets: int,
        group: str,
        consumer: str,
        decode: Decode[T],
        *,
        log: logging.Logger,
        what: str,
        batch_size: int = 2000,
        read_count: int | None = None,
        reclaim_idle_ms: int = 30_000,
        shards: int = 1,
        multi_stream_reads: bool = False,
        block_ms: int | None = None,
        dead_letter: Callable[[int], str] | None = None,
        thorough_every_s: float | None = None,
    ) -> None:
        if buckets < 1 or batch_size < 1 or reclaim_idle_ms < 0 or shards < 1:
            raise ValueError(
                "buckets, batch_size and shards must be >= 1, reclaim_idle_ms >= 0"
            )
        if block_ms is not None and not multi_stream_reads:
            raise ValueError("block_ms needs multi_stream_reads (one blocking read per shard)")
        self._transport = transport
        self._keys = [key_of(b) for b in range(buckets)]
        self._bucket_of_key = {key: b for b, key in enumerate(self._keys)}
        self._decode = decode
        self._log = log
        self._what = what
        self._multi_stream_reads = multi_stream_reads
        self._block: tuple[Any, ...] = () if block_ms is None else ("BLOCK", block_ms)
        self._dead_letter = dead_letter
        self.buckets = buckets
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.reclaim_idle_ms = reclaim_idle_ms
        self._thorough_every = (
            reclaim_idle_ms / 2000 if thorough_every_s is None else thorough_every_s
        )
        self._shards = [tuple(range(k, buckets, shards)) for k in range(min(shards, buckets))]
        # Each shard's read takes about batch_size entries over its buckets, so a backlog in
        # every bucket (after an outage) is drained in bounded steps, not loaded at once.
        per_bucket = -(-batch_size // len(self._shards[0]))
        self._read_count = read_count or min(batch_size, max(MIN_READ_PER_BUCKET, per_bucket))
        self._claim_cursor = ["0-0"] * buckets
        self._need_groups = True

    async def _write(self, items: Sequence[Delivered[T]]) -> None:
        """Store decoded entries (``entry`` not None) in one Postgres transaction, idempotent
        on the entry's identity: the entries are acked once this returns."""
        raise NotImplementedError

    async def ensure_groups(self) -> None:
        """Create every stream's group from the start, so no earlier entry is skipped."""
        replies = await self._transport.execute_many(
            [("XGROUP", "CREATE", key, self.group, "0", "MKSTREAM") for key in self._keys]
        )
        for res in replies:
            if isinstance(res, Exception) and "BUSYGROUP" not in str(res):
                raise res
        self._need_groups = False

    async def lag(self) -> int:
        """Entries not yet handled over all buckets: handled entries are deleted from streams."""
        replies = await self._transport.execute_many([("XLEN", key) for key in self._keys])
        for res in replies:
            if isinstance(res, Exception):
                raise res
        return sum(int(n) for n in replies)

    async def drain_once(self, thorough: bool = True) -> int:
        """Handle what is readable now; return the number of entries acked.

        ``thorough`` also re-reads this consumer's own pending entries and reclaims those of
        dead consumers; the run loop does that on start, after a failure and every
        ``thorough_every_s``, and otherwise reads only new entries (a third of the commands).
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

    async def run(self, stop: asyncio.Event, idle_interval: float = 0.05) -> None:
        """Drain until ``stop`` is set, every shard in its own loop (a slow write in one never
        holds back another); outages are retried with backoff, never acked past."""
        async with asyncio.TaskGroup() as tg:
            for buckets in self._shards:
                tg.create_task(run_with_backoff(
                    functools.partial(self._pass, buckets), stop,
                    log=self._log, what=self._what, thorough_every=self._thorough_every,
                    # Little to do: let entries gather into a fuller batch instead of polling
                    # every bucket in a tight loop (tens of thousands of reads/s for a trickle).
                    idle_below=self.batch_size // 4, idle_interval=idle_interval,
                ))

    async def _pass(self, buckets: Sequence[int], thorough: bool) -> int:
        if self._need_groups:
            await self.ensure_groups()
        return await self._drain_shard(buckets, thorough)

    async def _drain_shard(self, buckets: Sequence[int], thorough: bool) -> int:
        seen: Seen[T] = {}
        await self._read(seen, buckets, thorough)
        if self._need_groups:  # a stream was flushed since: recreate its group, read again
            await self.ensure_groups()
            await self._read(seen, buckets, thorough)
        if not seen:
            return 0
        # Deleted entries have nothing to write and undecodable ones are parked (or dropped):
        # both are acked at once, whatever state Postgres is in.
        entries = [i for i in seen.values() if i.entry is not None]
        if len(entries) < len(seen):
            others = [i for i in seen.values() if i.entry is None]
            await self._park([i for i in others if i.raw is not None])
            await self._ack(others)
        for chunk in _chunks(entries, self.batch_size):
            await self._write(chunk)
            await self._ack(chunk)
        self._log.debug("%s: %d entries handled", self._what, len(seen))
        return len(seen)

    # -- reading ---------------------------------------------------------------------------

    async def _read(self, seen: Seen[T], buckets: Sequence[int], thorough: bool = True) -> None:
        """Own pending entries, then reclaimed ones of dead consumers (when ``thorough``), then
        new ones, into ``seen`` (an entry delivered by two of the reads counts once)."""
        if not thorough and self._multi_stream_reads:
            await self._read_new(seen, buckets)
            return
        count = self._read_count
        group, consumer = self.group, self.consumer
        commands: list[Command] = []
        for b in buckets:
            key = self._keys[b]
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
                own, reclaimed, new = results[3 * n : 3 * n + 3]
            else:  # nothing pending re-read, nothing reclaimed: the cursor stays where it was
                own, reclaimed, new = [], [self._claim_cursor[b], []], results[n]
            if any(is_nogroup(r) for r in (own, reclaimed, new)):
                self._need_groups = True  # the stream was flushed: recreate, read next time
                continue
            for res in (own, reclaimed, new):
                if isinstance(res, Exception):
                    raise res
            self._claim_cursor[b], reclaimed_entries = claimed(reclaimed)
            self._take(seen, b, [*read_entries(own), *reclaimed_entries, *read_entries(new)])

    async def _read_new(self, seen: Seen[T], buckets: Sequence[int]) -> None:
        """New entries of all the shard's streams in one XREADGROUP (blocking if asked)."""
        keys = [self._keys[b] for b in buckets]
        (res,) = await self._transport.execute_many([(
            "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self._read_count,
            *self._block, "STREAMS", *keys, *[">"] * len(keys),
        )])
        if is_nogroup(res):
            self._need_groups = True  # a stream was flushed: recreate, read again
            return
        if isinstance(res, Exception):
            raise res
        bucket_of_key = self._bucket_of_key
        for key, entries in streams(res):
            self._take(seen, bucket_of_key[text(key)], entries)

    def _take(self, seen: Seen[T], bucket: int, entries: list[Any]) -> None:
        """Decode delivered entries into ``seen``, each once however many reads delivered it.
        The hot loop: inline id decoding, one decode call and one tuple per entry."""
        decode, log = self._decode, self._log
        for raw_id, fields in entries:
            sid = raw_id.decode() if type(raw_id) is bytes else text(raw_id)
            if (bucket, sid) in seen:
                continue
            if not fields:  # deleted while pending: nothing to write, only to ack
                seen[(bucket, sid)] = Delivered(bucket, sid, None)
                continue
            if type(fields) is not dict:  # a raw RESP reply: field, value, field, value, ...
                fields = field_map(fields)
            try:
                seen[(bucket, sid)] = Delivered(bucket, sid, decode(sid, fields))
            except Exception as exc:
                fate = "dead-lettered" if self._dead_letter else "dropped"
                log.error("undecodable %s entry %s in bucket %d (%r): %s",
                          self._what, sid, bucket, exc, fate)
                seen[(bucket, sid)] = Delivered(bucket, sid, None, dict(fields))

    # -- acking ----------------------------------------------------------------------------

    async def _park(self, items: list[Delivered[T]]) -> None:
        """Copy undecodable entries (with their fields) to the dead-letter stream before the
        ack, so one bad entry neither blocks its stream nor disappears."""
        if not items or self._dead_letter is None:
            return
        commands: list[Command] = []
        for item in items:
            fields: dict[Any, Any] = {**(item.raw or {}), b"src": item.stream_id}
            flat = [part for pair in fields.items() for part in pair]
            commands.append(("XADD", self._dead_letter(item.bucket), "*", *flat))
        _raise_first(await self._transport.execute_many(commands))

    async def _ack(self, items: Sequence[Delivered[T]]) -> None:
        """Delete, then ack: a crash in between leaves a pending id with no entry, which the
        next read of the pending list returns empty and acks, instead of an acked orphan."""
        by_bucket: dict[int, list[str]] = {}
        for item in items:
            by_bucket.setdefault(item.bucket, []).append(item.stream_id)
        commands: list[Command] = []
        for b, ids in by_bucket.items():
            key = self._keys[b]
            commands.append(("XDEL", key, *ids))
            commands.append(("XACK", key, self.group, *ids))
        _raise_first(await self._transport.execute_many(commands))


def _raise_first(replies: list[Any]) -> None:
    for res in replies:
        if isinstance(res, Exception):
            raise res


def _chunks(items: list[Delivered[T]], size: int) -> Iterator[list[Delivered[T]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
