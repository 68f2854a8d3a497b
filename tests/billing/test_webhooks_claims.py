"""Webhook delivery when things go wrong: a dispatcher that dies or answers late holding a
claim, an endpoint URL the HTTP client refuses, a key that no longer decrypts a secret, a
disabled endpoint, a hung receiver, redelivery to an endpoint made later. Real PostgreSQL, a
real receiver on loopback that verifies every request; time moves on a clock, not by waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing.clock import MovableClock
from billing.errors import BillingNotFound
from billing.secrets import Secrets, SecretsKeyError, generate_key
from billing.webhooks import deliveries, endpoints
from billing.webhooks.dispatcher import Dispatcher
from billing.webhooks.outbox import enqueue
from billing.webhooks.signing import new_secret
from tests.billing.support import utc
from tests.billing.webhook_receiver import Receiver
from tests.integration.fixtures import pool_fixture  # noqa: F401

KEY = generate_key()
LEASE = timedelta(seconds=60)


@dataclass
class HoldingReceiver(Receiver):
    """The shared receiver, plus: the first ``hold_first`` requests wait for ``release``
    before answering, and ``arrived`` is set as soon as any verified request came in."""

    hold_first: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            raw = await request.body()
            try:
                data = Webhook(self.secret).verify(raw, dict(request.headers))
            except WebhookVerificationError:
                self.rejected += 1
                return Response(status_code=401)
            self.received.append((request.headers["webhook-id"], data))
            self.arrived.set()
            if self.hold_first > 0:
                self.hold_first -= 1
                await self.release.wait()
            return Response(status_code=self.answer)

        return app


@contextlib.asynccontextmanager
async def holding(hold_first: int = 0) -> AsyncIterator[HoldingReceiver]:
    rx = HoldingReceiver(hold_first=hold_first)
    await rx.start()
    try:
        yield rx
    finally:
        rx.release.set()  # a held request answers, so the server can shut down
        await rx.stop()


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    for t in ("t1", "t2"):
        await pool.execute("INSERT INTO tenants (tenant_id, currency) VALUES ($1, 'USD')", t)
    yield pool


async def send(pool: asyncpg.Pool, tenant: str, n: int, clock: MovableClock,
               kind: str = "invoice.finalized") -> str:
    async with pool.acquire() as conn, conn.transaction():
        event_id = await enqueue(conn, tenant, kind, {"n": n}, f"{kind}:{n}", at=clock.now())
    assert event_id is not None
    return event_id


async def delivery(pool: asyncpg.Pool) -> Any:
    return await pool.fetchrow("SELECT * FROM webhook_deliveries")


async def create(pool: asyncpg.Pool, secrets: Secrets, tenant: str, url: str
                 ) -> tuple[endpoints.Endpoint, str]:
    """A new endpoint and its secret (shown at creation only)."""
    ep, secret = await endpoints.create(pool, secrets, tenant, url)
    assert secret is not None
    return ep, secret


def dispatcher(pool: asyncpg.Pool, clock: MovableClock, **kw: Any) -> Dispatcher:
    return Dispatcher(pool, kw.pop("secrets", Secrets(KEY)), clock=clock,
                      lease_s=LEASE.total_seconds(), **kw)


async def test_a_crashed_dispatchers_claim_is_taken_over_when_its_lease_ends(
    world: asyncpg.Pool
) -> None:
    clock = MovableClock(utc(2026, 3, 1))
    async with holding(hold_first=1) as rx:
        _, rx.secret = await create(world, Secrets(KEY), "t1", rx.url)
        event_id = await send(world, "t1", 1, clock)
        a, b = dispatcher(world, clock), dispatcher(world, clock)
        try:
            crashed = asyncio.create_task(a.run_once())
            await rx.arrived.wait()
            crashed.cancel()  # dies mid-request, holding its claim
            with contextlib.suppress(asyncio.CancelledError):
                await crashed
            assert await b.run_once() == 0  # the claim is still leased
            clock.advance(LEASE + timedelta(seconds=1))
            assert await b.run_once() == 1
        finally:
            await a.aclose()
            await b.aclose()
        assert [i for i, _ in rx.received] == [event_id, event_id]  # a recognisable duplicate
        row = await delivery(world)
        assert row["status"] == "delivered" and row["attempts"] == 2


async def test_a_late_answer_to_a_taken_over_claim_is_logged_but_decides_nothing(
    world: asyncpg.Pool
) -> None:
    clock = MovableClock(utc(2026, 3, 1))
    async with holding(hold_first=1) as rx:
        _, rx.secret = await create(world, Secrets(KEY), "t1", rx.url)
        await send(world, "t1", 1, clock)
        slow, b = dispatcher(world, clock), dispatcher(world, clock)
        try:
            late = asyncio.create_task(slow.run_once())
            await rx.arrived.wait()
            clock.advance(LEASE + timedelta(seconds=1))
            assert await b.run_once() == 1  # took the expired claim over and delivered
            rx.answer = 500
            rx.release.set()  # now the slow dispatcher's request answers, with a 500
            assert await late == 0
        finally:
            await slow.aclose()
            await b.aclose()
        row = await delivery(world)
        assert row["status"] == "delivered" and row["lease_until"] is None
        log = await world.fetch("SELECT attempt, status_code FROM webhook_attempts ORDER BY id")
        assert sorted((r["attempt"], r["status_code"]) for r in log) == [(1, 500), (2, 200)]
        clock.advance(timedelta(days=1))
        d = dispatcher(world, clock)
        try:
            assert await d.run_once() == 0  # nothing was re-queued by the late 500
        finally:
            await d.aclose()
        assert len(rx.received) == 2


async def test_an_endpoint_url_the_client_refuses_is_a_failed_attempt_not_a_crash(
    world: asyncpg.Pool
) -> None:
    clock = MovableClock(utc(2026, 3, 1))
    secrets = Secrets(KEY)
    async with holding() as rx:
        _, rx.secret = await create(world, secrets, "t1", rx.url)
        # A row written before URLs were checked this strictly: httpx refuses it outright.
        await world.execute(
            "INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, secret)"
            " VALUES ('t1', 'we_bad', $1, $2)",
            "http://acc\x01.example/h", secrets.encrypt(new_secret()),
        )
        await send(world, "t1", 1, clock)
        d = dispatcher(world, clock)
        stop = asyncio.Event()
        loop = asyncio.create_task(d.run(stop, interval_s=60))
        arrived = asyncio.create_task(rx.arrived.wait())
        try:
            async with asyncio.timeout(10):
                done, _ = await asyncio.wait({loop, arrived},
                                             return_when=asyncio.FIRST_COMPLETED)
            assert arrived in done, f"the loop ended: {loop.exception()!r}"
        finally:
            arrived.cancel()
            stop.set()
            await loop  # ends cleanly once its round is done: nothing escaped the loop
            await d.aclose()
        bad = await world.fetchrow(
            "SELECT d.status, d.last_error, a.status_code, a.error FROM webhook_deliveries d"
            " JOIN webhook_attempts a USING (delivery_id) WHERE d.endpoint_id = 'we_bad'")
        assert bad["status"] == "pending" and bad["status_code"] is None
        assert bad["error"] and bad["last_error"] == bad["error"]


async def test_a_secret_the_key_cannot_decrypt_waits_unattempted_and_says_why(
    world: asyncpg.Pool
) -> None:
    clock = MovableClock(utc(2026, 3, 1))
    old, new = generate_key(), generate_key()
    async with holding() as rx_old, holding() as rx_new:
        lost, rx_old.secret = await create(world, Secrets(old), "t1", rx_old.url)
        _, rx_new.secret = await create(world, Secrets(new), "t1", rx_new.url)
        await send(world, "t1", 1, clock)
        wrong = dispatcher(world, clock, secrets=Secrets(new))  # the old key was dropped
        try:
            with pytest.raises(SecretsKeyError, match="CE_SECRETS_KEY"):
                await wrong.run_once()
        finally:
            await wrong.aclose()
        assert len(rx_new.received) == 1 and rx_old.received == []  # the others still went
        row = await world.fetchrow("SELECT * FROM webhook_deliveries WHERE endpoint_id = $1",
                                   lost.endpoint_id)
        assert row["status"] == "pending" and row["attempts"] == 0
        assert "does not decrypt" in row["last_error"]
        assert await world.fetchval("SELECT count(*) FROM webhook_attempts") == 1
        clock.advance(LEASE + timedelta(seconds=1))
        fixed = dispatcher(world, clock, secrets=Secrets(f"{new},{old}"))
        try:
            assert await fixed.run_once() == 1
        finally:
            await fixed.aclose()
        assert len(rx_old.received) == 1 and rx_old.rejected == 0


async def test_a_disabled_endpoints_deliveries_wait_for_it_without_using_attempts(
    world: asyncpg.Pool
) -> None:
    clock = MovableClock(utc(2026, 3, 1))
    async with holding() as rx:
        ep, rx.secret = await create(world, Secrets(KEY), "t1", rx.url)
        await send(world, "t1", 1, clock)
        await endpoints.update(world, "t1", ep.endpoint_id, enabled=False)
        d = dispatcher(world, clock)
        try:
            assert await d.run_once() == 0
            row = await delivery(world)
            assert row["status"] == "pending" and row["attempts"] == 0
            assert await world.fetchval("SELECT count(*) FROM webhook_attempts") == 0
            await endpoints.update(world, "t1", ep.endpoint_id, enabled=True)
            assert await d.run_once() == 1
        finally:
            await d.aclose()
        assert len(rx.received) == 1


async def test_a_hung_receiver_times_out_into_a_logged_retry(world: asyncpg.Pool) -> None:
    clock = MovableClock(utc(2026, 3, 1))
    async with holding(hold_first=1) as rx:
        _, rx.secret = await create(world, Secrets(KEY), "t1", rx.url)
        await send(world, "t1", 1, clock)
        d = dispatcher(world, clock, timeout_s=0.2, base_s=10, cap_s=10)
        try:
            assert await d.run_once() == 0
            row = await delivery(world)
            assert row["status"] == "pending" and row["lease_until"] is None
            assert row["next_attempt_at"] > clock.now()
            error = await world.fetchval("SELECT error FROM webhook_attempts")
            assert "timeout" in error.lower()
            rx.release.set()
            clock.advance(timedelta(seconds=11))
            assert await d.run_once() == 1
        finally:
            await d.aclose()
        ids = [i for i, _ in rx.received]
        assert len(ids) == 2 and len(set(ids)) == 1


async def test_an_event_goes_to_an_endpoint_made_later_on_request_and_only_the_tenants(
    world: asyncpg.Pool
) -> None:
    clock = MovableClock(utc(2026, 3, 1))
    event_id = await send(world, "t1", 1, clock)  # no endpoint yet: no delivery
    other = await send(world, "t2", 1, clock)
    async with holding() as rx:
        ep, rx.secret = await create(world, Secrets(KEY), "t1", rx.url)
        theirs, _ = await create(world, Secrets(KEY), "t2", "https://b.example/h")
        for tenant, event, endpoint in (("t2", event_id, ep.endpoint_id),
                                        ("t1", other, ep.endpoint_id),
                                        ("t1", event_id, theirs.endpoint_id)):
            with pytest.raises(BillingNotFound):
                await deliveries.redeliver_event(world, tenant, event, endpoint, clock.now())
        row = await deliveries.redeliver_event(world, "t1", event_id, ep.endpoint_id,
                                               clock.now())
        assert row["status"] == "pending" and row["event_id"] == event_id
        d = dispatcher(world, clock)
        try:
            assert await d.run_once() == 1
            again = await deliveries.redeliver_event(world, "t1", event_id, ep.endpoint_id,
                                                     clock.now())
            assert again["delivery_id"] == row["delivery_id"]  # the same delivery, re-queued
            assert await d.run_once() == 1
        finally:
            await d.aclose()
        assert [i for i, _ in rx.received] == [event_id, event_id]
        with pytest.raises(BillingNotFound):
            await deliveries.attempts(world, "t2", row["delivery_id"])


async def test_enqueue_outside_a_transaction_is_refused(world: asyncpg.Pool) -> None:
    async with world.acquire() as conn:
        with pytest.raises(RuntimeError, match="transaction"):
            await enqueue(conn, "t1", "invoice.paid", {}, "k")
    assert await world.fetchval("SELECT count(*) FROM webhook_events") == 0
