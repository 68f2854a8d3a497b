"""Auto top-up on real Redis and Postgres, the Stripe stand-in charging saved cards: the trigger
is the low-balance alert the engine raises when a call takes the balance through the line (the
alert feed stores it), never a poll. A balance crossing its line 50 times in a minute is
charged at most the cap; a declined card is not tried again before its backoff (doubling);
a postpaid account gets a top-up invoice instead. And the pure rule under hypothesis."""

from __future__ import annotations

import itertools
from datetime import timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from admin_api.alerts.feed import AlertFeed
from billing.auto_topup import Attempt, Limits, decide
from billing.auto_topup_run import AutoTopups, minor_up
from billing.clock import MovableClock
from billing.enrollment import Enrollment, enroll
from billing.gateways import accounts as gateway_accounts
from billing.secrets import Secrets, generate_key
from charging_engine.accounts.changes import AccountChanges, AutoTopupSettings, NewAccount
from charging_engine.accounts.money import MoneyOperations, Operation
from charging_engine.accounts.record import AccountKind
from charging_engine.balance.store import BalanceStore
from charging_engine.ledger.settlement import Settlement
from charging_server.demo.stripe_standin import StripeStandIn
from tests.billing import support
from tests.billing.support import utc
from tests.billing.test_postpaid_flow import ADMIN, call, ms
from tests.integration.drive import BUCKETS
from tests.integration.fixtures import pool_fixture, redis_fixture  # noqa: F401

USD = 1_000_000
T0 = utc(2026, 5, 1, 9)
LIMITS = Limits(cap=3, window=timedelta(hours=1), backoff=timedelta(hours=1))
_keys = itertools.count()


class World:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, stripe: StripeStandIn) -> None:
        self.pool, self.redis, self.stripe = pool, redis, stripe
        self.clock = MovableClock(T0)
        self.store = BalanceStore(redis, BUCKETS)

        async def refreshed() -> None:
            return None

        now = self.clock.now
        self.accounts = AccountChanges(pool, self.store, clock=lambda: ms(now()),
                                       on_catalog_change=refreshed)  # fmt: skip
        self.money = MoneyOperations(pool, self.store, clock=lambda: ms(now()))
        self.feed = AlertFeed(redis, pool, BUCKETS, "c1")
        self.settlement = Settlement(redis, pool, BUCKETS, "s1")
        self.topups = AutoTopups(pool, self.money, Secrets(), clock=self.clock, limits=LIMITS)

    async def account(self, account_id: str, card: str, kind: AccountKind = AccountKind.PREPAID
                      ) -> None:  # fmt: skip
        await self.accounts.create(ADMIN, "t1", NewAccount(
            account_id, kind=kind, rate_plan_id="rp",
            credit_limit=50 * USD if kind is AccountKind.POSTPAID else 0))  # fmt: skip
        await self.topup(account_id, 6 * USD)  # above the line when set (below: fires at once)
        await self.accounts.set_auto_topup(ADMIN, "t1", account_id, AutoTopupSettings(
            True, threshold=5 * USD, amount=10 * USD))  # fmt: skip
        await self.pool.execute(
            "INSERT INTO payment_methods (tenant_id, account_id, gateway, customer_ref,"
            " method_ref) VALUES ('t1', $1, 'stripe', 'cus_test_1', $2)", account_id, card)

    async def topup(self, account_id: str, amount: int) -> None:
        await self.money.perform(ADMIN, "t1", account_id, Operation.topup(amount, "cash"),
                                 f"manual-{next(_keys)}")  # fmt: skip

    async def cross(self, account_id: str) -> int:
        """Spend the balance down through the 5 USD line with a call; then the alert is stored
        and answered, as the running feed and worker would. -> charges made."""
        state = await self.store.state("t1", account_id)
        assert state is not None
        if state.balance < 6 * USD:  # back to 6 USD, above the line: the line re-arms
            await self.topup(account_id, 6 * USD - state.balance)
        elif state.balance > 6 * USD:
            await self.money.perform(ADMIN, "t1", account_id, Operation.withdrawal(
                state.balance - 6 * USD, "test"), f"manual-{next(_keys)}")  # fmt: skip
        self.clock.set(self.clock.now() + timedelta(seconds=1))
        res = await call(self.redis, account_id, self.clock.now(), 2 * USD, "4420")
        assert res[0] == b"ok"
        while await self.feed.drain_once():
            pass
        return await self.topups.run_once()


@pytest.fixture
async def world(pool: asyncpg.Pool, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
                ) -> World:  # fmt: skip
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    stripe = StripeStandIn()
    await stripe.start()
    w = World(pool, redis, stripe)
    await support.tenant(pool, "t1", "USD")
    await support.rate_plan(pool, "t1", "rp", "USD", {"4420": "UK London"})
    await support.bill_plan(pool, "t1", "pp", "USD")
    async with pool.acquire() as conn:
        await gateway_accounts.configure(conn, Secrets(), "t1", "stripe",
                                         api_key=stripe.api_key,
                                         webhook_secret=stripe.webhook_secret, account_ref=None,
                                         base_url=stripe.base_url, at=T0)  # fmt: skip
    await w.feed.ensure_groups()
    await w.settlement.ensure_groups()
    yield w  # type: ignore[misc]
    await stripe.stop()


