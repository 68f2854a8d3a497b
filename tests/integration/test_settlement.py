"""Settlement moves every Redis ledger entry into Postgres once, and never acks before that."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgpack
import pytest
import redis.asyncio as aioredis

from charging_engine.balance.entries import pack_extra
from charging_engine.balance.keys import bucket_of, stream_key
from charging_engine.balance.transport import RespTransport
from charging_engine.ledger.settlement import (
    TRANSIENT_ERRORS,
    Settlement,
    dead_letter_key,
    epoch_ms_codec,
)

from .drive import (
    BUCKETS,
    NOW_MS,
    TcpProxy,
    account_hash,
    authorize,
    cdr,
    correct,
    fcall,
    provision,
    settle,
    topup,
)
from .fixtures import pool_fixture, redis_fixture  # noqa: F401  (provide "pool", "redis")

ACCOUNTS = [("acme", "1001"), ("acme", "1002"), ("acme", "1003"), ("zeta", "a"), ("zeta", "b"),
            ("zeta", "c")]


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


async def full_call_cycle(redis: aioredis.Redis, tenant: str, account: str, n: int = 0) -> None:
    """provision, topup, reserve, commit: four ledger entries."""
    await provision(redis, tenant, account)
    await topup(redis, tenant, account, 10_000_000, f"pay-{n}")
    await authorize(redis, tenant, account, f"call-{account}-{n}", 2_000_000)
    await settle(redis, tenant, account, f"call-{account}-{n}", 1_234_567, extra=cdr())


async def pending_count(redis: aioredis.Redis, group: str = "settlement") -> int:
    total = 0
    for b in range(BUCKETS):
        info = await redis.xpending(stream_key(b), group)
        total += int(info["pending"])
    return total


async def ledger_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM ledger_entries"))


_VARIANT: dict[str, Any] = {}


@pytest.fixture(params=["redis-py", "resp-3-shards"], autouse=True)
async def transport_variant(
    request: pytest.FixtureRequest, redis_url: str, database_url: str
) -> AsyncIterator[None]:
    """Every test runs with the default transport (a redis-py pipeline, one shard: what works
    with Redis Cluster) and as the engine runs settlement: own RESP connections, 3 shards
    reading all their streams in one command, its own pool carrying times as epoch ms."""
    if request.param == "redis-py":
        yield
        return
    transport = RespTransport(redis_url, connections=3)
    own_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3,
                                         init=epoch_ms_codec)
    _VARIANT.update(transport=transport, shards=3, epoch_ms=True, multi_stream_reads=True,
                    pool=own_pool)
    try:
        yield
    finally:
        _VARIANT.clear()
        await transport.aclose()
        await own_pool.close()


def variant(**kw: Any) -> dict[str, Any]:
    """The variant's settlement keywords (without its pool), overridden by ``kw``."""
    return {**{k: v for k, v in _VARIANT.items() if k != "pool"}, **kw}


def settlement(redis: aioredis.Redis, pool: asyncpg.Pool, consumer: str = "s1",
               **kw: Any) -> Settlement:
    return Settlement(redis, _VARIANT.get("pool", pool), BUCKETS, consumer, **variant(**kw))


