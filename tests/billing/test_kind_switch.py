"""Switching prepaid <-> postpaid at once, with a call in flight: no call lost or counted twice,
the prepaid money carried over as billing credit and back."""

from __future__ import annotations

from datetime import date

import asyncpg
import redis.asyncio as aioredis

from billing.clock import MovableClock
from billing.enrollment import Enrollment, enroll
from billing.invoice_run import InvoiceRun
from billing.kind_switch import KindSwitches, request
from billing.usage_credit import credit_pending
from charging_engine.accounts.changes import AccountChanges, NewAccount
from charging_engine.accounts.record import AccountKind
from charging_engine.balance.entries import pack_extra
from charging_engine.balance.store import BalanceStore
from charging_engine.ledger.settlement import Settlement
from tests.billing import support
from tests.billing.support import utc
from tests.billing.test_postpaid_flow import ADMIN, call, ms
from tests.integration.drive import BUCKETS, fcall
from tests.integration.fixtures import pool_fixture, redis_fixture  # noqa: F401


async def setup(pool: asyncpg.Pool, redis: aioredis.Redis, kind: AccountKind, clock: MovableClock
                ) -> tuple[BalanceStore, KindSwitches, Settlement]:
    await support.tenant(pool, "t1", "USD")
    await support.rate_plan(pool, "t1", "rp", "USD", {"4420": "UK London"})
    await support.bill_plan(pool, "t1", "pp", "USD", name="Business")
    store = BalanceStore(redis, BUCKETS)

    async def refreshed() -> None:
        return None

    accounts = AccountChanges(pool, store, clock=lambda: ms(clock.now()),
                              on_catalog_change=refreshed)
    await accounts.create(ADMIN, "t1", NewAccount("k1", kind=kind, credit_limit=50_000_000,
                                                  rate_plan_id="rp"))
    await enroll(pool, "t1", "k1", Enrollment("pp", bcd=15), clock.now())
    settlement = Settlement(redis, pool, BUCKETS, "s1")
    await settlement.ensure_groups()
    return store, KindSwitches(pool, store, accounts), settlement


async def drain(s: Settlement) -> None:
    while await s.drain_once():
        pass


async def test_prepaid_to_postpaid_now_with_a_call_in_flight(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    clock = MovableClock(utc(2026, 1, 15, 12))
    store, switches, settlement = await setup(pool, redis, AccountKind.PREPAID, clock)
    await store.credit("t1", "k1", kind="topup", amount=20_000_000, idem_key="t1",
                       extra={}, now_ms=ms(clock.now()))
    assert (await call(redis, "k1", utc(2026, 1, 18), 1_500_000, "4420"))[0] == b"ok"
    # A call authorized before the switch, ending after it.
    at = utc(2026, 1, 20, 9)
    res = await fcall(redis, "ce_authorize", "t1", "k1", "end:fly", "fly", 3_000_000, 0,
                      ms(at) + 3_600_000, b"s", pack_extra({}), now_ms=ms(at))
    assert res[0] == b"ok"
    clock.set(utc(2026, 1, 20, 10))
    await request(pool, "t1", "k1", "postpaid", "now", clock.now())
    assert await switches.apply_due(clock.now()) == 0  # moved; waits for settlement
    await drain(settlement)
    assert await switches.apply_due(clock.now()) == 1
    ba = await pool.fetchrow("SELECT * FROM billing_accounts")
    assert ba["credit_balance"] == 1850 and ba["pending_kind"] is None  # 20 - 1.50 USD
    assert await pool.fetchval("SELECT kind FROM accounts") == "postpaid"
    cdr = {"prefix": "4420", "plan": "rp", "end_ms": ms(utc(2026, 1, 20, 11)), "billed": 60}
    res = await fcall(redis, "ce_settle", "t1", "k1", "end:fly", "fly", "commit", 2_500_000, 0,
                      pack_extra(cdr), now_ms=ms(utc(2026, 1, 20, 11)))
    assert res[0] == b"ok"
    assert (await call(redis, "k1", utc(2026, 2, 1), 1_000_000, "4420"))[0] == b"ok"
    await drain(settlement)
    clock.set(utc(2026, 2, 15, 1))
    stats = await InvoiceRun(pool, clock=clock).run_due()
    inv = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1",
                              stats.invoice_ids[0])
    # Only the postpaid era: the call in flight (2.50) and the later one (1.00); not the
    # 1.50 call paid by prepaid money.
    assert inv["usage_micros"] == 3_500_000
    assert (inv["total"], inv["credit_applied"], inv["amount_due"]) == (350, 350, 0)
    assert await pool.fetchval("SELECT credit_balance FROM billing_accounts") == 1500
    assert await credit_pending(pool, store, clock.now()) == 1
    state = await store.state("t1", "k1")
    assert state is not None and state.balance == 0
    await store.close()


async def test_postpaid_to_prepaid_now_bills_the_days_begun(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    clock = MovableClock(utc(2026, 1, 15, 12))
    store, switches, settlement = await setup(pool, redis, AccountKind.POSTPAID, clock)
    await pool.execute("UPDATE bill_plans SET plan_fee = 3100")  # 31-day period: 1.00 a day
    assert (await call(redis, "k1", utc(2026, 1, 18), 5_000_000, "4420"))[0] == b"ok"
    await drain(settlement)
    clock.set(utc(2026, 1, 24, 10))
    await request(pool, "t1", "k1", "prepaid", "now", clock.now())
    stats = await InvoiceRun(pool, clock=clock).run_due()
    inv = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1",
                              stats.invoice_ids[0])
    assert (inv["period_start"], inv["period_end"]) == (date(2026, 1, 15), date(2026, 1, 25))
    assert inv["usage_micros"] == 5_000_000
    assert inv["total"] == 500 + 1000  # usage + 10 of 31 days of the fee
    await credit_pending(pool, store, clock.now())
    assert await switches.apply_due(clock.now()) == 1
    assert await pool.fetchval("SELECT kind FROM accounts") == "prepaid"
    state = await store.state("t1", "k1")
    assert state is not None and state.balance == 0
    # A call after the switch is paid from the prepaid balance, never invoiced.
    assert (await call(redis, "k1", utc(2026, 1, 24, 11), 1_000_000, "4420"))[0] == b"ok"
    await drain(settlement)
    clock.set(utc(2026, 3, 1))
    assert (await InvoiceRun(pool, clock=clock).run_due()).invoices == 0
    await store.close()