async def test_fifty_crossings_in_a_minute_are_charged_at_most_the_cap(world: World) -> None:
    w = world
    await w.account("p1", "pm_card_visa")
    charges = [await w.cross("p1") for _ in range(50)]  # 50 s of the movable clock
    assert sum(charges) == LIMITS.cap == len(w.stripe.intents)
    rows = await w.pool.fetch("SELECT status, count(*) AS n FROM auto_topup_attempts"
                              " GROUP BY status")  # fmt: skip
    assert {r["status"]: r["n"] for r in rows} == {"succeeded": 3, "skipped": 47}
    assert await w.pool.fetchval("SELECT count(*) FROM alerts WHERE kind = 'low_balance'") == 50
    paid = await w.pool.fetch("SELECT amount, collected_by FROM payments ORDER BY created_at")
    assert [(p["amount"], p["collected_by"]) for p in paid] == [(1000, "auto_topup")] * 3
    assert all(pi["amount"] == 1000 and pi["customer"] == "cus_test_1"
               for pi in w.stripe.intents.values())  # fmt: skip
    # the alert answered again (a second worker, a restart): nothing more
    assert await AutoTopups(w.pool, w.money, Secrets(), clock=w.clock,
                            limits=LIMITS).run_once() == 0  # fmt: skip
    assert len(w.stripe.intents) == 3


async def test_a_declined_card_waits_out_its_backoff(world: World) -> None:
    w = world
    await w.account("p2", "pm_card_chargeDeclined")
    assert await w.cross("p2") == 0 and len(w.stripe.intents) == 1  # declined
    w.clock.set(w.clock.now() + timedelta(minutes=30))
    await w.cross("p2")
    assert len(w.stripe.intents) == 1  # within the hour's backoff: not tried
    w.clock.set(w.clock.now() + timedelta(minutes=31))
    await w.cross("p2")
    assert len(w.stripe.intents) == 2  # tried again, declined again: now two hours
    w.clock.set(w.clock.now() + timedelta(minutes=90))
    await w.cross("p2")
    assert len(w.stripe.intents) == 2
    w.clock.set(w.clock.now() + timedelta(minutes=31))
    await w.cross("p2")
    assert len(w.stripe.intents) == 3
    reasons = [r["reason"] for r in await w.pool.fetch(
        "SELECT reason FROM auto_topup_attempts WHERE status = 'skipped' ORDER BY at")]
    assert len(reasons) == 2 and all(r.startswith("backoff") for r in reasons)
    assert await w.pool.fetchval("SELECT count(*) FROM payments") == 0


async def test_a_postpaid_account_gets_a_top_up_invoice(world: World) -> None:
    w = world
    await w.account("q1", "pm_card_visa", AccountKind.POSTPAID)
    await enroll(w.pool, "t1", "q1", Enrollment("pp", bcd=1), T0)
    assert await w.cross("q1") == 1
    inv = await w.pool.fetchrow("SELECT * FROM invoices WHERE account_id = 'q1'")
    assert inv["status"] == "finalized" and inv["total"] == 1000 and inv["number"]
    assert inv["due_on"] == T0.date() and len(w.stripe.intents) == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7200), st.sampled_from(
    ["pending", "succeeded", "declined", "failed"])), max_size=12),
       st.integers(0, 7200))  # fmt: skip
def test_the_rule_never_exceeds_the_cap_nor_retries_a_decline_early(
    history: list[tuple[int, str]], later: int
) -> None:
    now = T0 + timedelta(seconds=later + 7200)
    attempts = [Attempt(now - timedelta(seconds=s), st_) for s, st_ in history]  # type: ignore[arg-type]
    d = decide(LIMITS, attempts, balance=1, threshold=5, amount=10, target=None, now=now)
    recent = [a for a in attempts if a.at > now - LIMITS.window]
    if d.amount is not None:
        assert len(recent) < LIMITS.cap
        assert not any(a.status == "pending" for a in attempts)
        last = max(attempts, key=lambda a: a.at, default=None)
        if last is not None and last.status in ("declined", "failed"):
            assert now - last.at >= LIMITS.backoff
    assert decide(LIMITS, attempts, balance=5, threshold=5, amount=10, target=None,
                  now=now).amount is None  # back at the line: nothing


def test_amounts_round_up_to_the_minor_unit() -> None:
    assert minor_up(10 * USD, "USD") == 1000 and minor_up(1, "USD") == 1
    assert minor_up(1_500_000, "JPY") == 2 and minor_up(1_000, "KWD") == 1
    d = decide(LIMITS, [], balance=2 * USD, threshold=5 * USD, amount=10 * USD,
               target=20 * USD, now=T0)  # fmt: skip
    assert d.amount == 18 * USD
