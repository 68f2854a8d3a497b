"""SMS pacing through the dispatcher to the SMSC simulator over TCP, on real Postgres and the
movable clock: quiet hours in the tenant's timezone hold invoice texts until morning while a
BALANCE answer goes at once; a per-minute limit shared by two dispatchers lets exactly the
limit through per minute (counted at the SMSC); a held message is not a failed attempt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from billing.clock import MovableClock
from notifications.channels.sms import SmsChannel
from notifications.dispatcher import Dispatcher
from notifications.pacer import Pacer
from notifications.smpp import SmppClient, Smsc
from tests.billing import support
from tests.integration.fixtures import pool_fixture  # noqa: F401
from tests.notifications.test_sms_dispatch import render

AT = datetime(2026, 6, 1, 20, tzinfo=UTC)  # 22:00 in Berlin (summer time)
World = tuple[Smsc, list[Dispatcher], MovableClock]


async def queue(pool: asyncpg.Pool, key: str, event: str, to: str) -> None:
    await pool.execute(
        "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
        " recipient, language, context, next_attempt_at, created_at) VALUES ('t1', 'a1', $1,"
        " $2, 'sms', $3, 'en', $4, $5, $5)", key, event, to,
        orjson.dumps({"text": f"text {key}"}).decode(), AT)  # fmt: skip


async def settings(pool: asyncpg.Pool, quiet: tuple[str, str] | None, per_minute: int | None,
                   ) -> None:  # fmt: skip
    start, end = quiet or (None, None)
    await pool.execute(
        "INSERT INTO notification_settings (tenant_id, quiet_start, quiet_end, sms_per_minute)"
        " VALUES ('t1', $1::text::time, $2::text::time, $3)", start, end, per_minute)


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[World]:
    await support.tenant(pool, "t1", "EUR", timezone="Europe/Berlin")
    await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency) VALUES"
                       " ('t1', 'a1', 'EUR')")  # fmt: skip
    clock = MovableClock(AT)
    async with Smsc({"acme": "s3cret"}) as smsc:
        client = SmppClient("127.0.0.1", smsc.port, "acme", "s3cret", response_timeout_s=2)
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        await asyncio.wait_for(client.bound.wait(), 10)
        channels = {"sms": SmsChannel(client, "ACME")}
        # Two dispatchers, each with its own pacer (its own settings cache), one database.
        ds = [Dispatcher(pool, channels, render, now=clock.now, batch=20,
                         pacing=Pacer(pool, now=clock.now)) for _ in range(2)]  # fmt: skip
        try:
            yield smsc, ds, clock
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def test_quiet_hours_hold_until_local_morning(pool: asyncpg.Pool, world: World) -> None:
    smsc, (d, _), clock = world
    await settings(pool, ("21:00", "08:00"), None)
    await queue(pool, "inv", "invoice.ready", "+4915100000001")
    await queue(pool, "bal", "sms.balance_reply", "+4915100000002")
    await queue(pool, "rcpt", "collection.receipt", "+4915100000003")
    assert await d.drain() == 2  # the customer asked or is present: no waiting
    assert sorted(m.destination for m in smsc.messages) == [  # E.164 digits, TON 1
        "4915100000002", "4915100000003"]
    held = await pool.fetchrow("SELECT * FROM notifications WHERE source_event = 'inv'")
    assert held["status"] == "pending" and held["attempts"] == 0 and held["last_error"] is None
    assert held["next_attempt_at"] == datetime(2026, 6, 2, 6, tzinfo=UTC)  # 08:00 in Berlin
    clock.set(datetime(2026, 6, 2, 5, 59, tzinfo=UTC))
    assert await d.drain() == 0
    clock.set(datetime(2026, 6, 2, 6, tzinfo=UTC))
    assert await d.drain() == 1
    assert [m.destination for m in smsc.messages].count("4915100000001") == 1


async def test_a_shared_per_minute_limit_across_two_dispatchers(pool: asyncpg.Pool,
                                                                world: World) -> None:
    smsc, ds, clock = world
    await settings(pool, None, 5)
    for n in range(12):
        await queue(pool, f"m{n}", "invoice.reminder", f"+49151000001{n:02d}")
    await queue(pool, "rcpt", "collection.receipt", "+4915100000999")  # exempt, not counted
    per_minute = []
    for _ in range(3):
        before = len(smsc.messages)
        await asyncio.gather(*(d.drain() for d in ds))
        per_minute.append(len(smsc.messages) - before)
        clock.advance(timedelta(minutes=1))
    assert per_minute == [6, 5, 2]  # 5 + the receipt, 5, the last 2
    assert len({m.destination for m in smsc.messages}) == 13  # every one once
    rows = await pool.fetch("SELECT status, attempts FROM notifications")
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
    windows = await pool.fetchval("SELECT count(*) FROM notification_rate_windows")
    assert windows == 1  # older minutes are purged as new ones open
