"""Webhooks to accounting: outbox in the caller's transaction, Standard Webhooks signatures
verified by a real receiver, retries with backoff on a moved clock, give-up and redelivery,
concurrent dispatchers, encrypted secrets, tenant scoping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from billing.clock import MovableClock
from billing.errors import BillingNotFound, InvalidBillingInput
from billing.secrets import Secrets, SecretsKeyError, generate_key
from billing.webhooks import deliveries, endpoints
from billing.webhooks.dispatcher import Dispatcher
from billing.webhooks.outbox import enqueue
from tests.billing.support import utc
from tests.billing.webhook_receiver import Receiver, receiver
from tests.integration.fixtures import pool_fixture  # noqa: F401

KEY = generate_key()


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    for t in ("t1", "t2"):
        await pool.execute("INSERT INTO tenants (tenant_id, currency) VALUES ($1, 'USD')", t)
    yield pool


async def with_secret(pool: asyncpg.Pool, secrets: Secrets, tenant: str, url: str
                      ) -> tuple[endpoints.Endpoint, str]:
    """A new endpoint and its secret (shown at creation only)."""
    ep, secret = await endpoints.create(pool, secrets, tenant, url)
    assert secret is not None
    return ep, secret


async def send(pool: asyncpg.Pool, tenant: str, kind: str, n: int, clock: MovableClock) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, tenant, kind, {"n": n}, f"{kind}:{n}", at=clock.now())


async def test_deliveries_verify_and_the_outbox_follows_the_transaction(
    world: asyncpg.Pool
) -> None:
    secrets, clock = Secrets(KEY), MovableClock(utc(2026, 3, 1))
    async with receiver() as rx:
        ep, rx.secret = await with_secret(world, secrets, "t1", rx.url)
        await send(world, "t1", "invoice.finalized", 1, clock)
        await send(world, "t1", "invoice.finalized", 1, clock)  # same dedup key: once
        with pytest.raises(RuntimeError):
            async with world.acquire() as conn, conn.transaction():
                await enqueue(conn, "t1", "invoice.voided", {"n": 2}, "v:2", at=clock.now())
                raise RuntimeError("the change failed")
        d = Dispatcher(world, secrets, clock=clock)
        try:
            assert await d.run_once() == 1
            assert await d.run_once() == 0
        finally:
            await d.aclose()
        assert rx.rejected == 0
        assert [b["type"] for _, b in rx.received] == ["invoice.finalized"]
        assert rx.received[0][1]["data"] == {"n": 1}
        stored = await world.fetchval("SELECT secret FROM webhook_endpoints")
        assert rx.secret.encode() not in bytes(stored) and rx.secret.split("_")[1].encode() \
            not in bytes(stored)
        assert ep.endpoint_id.startswith("we_")


async def test_a_receiver_down_for_a_while_gets_every_event_once_back(
    world: asyncpg.Pool
) -> None:
    secrets, clock = Secrets(KEY), MovableClock(utc(2026, 3, 1))
    rx = Receiver()
    await rx.start()
    port = rx.port
    _, rx.secret = await with_secret(world, secrets, "t1", rx.url)
    await rx.stop()  # down: connection refused
    d = Dispatcher(world, secrets, clock=clock, base_s=10, cap_s=600)
    try:
        for n in range(5):
            await send(world, "t1", "invoice.finalized", n, clock)
        assert await d.run_once() == 0
        log = await world.fetchval("SELECT count(*) FROM webhook_attempts WHERE error IS NOT NULL")
        assert log == 5
        assert await d.run_once() == 0  # not due again before the backoff has passed
        assert await world.fetchval("SELECT count(*) FROM webhook_attempts") == 5
        back = Receiver(rx.secret, port=port, answer=500)  # back, but answering 500
        await back.start()
        try:
            clock.advance(timedelta(seconds=20))
            assert await d.run_once() == 0
            back.answer = 200
            clock.advance(timedelta(seconds=60))
            assert await d.run_once() == 5
        finally:
            await back.stop()
        ids = [i for i, _ in back.received]
        # Each event arrived twice (the 500 made it retry), recognisable by its webhook-id.
        assert len(ids) == 10 and len(set(ids)) == 5
        assert all(ids.count(i) == 2 for i in ids)
        assert {b["data"]["n"] for _, b in back.received} == set(range(5))
        assert await world.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'") == 5
    finally:
        await d.aclose()


async def test_give_up_then_manual_redelivery_with_the_same_id(world: asyncpg.Pool) -> None:
    secrets, clock = Secrets(KEY), MovableClock(utc(2026, 3, 1))
    async with receiver() as rx:
        ep, rx.secret = await with_secret(world, secrets, "t1", rx.url)
        rx.answer = 503
        await send(world, "t1", "invoice.paid", 7, clock)
        d = Dispatcher(world, secrets, clock=clock, max_attempts=3, base_s=1, cap_s=5)
        try:
            for _ in range(5):
                await d.run_once()
                clock.advance(timedelta(seconds=10))
            row = (await deliveries.page(world, "t1", ep.endpoint_id, None, 10))[0]
            assert row["status"] == "failed" and row["attempts"] == 3
            tries = await deliveries.attempts(world, "t1", row["delivery_id"])
            assert [t["status_code"] for t in tries] == [503, 503, 503]
            rx.answer = 200
            with pytest.raises(BillingNotFound):  # another tenant cannot touch it
                await deliveries.redeliver(world, "t2", row["delivery_id"], clock.now())
            await deliveries.redeliver(world, "t1", row["delivery_id"], clock.now())
            assert await d.run_once() == 1
            assert [i for i, _ in rx.received] == [row["event_id"]] * 4
        finally:
            await d.aclose()


async def test_two_dispatchers_never_send_one_delivery_twice(world: asyncpg.Pool) -> None:
    secrets, clock = Secrets(KEY), MovableClock(utc(2026, 3, 1))
    async with receiver() as rx:
        _, rx.secret = await with_secret(world, secrets, "t1", rx.url)
        for n in range(60):
            await send(world, "t1", "invoice.finalized", n, clock)
        a = Dispatcher(world, secrets, clock=clock)
        b = Dispatcher(world, secrets, clock=clock)
        try:
            got = await asyncio.gather(a.run_once(limit=40), b.run_once(limit=40))
            got2 = await asyncio.gather(a.run_once(limit=40), b.run_once(limit=40))
        finally:
            await a.aclose()
            await b.aclose()
        assert sum(got) + sum(got2) == 60
        ids = [i for i, _ in rx.received]
        assert len(ids) == 60 == len(set(ids))


async def test_filters_scoping_and_keys(world: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    secrets, clock = Secrets(KEY), MovableClock(utc(2026, 3, 1))
    only_void, _ = await endpoints.create(world, secrets, "t1", "https://acc.example/h",
                                          event_types=("invoice.voided",))
    other, _ = await endpoints.create(world, secrets, "t2", "https://b.example/h")
    await send(world, "t1", "invoice.finalized", 1, clock)
    await send(world, "t1", "invoice.voided", 2, clock)
    rows = await world.fetch("SELECT d.endpoint_id, e.type FROM webhook_deliveries d"
                             " JOIN webhook_events e USING (event_id)")
    assert [(r["endpoint_id"], r["type"]) for r in rows] == [
        (only_void.endpoint_id, "invoice.voided")]
    with pytest.raises(BillingNotFound):
        await endpoints.get(world, "t1", other.endpoint_id)
    with pytest.raises(BillingNotFound):
        await endpoints.update(world, "t1", other.endpoint_id, enabled=False)
    with pytest.raises(BillingNotFound):
        await endpoints.delete(world, "t1", other.endpoint_id)
    assert await deliveries.page(world, "t1", other.endpoint_id, None, 10) == []
    for bad in ("ftp://x/y", "https://user:pw@x/y", "not a url"):
        with pytest.raises(InvalidBillingInput):
            await endpoints.create(world, secrets, "t1", bad)
    with pytest.raises(InvalidBillingInput):
        await endpoints.create(world, secrets, "t1", "https://x/y", event_types=("nope.x",))
    monkeypatch.delenv("CE_SECRETS_KEY", raising=False)
    with pytest.raises(SecretsKeyError, match="CE_SECRETS_KEY is not set"):
        Secrets()
    with pytest.raises(SecretsKeyError, match="urlsafe-base64"):
        Secrets("short")
    stored = await world.fetchval("SELECT secret FROM webhook_endpoints LIMIT 1")
    with pytest.raises(SecretsKeyError, match="does not decrypt"):
        Secrets(generate_key()).decrypt(stored)
    rotated = Secrets(f"{generate_key()},{KEY}")  # new key first, old one still reads
    assert rotated.decrypt(stored).startswith("whsec_")