async def test_mutations_land_in_the_ledger_and_calls(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    assert len({bucket_of(t, a, BUCKETS) for t, a in ACCOUNTS}) > 2
    s = settlement(redis, pool)
    await s.ensure_groups()
    await s.ensure_groups()  # BUSYGROUP is fine
    for t, a in ACCOUNTS:
        await full_call_cycle(redis, t, a)
    assert await s.lag() == 4 * len(ACCOUNTS)

    assert await s.drain_once() == 4 * len(ACCOUNTS)
    assert await s.drain_once() == 0
    assert await s.lag() == 0
    assert await pending_count(redis) == 0

    for t, a in ACCOUNTS:
        rows = await pool.fetch(
            "SELECT * FROM ledger_entries WHERE tenant_id = $1 AND account_id = $2 ORDER BY seq",
            t, a,
        )
        assert [r["seq"] for r in rows] == [1, 2, 3, 4]
        assert [r["kind"] for r in rows] == ["provision", "topup", "reserve", "commit"]
        assert [r["amount"] for r in rows] == [0, 10_000_000, 0, -1_234_567]
        assert [r["reserved"] for r in rows] == [0, 0, 2_000_000, -2_000_000]
        assert [r["balance_after"] for r in rows] == [0, 10_000_000, 10_000_000, 8_765_433]
        assert [r["call_id"] for r in rows] == [None, None, f"call-{a}-0", f"call-{a}-0"]
        assert {r["bucket"] for r in rows} == {bucket_of(t, a, BUCKETS)}
        assert all(r["ts"] == ms(NOW_MS) for r in rows)
        assert rows[1]["idem_key"] == "pay-0"
        assert rows[1]["extra"] == '{"ref": "pay-0"}'
        assert rows[3]["extra"] == "{}"  # the CDR is in calls, stored once
        live = await account_hash(redis, t, a)
        assert int(live["balance"]) == sum(r["amount"] for r in rows)
        assert int(live["seq"]) == rows[-1]["seq"]

    call = await pool.fetchrow(
        "SELECT * FROM calls WHERE tenant_id = 'zeta' AND call_id = 'call-b-0'"
    )
    c = cdr()
    assert dict(call) == {
        "tenant_id": "zeta", "call_id": "call-b-0", "account_id": "b",
        "destination": "442071234567", "rate_prefix": "4420", "plan_id": "std",
        "started_at": ms(c["start_ms"]), "answered_at": ms(c["answer_ms"]),
        "ended_at": ms(c["end_ms"]), "duration": 60, "billed_seconds": 60, "cost": 1_234_567,
        "disposition": "ANSWERED", "settled_by": "commit", "correction": 0, "cdr_seconds": None,
    }
    assert await pool.fetchval("SELECT count(*) FROM calls") == len(ACCOUNTS)


async def test_release_and_expire_with_sparse_call_details(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await provision(redis, "acme", "1001")
    await topup(redis, "acme", "1001", 5_000_000, "p")
    await authorize(redis, "acme", "1001", "busy", 1_000_000)
    await settle(redis, "acme", "1001", "busy", 0, kind="release", extra={"disposition": "BUSY"})
    await authorize(redis, "acme", "1001", "lost", 1_000_000)
    await settle(redis, "acme", "1001", "lost", 300_000, kind="expire",
                 extra={"answer_ms": None, "duration": "n/a", "dst": "44\x0020"})
    assert await settlement(redis, pool).drain_once() == 6
    rows = {r["call_id"]: dict(r) for r in await pool.fetch("SELECT * FROM calls")}
    assert rows["busy"]["settled_by"] == "release"
    assert rows["busy"]["cost"] == 0
    assert rows["busy"]["disposition"] == "BUSY"
    assert rows["busy"]["started_at"] is None and rows["busy"]["destination"] is None
    assert rows["busy"]["ended_at"] == ms(NOW_MS)  # the settlement time when no end_ms
    assert rows["lost"]["settled_by"] == "expire"
    assert rows["lost"]["cost"] == 300_000
    assert rows["lost"]["answered_at"] is None and rows["lost"]["duration"] is None
    assert rows["lost"]["destination"] == "4420"
    # The CDR is stored once, in calls; what the row could not hold as it was stays in the
    # ledger entry (as close as jsonb allows: it holds no NUL either).
    extras = {r["call_id"]: json.loads(r["extra"]) for r in await pool.fetch(
        "SELECT call_id, extra::text FROM ledger_entries WHERE kind IN ('release', 'expire')")}
    assert extras == {"busy": {}, "lost": {"duration": "n/a", "dst": "4420"}}


async def test_entry_written_but_not_acked_is_a_no_op_when_redelivered(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    class CrashBeforeAck(Settlement):
        async def _ack(self, items: Any) -> None:
            raise RuntimeError("crashed after commit")

    for t, a in ACCOUNTS[:3]:
        await full_call_cycle(redis, t, a)
    crashing = CrashBeforeAck(redis, pool, BUCKETS, "s1")
    with pytest.raises(RuntimeError):
        await crashing.drain_once()
    assert await ledger_count(pool) == 12
    assert await pending_count(redis) == 12

    # The same consumer restarts: its own pending entries come first, and change nothing.
    again = settlement(redis, pool, "s1")
    assert await again.drain_once() == 12
    assert await ledger_count(pool) == 12
    assert await pool.fetchval("SELECT count(*) FROM ledger_conflicts") == 0
    assert await pool.fetchval("SELECT count(*) FROM calls") == 3
    assert await pending_count(redis) == 0
    assert await again.lag() == 0


async def test_entries_of_a_dead_consumer_are_reclaimed_after_idle_time(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    live = settlement(redis, pool, "live", reclaim_idle_ms=60_000)
    await live.ensure_groups()
    for t, a in ACCOUNTS:
        await full_call_cycle(redis, t, a)
    # A consumer reads everything, then dies before writing it.
    delivered: list[tuple[str, str]] = []
    for b in range(BUCKETS):
        reply: Any = await redis.xreadgroup("settlement", "dead", {stream_key(b): ">"})
        for _stream, entries in reply:
            delivered += [(stream_key(b), eid.decode()) for eid, _ in entries]
    assert len(delivered) == 24

    # Pending for a few milliseconds only: the live consumer must leave them alone.
    assert await live.drain_once() == 0
    assert await pending_count(redis) == 24
    # Make them look idle for two minutes, as if the dead consumer vanished long ago.
    for key, eid in delivered:
        await redis.xclaim(key, "settlement", "dead", 0, [eid], idle=120_000)
    assert await live.drain_once() == 24
    assert await ledger_count(pool) == 24
    assert await pending_count(redis) == 0
    assert await live.lag() == 0


async def test_small_batches_drain_a_backlog_in_steps(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    for t, a in ACCOUNTS:
        for n in range(3):
            await full_call_cycle(redis, t, a, n)
    s = settlement(redis, pool, batch_size=5)
    steps = []
    while (n := await s.drain_once()) > 0:
        steps.append(n)
    assert sum(steps) == 3 * 4 * len(ACCOUNTS)
    assert len(steps) > 1
    assert await ledger_count(pool) == 3 * 4 * len(ACCOUNTS)
    assert await s.lag() == 0


async def test_pending_ids_of_deleted_entries_are_just_acked(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    s = settlement(redis, pool)
    await s.ensure_groups()
    await full_call_cycle(redis, "acme", "1001")
    key = stream_key(bucket_of("acme", "1001", BUCKETS))
    reply: Any = await redis.xreadgroup("settlement", "s1", {key: ">"})
    ids = [eid for eid, _ in reply[0][1]]
    await redis.xdel(key, *ids)  # deleted after settling, crashed before the ack
    assert await pending_count(redis) == 4
    assert await s.drain_once() == 4
    assert await pending_count(redis) == 0
    assert await ledger_count(pool) == 0


async def test_a_flushed_stream_gets_its_group_back(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    s = settlement(redis, pool)
    await full_call_cycle(redis, "acme", "1001")
    assert await s.drain_once() == 4
    await redis.flushall()
    from charging_engine.balance.functions import load_functions

    await load_functions(redis)
    await provision(redis, "acme", "1002")  # stream recreated without the group
    await topup(redis, "acme", "1002", 1, "again")
    assert await s.drain_once() == 2
    assert await ledger_count(pool) == 6


async def test_a_reused_seq_is_kept_as_a_conflict_not_dropped(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    s = settlement(redis, pool)
    await full_call_cycle(redis, "acme", "1001")
    assert await s.drain_once() == 4
    await redis.flushall()  # Redis loses the account, and it is provisioned again from zero
    from charging_engine.balance.functions import load_functions

    await load_functions(redis)
    await provision(redis, "acme", "1001")
    await topup(redis, "acme", "1001", 7, "after-loss")
    assert await s.drain_once() == 2
    assert await ledger_count(pool) == 4
    rows = await pool.fetch("SELECT seq, kind, amount FROM ledger_conflicts ORDER BY seq")
    assert [tuple(r) for r in rows] == [(1, "provision", 0), (2, "topup", 7)]


async def test_undecodable_entries_are_parked_not_blocking(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    s = settlement(redis, pool)
    await s.ensure_groups()
    await redis.xadd(stream_key(3), {"garbage": "1"})
    await full_call_cycle(redis, "acme", "1001")
    assert await s.drain_once() == 5
    assert await s.lag() == 0
    parked: Any = await redis.xrange(dead_letter_key(3))
    (dead,) = parked
    assert dead[1][b"garbage"] == b"1"
    assert await ledger_count(pool) == 4


async def test_entries_of_the_first_stream_format_still_settle(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    """Streams written before the two-field format (one stream field per column) settle as
    they are after an upgrade; a two-field entry of the wrong shape is parked."""
    s = settlement(redis, pool)
    await s.ensure_groups()
    extra = pack_extra({"dst": "4420", "duration": 60, "billed": 60, "end_ms": NOW_MS})
    await redis.xadd(stream_key(5), {
        "t": "acme", "a": "old", "s": "1", "k": "commit", "amt": "-700", "rsv": "-900",
        "bal": "-700", "idem": "end:c-old", "ts": str(NOW_MS), "call": "c-old", "x": extra,
    })
    bad = msgpack.packb(["acme", "old", 2, "topup"])  # four columns of ten
    await redis.xadd(stream_key(5), {"e": bad, "x": pack_extra({})})
    assert await s.drain_once() == 2
    row = await pool.fetchrow("SELECT * FROM ledger_entries WHERE account_id = 'old'")
    assert (row["seq"], row["kind"], row["amount"], row["reserved"], row["balance_after"],
            row["call_id"], row["ts"]) == (1, "commit", -700, -900, -700, "c-old", ms(NOW_MS))
    call = await pool.fetchrow("SELECT * FROM calls WHERE call_id = 'c-old'")
    assert (call["cost"], call["destination"], call["billed_seconds"]) == (700, "4420", 60)
    parked: Any = await redis.xrange(dead_letter_key(5))
    assert [p[1][b"e"] for p in parked] == [bad]


async def test_resp3_client(redis_url: str, pool: asyncpg.Pool) -> None:
    client = aioredis.from_url(redis_url, protocol=3)
    try:
        from charging_engine.balance.functions import load_functions

        await load_functions(client)
        for t, a in ACCOUNTS[:2]:
            await full_call_cycle(client, t, a)
        s = settlement(client, pool)
        assert await s.drain_once() == 8
        assert await s.lag() == 0
    finally:
        await client.aclose()


# -- Postgres outages -----------------------------------------------------------------------


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A switchable TCP path to the test database, and a DSN that goes through it."""
    parts = urlsplit(database_url)
    assert parts.hostname is not None and parts.port is not None
    p = TcpProxy(parts.hostname, parts.port)
    await p.start()
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{p.port}"
    try:
        yield p, urlunsplit(parts._replace(netloc=netloc))
    finally:
        await p.stop()


async def test_nothing_is_acked_while_postgres_is_unreachable(
    redis: aioredis.Redis, pool: asyncpg.Pool, proxy: tuple[TcpProxy, str]
) -> None:
    path, dsn = proxy
    via_proxy = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        s = Settlement(redis, via_proxy, BUCKETS, "s1", **variant(epoch_ms=False))
        await s.ensure_groups()
        await full_call_cycle(redis, "acme", "1001")
        assert await s.drain_once() == 4

        for t, a in ACCOUNTS:
            await full_call_cycle(redis, t, a, n=1)
        await path.stop()
        for _ in range(3):
            with pytest.raises(TRANSIENT_ERRORS):
                await s.drain_once()
        assert await s.lag() == 4 * len(ACCOUNTS)
        assert await ledger_count(pool) == 4

        assert await pending_count(redis) == 4 * len(ACCOUNTS)

        await path.start()
        assert await s.drain_once() == 4 * len(ACCOUNTS)
        assert await ledger_count(pool) == 4 + 4 * len(ACCOUNTS)
        assert await s.lag() == 0
        assert await pending_count(redis) == 0
    finally:
        await via_proxy.close()


class Probe(Settlement):
    """Signals what ``run`` went through, so the test waits on events instead of sleeping."""

    def __init__(self, *args: Any, target: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.target = target
        self.settled = 0
        self.failures = 0
        self.failing = asyncio.Event()
        self.done = asyncio.Event()
        self.idle = asyncio.Event()

    async def _drain_shard(self, buckets: Sequence[int], thorough: bool) -> int:
        try:
            n = await super()._drain_shard(buckets, thorough)
        except Exception:
            self.failures += 1
            if self.failures >= 3:
                self.failing.set()
            raise
        self.settled += n
        if self.settled >= self.target:
            self.done.set()
        if n == 0:
            self.idle.set()
        return n


async def test_run_rides_out_a_postgres_outage(
    redis: aioredis.Redis, pool: asyncpg.Pool, proxy: tuple[TcpProxy, str]
) -> None:
    path, dsn = proxy
    via_proxy = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    stop = asyncio.Event()
    probe = Probe(redis, via_proxy, BUCKETS, "runner", target=4 * len(ACCOUNTS),
                  **variant(epoch_ms=False))  # its pool goes through the proxy
    try:
        await path.stop()
        task = asyncio.create_task(probe.run(stop, idle_interval=0.01))
        for t, a in ACCOUNTS:
            await full_call_cycle(redis, t, a)
        await asyncio.wait_for(probe.failing.wait(), 10)
        assert not task.done()  # the loop survives
        assert await ledger_count(pool) == 0
        assert await probe.lag() == 4 * len(ACCOUNTS)  # nothing acked

        await path.start()
        await asyncio.wait_for(probe.done.wait(), 10)
        assert await ledger_count(pool) == 4 * len(ACCOUNTS)
        assert await probe.lag() == 0

        probe.idle.clear()
        await asyncio.wait_for(probe.idle.wait(), 10)
        stop.set()
        await asyncio.wait_for(task, 1)
    finally:
        stop.set()
        await via_proxy.close()


async def test_stop_interrupts_a_long_idle_wait(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    stop = asyncio.Event()
    probe = Probe(redis, _VARIANT.get("pool", pool), BUCKETS, "s1", target=1, **variant())
    task = asyncio.create_task(probe.run(stop, idle_interval=3600))
    await asyncio.wait_for(probe.idle.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 1)


async def test_cdr_correction_lands_on_the_call_once(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await provision(redis, "acme", "1001")
    await topup(redis, "acme", "1001", 5_000_000, "p")
    await authorize(redis, "acme", "1001", "c1", 1_000_000)
    await settle(redis, "acme", "1001", "c1", 400_000, extra=cdr())
    s = settlement(redis, pool)
    assert await s.drain_once() == 4
    res = await correct(redis, "acme", "1001", "c1", 150_000, 90)
    assert res[0] == b"ok"
    again = await correct(redis, "acme", "1001", "c1", 150_000, 90)  # a retried correction
    assert again[0] == b"duplicate"
    assert await s.drain_once() == 1
    row = await pool.fetchrow(
        "SELECT cost, correction, cdr_seconds FROM calls WHERE call_id = 'c1'")
    assert dict(row) == {"cost": 400_000, "correction": 150_000, "cdr_seconds": 90}
    total = await pool.fetchval(
        "SELECT sum(amount) FROM ledger_entries WHERE account_id = '1001'")
    assert total == 5_000_000 - 400_000 - 150_000

    # A later correction of the same call (a re-rate) adds to the first, it does not replace it.
    rerate = await fcall(redis, "ce_credit", "acme", "1001", "correction:rerate-1:c1",
                         "correction", 30_000, pack_extra({"source": "rerate"}), "c1")
    assert rerate[0] == b"ok"
    assert await s.drain_once() == 1
    row = await pool.fetchrow(
        "SELECT cost, correction, cdr_seconds FROM calls WHERE call_id = 'c1'")
    assert dict(row) == {"cost": 400_000, "correction": 120_000, "cdr_seconds": 90}
