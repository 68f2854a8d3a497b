"""The suspension ladder on real Postgres and Redis: an account 1, 15, 31 and 61 days overdue is
on the configured step each time, with the status in Redis (calls refused as the step says);
a step's late fee is charged once per entry; a payment restores service at once; an admin's
manual suspension is not lifted by a payment until the admin hands the account back. And the
pure rule under hypothesis against an independent model."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import dunning_run
from billing.dunning import (
    Ladder,
    LadderError,
    LateFee,
    Overdue,
    Step,
    ladder_doc,
    late_fee,
    parse_ladder,
    step_for,
)
from billing.enrollment import Enrollment, enroll
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges, NewAccount
from charging_engine.accounts.record import AccountKind
from charging_engine.audit import Actor
from charging_engine.balance.store import BalanceStore
from tests.billing import support
from tests.billing.test_payments import pay
from tests.integration.drive import BUCKETS
from tests.integration.fixtures import pool_fixture, redis_fixture  # noqa: F401

ADMIN = Actor("admin-key", "tenant_admin")
DUE = date(2026, 3, 1)
_n = itertools.count(1)

LADDER = Ladder((
    Step("reminder", 1),
    Step("outgoing", 15, status=AccountStatus.OUTGOING_SUSPENDED,
         late_fee=LateFee(fixed=500, percent=Decimal(2))),
    Step("suspended", 31, min_amount=1_000, status=AccountStatus.SUSPENDED),
    Step("inactive", 61, status=AccountStatus.INACTIVE),
))  # fmt: skip


async def setup(pool: asyncpg.Pool, redis: aioredis.Redis) -> tuple[AccountChanges, BalanceStore]:
    await support.tenant(pool, "t1", "USD")
    await support.rate_plan(pool, "t1", "rp", "USD", {"1": "US"})
    await support.bill_plan(pool, "t1", "pp", "USD")
    store = BalanceStore(redis, BUCKETS)

    async def refreshed() -> None:
        return None

    accounts = AccountChanges(pool, store, clock=lambda: 0, on_catalog_change=refreshed)
    await accounts.create(ADMIN, "t1", NewAccount("a1", kind=AccountKind.POSTPAID,
                                                  credit_limit=50_000_000, rate_plan_id="rp"))
    await enroll(pool, "t1", "a1", Enrollment("pp", bcd=1), datetime(2026, 1, 1, tzinfo=UTC))
    await pool.execute("INSERT INTO dunning_ladders (tenant_id, steps) VALUES ('t1', $1)",
                       orjson.dumps(ladder_doc(LADDER)).decode())  # fmt: skip
    return accounts, store


async def overdue_invoice(pool: asyncpg.Pool, amount: int, due: date = DUE) -> str:
    n = next(_n)
    invoice_id = f"inv_d{n:03d}"
    await pool.execute(
        "INSERT INTO invoices (invoice_id, tenant_id, account_id, currency, status, number,"
        " number_seq, issued_on, due_on, subtotal, total, amount_due) VALUES ($1, 't1', 'a1',"
        " 'USD', 'finalized', $2, $3, $4, $5, $6, $6, $6)",
        invoice_id, f"D-{n}", n, due - timedelta(days=14), due, amount,
    )
    return invoice_id


async def place(pool: asyncpg.Pool, accounts: AccountChanges, days: int
                ) -> dunning_run.Placement:  # fmt: skip
    today = DUE + timedelta(days=days)
    async with pool.acquire() as conn:
        p = await dunning_run.evaluate(conn, accounts, "t1", "a1", today=today,
                                       at=datetime.combine(today, datetime.min.time(), UTC))
    assert p is not None
    return p


async def redis_status(store: BalanceStore) -> str:
    state = await store.state("t1", "a1")
    assert state is not None
    return state.status


async def test_the_ladder_step_by_step_and_back(pool: asyncpg.Pool, redis: aioredis.Redis
                                                ) -> None:  # fmt: skip
    accounts, store = await setup(pool, redis)
    await overdue_invoice(pool, 10_000)
    assert (await place(pool, accounts, 0)).step is None  # due today: not overdue yet
    expected = {1: ("reminder", "active"), 14: ("reminder", "active"),
                15: ("outgoing", "outgoing_suspended"), 31: ("suspended", "suspended"),
                60: ("suspended", "suspended"), 61: ("inactive", "inactive")}  # fmt: skip
    for days, (step, status) in expected.items():
        p = await place(pool, accounts, days)
        assert (p.step_name, await redis_status(store)) == (step, status), days
        again = await place(pool, accounts, days)  # evaluated twice: nothing more happens
        assert again.entered == () and again.status is None
    fees = await pool.fetch("SELECT amount, kind FROM one_time_charges")
    assert [(r["amount"], r["kind"]) for r in fees] == [(500 + 200, "late_fee")]  # 5 + 2 %
    events = [r["type"] for r in await pool.fetch("SELECT type FROM webhook_events")]
    assert events.count("dunning.step_entered") == 4
    # paid in full: good standing and active again at once, a new episode
    await pay(pool, 10_000, "pay-all")
    p = await place(pool, accounts, 62)
    assert (p.step, p.status, await redis_status(store)) == (None, AccountStatus.ACTIVE,
                                                             "active")  # fmt: skip
    # overdue again later: the steps (and the fee) come again, once
    await overdue_invoice(pool, 3_000, due=DUE + timedelta(days=70))
    await place(pool, accounts, 70 + 15)
    await place(pool, accounts, 70 + 16)
    assert await pool.fetchval("SELECT count(*) FROM one_time_charges") == 2


async def test_conditions_and_partial_payments(pool: asyncpg.Pool, redis: aioredis.Redis
                                               ) -> None:  # fmt: skip
    accounts, store = await setup(pool, redis)
    await overdue_invoice(pool, 900)  # below the 10.00 that service suspension needs
    assert (await place(pool, accounts, 40)).step_name == "outgoing"
    assert await redis_status(store) == "outgoing_suspended"
    await overdue_invoice(pool, 5_000, due=DUE + timedelta(days=20))
    assert (await place(pool, accounts, 40)).step_name == "suspended"  # 59.00 open now
    await pay(pool, 900, "pay-oldest")  # the oldest goes: 20 days overdue is what is left
    p = await place(pool, accounts, 40)
    assert (p.step_name, await redis_status(store)) == ("outgoing", "outgoing_suspended")


async def test_a_manual_suspension_is_not_lifted_by_a_payment(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    accounts, store = await setup(pool, redis)
    await overdue_invoice(pool, 10_000)
    await place(pool, accounts, 20)
    await accounts.change_status(ADMIN, "t1", "a1", AccountStatus.SUSPENDED, "fraud check")
    await pay(pool, 10_000, "pay-all")
    p = await place(pool, accounts, 21)
    assert p.step is None and p.held and await redis_status(store) == "suspended"
    async with pool.acquire() as conn:
        back = await dunning_run.resume(conn, accounts, "t1", "a1", ADMIN, today=DUE,
                                        at=datetime(2026, 3, 22, tzinfo=UTC))  # fmt: skip
    assert back is not None and back.status is AccountStatus.ACTIVE
    assert await redis_status(store) == "active"


async def test_an_admin_reactivation_during_an_episode_holds(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    accounts, store = await setup(pool, redis)
    await overdue_invoice(pool, 10_000)
    await place(pool, accounts, 20)
    await accounts.change_status(ADMIN, "t1", "a1", AccountStatus.ACTIVE, "promised to pay")
    p = await place(pool, accounts, 35)  # worse step, but the admin's word stands
    assert p.step_name == "suspended" and p.held and await redis_status(store) == "active"


# --- the pure rule ----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.integers(-10, 200), st.integers(0, 50_000), st.integers(0, 5))
def test_step_for_against_a_model(days: int, amount: int, invoices: int) -> None:
    today = DUE + timedelta(days=days)
    got = step_for(LADDER, Overdue(DUE, amount, invoices), today)
    candidates = [i for i, s in enumerate(LADDER.steps)
                  if days >= s.min_days and amount >= s.min_amount
                  and invoices >= s.min_invoices and amount > 0]  # fmt: skip
    assert got == (max(candidates) if candidates else None)


@given(st.integers(0, 10**9), st.integers(0, 10**6),
       st.decimals(min_value=0, max_value=100, places=2))  # fmt: skip
def test_late_fee_rounds_half_up_once(amount: int, fixed: int, percent: Decimal) -> None:
    fee = late_fee(LateFee(fixed, percent), amount)
    exact = Decimal(amount) * percent / 100
    assert fee - fixed in (int(exact), int(exact) + 1)
    assert abs((fee - fixed) - exact) <= Decimal("0.5")


@pytest.mark.parametrize(("steps", "message"), [
    ([], "1-10 steps"),
    ([{"name": "a", "min_days": 5}, {"name": "b", "min_days": 2}], "mildest first"),
    ([{"name": "a", "min_days": 1}, {"name": "a", "min_days": 2}], "unique"),
    ([{"name": "a", "min_days": 1, "status": "active"}], "status must be one of"),
    ([{"name": "a", "min_days": 1, "status": "terminated"},
      {"name": "b", "min_days": 2}], "terminated must be the last step"),
    ([{"name": "a", "min_days": 1, "status": "suspended"},
      {"name": "b", "min_days": 2, "status": "outgoing_suspended"}], "only get stricter"),
    ([{"name": "a", "min_days": 1, "late_fee": {"fixed": 0}}], "late fee"),
    ([{"name": "a"}], "malformed"),
])  # fmt: skip
def test_ladders_are_validated(steps: list[dict[str, object]], message: str) -> None:
    with pytest.raises(LadderError, match=message):
        parse_ladder(steps)


def test_ladders_round_trip() -> None:
    assert parse_ladder(ladder_doc(LADDER)) == LADDER


async def test_the_scheduled_pass_moves_only_who_must_move(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    accounts, store = await setup(pool, redis)
    await overdue_invoice(pool, 10_000)
    at = datetime.combine(DUE + timedelta(days=16), datetime.min.time(), UTC)
    assert await dunning_run.evaluate_due(pool, accounts, at=at) == 1  # entered outgoing
    assert await redis_status(store) == "outgoing_suspended"
    assert await dunning_run.evaluate_due(pool, accounts, at=at) == 0  # nothing to do now
    # the status change lost after the step moved (a crash): the next pass repairs it
    await accounts.change_status(dunning_run.ACTOR, "t1", "a1", AccountStatus.ACTIVE, "lost")
    assert await dunning_run.evaluate_due(pool, accounts, at=at) == 1
    assert await redis_status(store) == "outgoing_suspended"
    assert await pool.fetchval("SELECT count(*) FROM one_time_charges") == 1
