"""A postpaid account end to end on real Redis and Postgres: calls charged by the engine's
functions against the credit limit, settled into the ledger, invoiced at the cycle end,
reviewed, finalized with a number, its usage given back to the balance, and the event
delivered to a real receiver that verifies the signature."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from billing.clock import MovableClock
from billing.enrollment import Enrollment, enroll
from billing.jobs import BillingJobs
from billing.lifecycle import finalize
from billing.secrets import Secrets, generate_key
from billing.webhooks import endpoints
from billing.webhooks.dispatcher import Dispatcher
from charging_engine.accounts.changes import AccountChanges, NewAccount
from charging_engine.accounts.record import AccountKind
from charging_engine.audit import Actor
from charging_engine.balance.entries import pack_extra
from charging_engine.balance.store import BalanceStore
from charging_engine.ledger.settlement import Settlement
from tests.billing import support
from tests.billing.support import utc
from tests.billing.webhook_receiver import receiver
from tests.integration.drive import BUCKETS, fcall
from tests.integration.fixtures import pool_fixture, redis_fixture  # noqa: F401

ADMIN = Actor("test", "tenant_admin")
_calls = itertools.count(1)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def call(redis: aioredis.Redis, account: str, at: datetime, cost: int, prefix: str
               ) -> list[object]:
    """One call through the engine's functions: authorize ``cost`` (refused below it), then
    commit it."""
    cid = f"call{next(_calls)}"
    res = await fcall(redis, "ce_authorize", "t1", account, f"end:{cid}", cid, cost, cost,
                      ms(at) + 3_600_000, b"session", pack_extra({"dst": prefix + "1"}),
                      now_ms=ms(at) - 60_000)
    if res[0] != b"ok":
        return res
    cdr = {"dst": prefix + "5550100", "prefix": prefix, "plan": "rp",
           "start_ms": ms(at) - 60_000, "answer_ms": ms(at) - 55_000, "end_ms": ms(at),
           "duration": 55, "billed": 60, "disposition": "ANSWERED"}
    return await fcall(redis, "ce_settle", "t1", account, f"end:{cid}", cid, "commit", cost, 0,
                       pack_extra(cdr), now_ms=ms(at))


async def test_postpaid_cycle_end_to_end(
    pool: asyncpg.Pool, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await support.tenant(pool, "t1", "USD", finalization="review", review_hours=24)
    await support.rate_plan(pool, "t1", "rp", "USD", {"4420": "UK London", "1212": "New York"})
    await pool.execute("INSERT INTO tax_labels (tenant_id, code, name, rate)"
                       " VALUES ('t1', 'vat', 'VAT', 10)")
    await support.bill_plan(pool, "t1", "pp", "USD", name="Business", plan_fee=1000,
                            tax_codes=["vat"], payment_terms_days=10)
    store = BalanceStore(redis, BUCKETS)
    clock = MovableClock(utc(2026, 1, 15, 12))

    async def refreshed() -> None:
        return None

    accounts = AccountChanges(pool, store, clock=lambda: ms(clock.now()),
                              on_catalog_change=refreshed)
    await accounts.create(ADMIN, "t1", NewAccount(
        "p1", kind=AccountKind.POSTPAID, credit_limit=30_000_000, rate_plan_id="rp"))
    await enroll(pool, "t1", "p1", Enrollment("pp", bcd=15), clock.now())
    # Usage within the credit limit; the limit refuses what goes beyond it.
    for day, cost, prefix in ((16, 12_345_678, "4420"), (20, 7_654_321, "1212"),
                              (25, 5_000_001, "4420")):
        res = await call(redis, "p1", utc(2026, 1, day, 10), cost, prefix)
        assert res[0] == b"ok", res
    refused = await call(redis, "p1", utc(2026, 1, 26, 10), 6_000_000, "4420")
    assert refused[0] == b"insufficient_funds"  # 25 USD used + 6 USD passes the 30 USD limit
    settlement = Settlement(redis, pool, BUCKETS, "s1")
    await settlement.ensure_groups()
    while await settlement.drain_once():
        pass

    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    secrets = Secrets()
    async with receiver() as rx:
        _, rx.secret = await endpoints.create(pool, secrets, "t1", rx.url)
        dispatcher = Dispatcher(pool, secrets, clock=clock)
        jobs = BillingJobs(pool, store, clock=clock, deliverer=dispatcher)
        try:
            clock.set(utc(2026, 2, 15, 0, 5))
            tick = await jobs.tick()
            assert (tick.run.invoices, tick.finalized, tick.credited) == (1, 0, 1)
            inv = await pool.fetchrow("SELECT * FROM invoices")
            assert inv["status"] == "draft" and inv["number"] is None
            # 12.345678 + 5.000001 = 17.345679 -> 17.35; 7.654321 -> 7.65; fee 10.00; VAT 10%
            lines = await pool.fetch("SELECT description, amount, calls FROM invoice_lines"
                                     " WHERE invoice_id = $1 ORDER BY position",
                                     inv["invoice_id"])
            assert [(r["amount"], r["calls"]) for r in lines] == [(1735, 2), (765, 1), (1000, 0)]
            # VAT per line, half-up: 173.5 -> 174, 76.5 -> 77, 100
            assert (inv["subtotal"], inv["tax_total"], inv["total"]) == (3500, 351, 3851)
            assert inv["due_on"] == inv["issued_on"] + timedelta(days=10)
            # The balance got the invoiced usage back: the limit covers only new usage.
            state = await store.state("t1", "p1")
            assert state is not None and state.balance == 0
            clock.advance(timedelta(hours=25))
            tick = await jobs.tick()
            assert tick.finalized == 1 and tick.delivered == 1
            inv = await pool.fetchrow("SELECT * FROM invoices")
            assert inv["status"] == "finalized" and inv["number"] == "INV-2026-000001"
            with pytest.raises(asyncpg.RaiseError, match="cannot be changed"):
                await pool.execute("UPDATE invoices SET total = 1")
            with pytest.raises(asyncpg.RaiseError, match="cannot be changed"):
                await pool.execute("DELETE FROM invoice_lines")
            again = await finalize(pool, "t1", inv["invoice_id"], clock.now())
            assert again["number"] == inv["number"]
            (_, body), = rx.received
            assert body["type"] == "invoice.finalized"
            assert body["data"]["invoice"]["number"] == "INV-2026-000001"
            assert body["data"]["invoice"]["total"] == 3851
            # The next period does not bill the credit-back again; new usage is billed.
            while await settlement.drain_once():
                pass
            assert (await call(redis, "p1", utc(2026, 3, 1), 2_000_000, "4420"))[0] == b"ok"
            while await settlement.drain_once():
                pass
            clock.set(utc(2026, 3, 16, 0, 5))
            await jobs.tick()
            second = await pool.fetchrow("SELECT * FROM invoices WHERE period_start = '2026-02-15'")
            assert second["usage_micros"] == 2_000_000
        finally:
            await dispatcher.aclose()
            await store.close()
