"""The dispatcher sending SMS through the SMPP client to the SMSC simulator over TCP, on real
Postgres: a long message arrives whole (segmented and reassembled), non-GSM text as UCS-2,
delivery receipts mark messages delivered or failed, and after the SMSC drops the connection
the client re-binds and nothing is lost or sent twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from billing.clock import MovableClock
from notifications.channels.model import Outgoing
from notifications.channels.sms import DeliveryReceipts, SmsChannel
from notifications.dispatcher import Dispatcher, Retry
from notifications.smpp import SmppClient, Smsc
from notifications.sms.encoding import Encoding
from tests.billing import support
from tests.integration.fixtures import pool_fixture  # noqa: F401

AT = datetime(2026, 6, 1, 9, tzinfo=UTC)
LONG = ("Your invoice INV-2026-000123 of 42.00 EUR is ready. We will collect it on or just after"
        " the 6th of June. ") * 4  # fmt: skip
GREEK = "Ο λογαριασμός σας είναι έτοιμος: 42,00 €"


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def render(r: asyncpg.Record) -> Outgoing:
    return Outgoing(r["notification_id"], r["tenant_id"], r["recipient"],
                    body=orjson.loads(r["context"])["text"])  # fmt: skip


async def queue(pool: asyncpg.Pool, key: str, to: str, text: str) -> None:
    await pool.execute(
        "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
        " recipient, language, context, next_attempt_at, created_at) VALUES ('t1', 'a1', $1,"
        " 'invoice.ready', 'sms', $2, 'en', $3, $4, $4)", key, to,
        orjson.dumps({"text": text}).decode(), AT)  # fmt: skip


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[tuple[Smsc, SmppClient, Dispatcher,
                                                           MovableClock]]:  # fmt: skip
    await support.tenant(pool, "t1", "EUR")
    await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency) VALUES"
                       " ('t1', 'a1', 'EUR')")  # fmt: skip
    clock = MovableClock(AT)
    async with Smsc({"acme": "s3cret"}, states={"4915100000099": "UNDELIV"}) as smsc:
        client = SmppClient("127.0.0.1", smsc.port, "acme", "s3cret", response_timeout_s=2,
                            reconnect_min_s=0.05, reconnect_max_s=0.2,
                            on_deliver=DeliveryReceipts(pool, now=clock.now))  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        await asyncio.wait_for(client.bound.wait(), 10)
        d = Dispatcher(pool, {"sms": SmsChannel(client, "ACME")}, render, now=clock.now,
                       retry=Retry(first=timedelta(seconds=10)))  # fmt: skip
        try:
            yield smsc, client, d, clock
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def status(pool: asyncpg.Pool, key: str) -> str:
    s: str = await pool.fetchval("SELECT status FROM notifications WHERE source_event = $1", key)
    return s


async def test_long_and_unicode_messages_and_their_receipts(
    pool: asyncpg.Pool, world: tuple[Smsc, SmppClient, Dispatcher, MovableClock]
) -> None:
    smsc, _, d, _ = world
    await queue(pool, "long", "+4915100000001", LONG)
    await queue(pool, "greek", "+306900000001", GREEK)
    await queue(pool, "gone", "+4915100000099", "hello")
    assert await d.drain() == 3
    got = {m.destination.lstrip("+"): m for m in smsc.messages}  # E.164 digits, TON 1
    assert got["4915100000001"].text == LONG and len(got["4915100000001"].part_ids) == 3
    assert got["306900000001"].text == GREEK and got["306900000001"].encoding is Encoding.UCS2
    parts = await pool.fetchval("SELECT count(*) FROM notification_parts")
    assert parts == 5

    async def settled() -> bool:
        return [await status(pool, k) for k in ("long", "greek", "gone")] == [
            "delivered", "delivered", "failed"]

    await eventually(settled, "the delivery receipts")
    err = await pool.fetchval("SELECT last_error FROM notifications WHERE source_event = 'gone'")
    assert "UNDELIV" in err


async def test_a_dropped_smsc_connection_loses_nothing(
    pool: asyncpg.Pool, world: tuple[Smsc, SmppClient, Dispatcher, MovableClock]
) -> None:
    smsc, client, d, clock = world
    for n in range(10):
        await queue(pool, f"m{n}", f"+49151000001{n:02d}", f"message {n}")
    assert await d.run_once() == 10
    generation = client.generation
    smsc.drop()
    for n in range(10, 20):
        await queue(pool, f"m{n}", f"+49151000001{n:02d}", f"message {n}")

    async def all_sent() -> bool:
        clock.set(clock.now() + timedelta(seconds=15))  # past any backoff
        await d.run_once()
        left: int = await pool.fetchval("SELECT count(*) FROM notifications WHERE status"
                                        " IN ('pending', 'sending')")  # fmt: skip
        return left == 0

    await eventually(all_sent, "every message sent after the re-bind", within=20)
    assert client.generation > generation  # it bound again
    texts = sorted(m.text for m in smsc.messages)
    assert texts == sorted(f"message {n}" for n in range(20))  # each once
