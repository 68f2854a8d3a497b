"""Termination as the suspension ladder's last step, on real Postgres and Redis: at 61 days
overdue the account is barred at once, a cancellation charge is added once inside the plan's
minimum term (never outside it), its billing ends that day; the invoice run bills the final
period (prorated, with the cancellation line) and nothing after it; once the final invoice is
finalized and its usage credited back, the next evaluation closes the account (terminated in
Postgres and Redis, ``account.terminated`` once). A payment before the close cancels it, also
after the final invoice was made; an admin's manual status holds it. And the pure parts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from billing import dunning_run, termination
from billing.clock import MovableClock
from billing.composition import LineKind
from billing.dunning import Ladder, LadderError, Step, ladder_doc, parse_ladder, wanted_status
from billing.enrollment import Enrollment, enroll
from billing.fees import PlanSegment, PlanTerms, final_settlement
from billing.invoice_run import InvoiceRun
from billing.jobs import BillingJobs
from billing.lifecycle import finalize_due
from billing.run_inputs import SWEEP_UNTIL, final_view
from billing.usage_credit import credit_pending
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges, NewAccount
from charging_engine.accounts.record import AccountKind
from charging_engine.balance.store import BalanceStore
from charging_engine.ledger.settlement import Settlement
from tests.billing import support
from tests.billing.support import utc
from tests.billing.test_dunning import ADMIN, DUE, redis_status
from tests.billing.test_payments import pay
from tests.billing.test_postpaid_flow import call, ms
from tests.integration.drive import BUCKETS
from tests.integration.fixtures import pool_fixture, redis_fixture  # noqa: F401

LADDER = Ladder((
    Step("reminder", 1),
    Step("outgoing", 15, status=AccountStatus.OUTGOING_SUSPENDED),
    Step("suspended", 31, status=AccountStatus.SUSPENDED),
    Step("terminated", 61, status=AccountStatus.TERMINATED),
))  # fmt: skip
TERMINATION_DAY = DUE + timedelta(days=61)  # 2026-05-01
FEE = 5_000
PLAN_FEE = 3_100  # 31.00 a month: a day of May is 1.00


class World:
    """One tenant, one postpaid account on a plan with a minimum term, the ladder, and an
    invoice overdue since ``DUE``."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, clock: MovableClock) -> None:
        self.pool, self.clock = pool, clock
        self.store = BalanceStore(redis, BUCKETS)
        self.redis = redis

        async def refreshed() -> None:
            return None

        self.accounts = AccountChanges(pool, self.store, clock=lambda: ms(clock.now()),
                                       on_catalog_change=refreshed)  # fmt: skip
        self.run = InvoiceRun(pool, clock=clock)

    async def evaluate(self, at: datetime) -> dunning_run.Placement:
        async with self.pool.acquire() as conn:
            p = await dunning_run.evaluate(conn, self.accounts, "t1", "a1", today=at.date(),
                                           at=at)  # fmt: skip
        assert p is not None
        return p

    async def bill(self, at: datetime) -> list[str]:
        """The run at ``at``: the invoices it made."""
        self.clock.set(at)
        return (await self.run.run_due()).invoice_ids

    async def call(self, at: datetime, cost: int) -> list[object]:
        res = await call(self.redis, "a1", at, cost, "4420")
        settlement = Settlement(self.redis, self.pool, BUCKETS, "s1")
        await settlement.ensure_groups()
        while await settlement.drain_once():
            pass
        return res

    async def billing(self) -> Any:
        return await self.pool.fetchrow("SELECT * FROM billing_accounts WHERE account_id = 'a1'")

    async def charges(self) -> list[tuple[str, int, str | None]]:
        rows = await self.pool.fetch("SELECT kind, amount, invoice_id FROM one_time_charges"
                                     " ORDER BY created_at")  # fmt: skip
        return [(r["kind"], r["amount"], r["invoice_id"]) for r in rows]

    async def events(self, kind: str) -> list[Any]:
        rows = await self.pool.fetch("SELECT payload FROM webhook_events WHERE type = $1", kind)
        return [orjson.loads(r["payload"]) for r in rows]

    async def status(self) -> tuple[str, str]:
        """(Postgres, Redis) status of the account."""
        pg = await self.pool.fetchval("SELECT status FROM accounts WHERE account_id = 'a1'")
        return pg, await redis_status(self.store)


async def world(pool: asyncpg.Pool, redis: aioredis.Redis, *, enrolled: datetime,
                term_days: int = 365, plan: dict[str, Any] | None = None,
                **tenant: Any) -> World:  # fmt: skip
    await support.tenant(pool, "t1", "USD", **tenant)
    await support.rate_plan(pool, "t1", "rp", "USD", {"4420": "UK London"})
    await support.bill_plan(pool, "t1", "pp", "USD", name="Business", plan_fee=PLAN_FEE,
                            minimum_term_days=term_days, cancellation_fee=FEE,
                            **(plan or {}))  # fmt: skip
    w = World(pool, redis, MovableClock(enrolled))
    await w.accounts.create(ADMIN, "t1", NewAccount("a1", kind=AccountKind.POSTPAID,
                                                    credit_limit=50_000_000, rate_plan_id="rp"))
    await enroll(pool, "t1", "a1", Enrollment("pp", bcd=1), enrolled)
    await pool.execute("INSERT INTO dunning_ladders (tenant_id, steps) VALUES ('t1', $1)",
                       orjson.dumps(ladder_doc(LADDER)).decode())  # fmt: skip
    # 100.00 unpaid since DUE (numbered apart from the invoices the run finalizes)
    await pool.execute(
        "INSERT INTO invoices (invoice_id, tenant_id, account_id, currency, status, number,"
        " number_seq, issued_on, due_on, subtotal, total, amount_due) VALUES ('inv_old', 't1',"
        " 'a1', 'USD', 'finalized', 'OLD-1', 900001, $1, $2, 10000, 10000, 10000)",
        DUE - timedelta(days=14), DUE,
    )  # fmt: skip
    return w


def at_day(days: int, hour: int = 9) -> datetime:
    """``days`` after the overdue invoice's due date, at ``hour`` UTC."""
    return datetime.combine(DUE + timedelta(days=days), datetime.min.time(), UTC) \
        + timedelta(hours=hour)  # fmt: skip


async def lines(pool: asyncpg.Pool, invoice_id: str) -> list[tuple[str, int]]:
    rows = await pool.fetch("SELECT kind, amount FROM invoice_lines WHERE invoice_id = $1"
                            " ORDER BY position", invoice_id)  # fmt: skip
    return [(r["kind"], r["amount"]) for r in rows]


ENROLLED = utc(2026, 3, 1, 12)


async def usage_and_invoices(w: World, walk: bool = False, credit: bool = True) -> None:
    """A call in March while the account may call, March and April billed and finalized
    (``walk``: the ladder evaluated on the way, as the schedule does; ``credit``: their usage
    given back to the balance)."""
    if walk:
        assert (await w.evaluate(at_day(1))).step_name == "reminder"
    assert (await w.call(utc(2026, 3, 5, 10), 2_000_000))[0] == b"ok"
    if walk:
        assert (await w.evaluate(at_day(15))).step_name == "outgoing"
    for month in (4, 5):
        assert len(await w.bill(utc(2026, month, 1, 0, 5))) == 1
        at = utc(2026, month, 3, 0, 10)  # after any review window
        await finalize_due(w.pool, at)
        if credit:
            await credit_pending(w.pool, w.store, at)
        if walk and month == 4:
            for days in (31, 60):
                p = await w.evaluate(at_day(days))
                assert p.step_name == "suspended" and p.termination is None, days


async def terminate(w: World, walk: bool = False, credit: bool = True) -> None:
    """Usage, March and April billed, then the ladder's last step."""
    await usage_and_invoices(w, walk, credit)
    p = await w.evaluate(at_day(61))
    barred = None if walk else AccountStatus.SUSPENDED  # walked: suspended since day 31
    assert (p.step_name, p.entered, p.status, p.termination) == (
        "terminated", ("terminated",), barred, "pending")


async def pay_everything(w: World) -> None:
    owed = await w.pool.fetchval("SELECT sum(open) FROM invoice_open WHERE account_id = 'a1'")
    await pay(w.pool, int(owed), "pay-all")


async def test_termination_bills_a_final_invoice_then_closes(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    w = await world(pool, redis, enrolled=ENROLLED)  # inside a 365-day term
    await terminate(w, walk=True, credit=False)  # March's usage not given back yet
    # barred at once, in Postgres and Redis: a call is refused
    assert await w.status() == ("suspended", "suspended")
    assert (await w.call(utc(2026, 5, 1, 10), 100_000))[0] == b"account_suspended"
    for hour in (10, 11, 12):  # evaluated again: nothing more happens
        again = await w.evaluate(at_day(61, hour))
        assert (again.entered, again.status, again.termination) == ((), None, "pending")
    assert await w.charges() == [("cancellation", FEE, None)]
    ba = await w.billing()
    assert (ba["ends_on"], ba["ends_at"], ba["ended_at"]) == (
        TERMINATION_DAY, utc(2026, 5, 2), None)
    t = await termination.current(pool, "t1", "a1")
    assert (t["state"], t["waiting_for"]) == ("pending", "the final invoice")
    # the final period ends after the termination day: not billed before
    assert await w.bill(utc(2026, 5, 1, 23, 59)) == []
    [final] = await w.bill(utc(2026, 5, 2, 0, 5))
    inv = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1", final)
    assert (inv["period_start"], inv["period_end"]) == (TERMINATION_DAY, date(2026, 5, 2))
    # one day of May's fee (1/31) and the cancellation fee
    assert await lines(pool, final) == [("recurring", 100), ("one_time", FEE)]
    assert inv["total"] == 100 + FEE
    assert await w.charges() == [("cancellation", FEE, final)]
    ba = await w.billing()
    assert ba["ended_at"] is not None and ba["final_invoice_id"] == final
    # and no later period, however long the run goes on
    for month in (6, 7, 8):
        assert await w.bill(utc(2026, month, 2, 0, 5)) == []
    assert await pool.fetchval("SELECT count(*) FROM invoices WHERE period_start IS NOT NULL"
                               " AND account_id = 'a1'") == 3  # March, April, final  # fmt: skip
    # the close waits for the final invoice to be finalized and its usage credited back
    at = utc(2026, 5, 2, 0, 10)
    assert await dunning_run.evaluate_due(pool, w.accounts, at=at) == 0
    t = await termination.current(pool, "t1", "a1")
    assert (t["state"], t["waiting_for"]) == ("pending", "the final invoice's finalization")
    await finalize_due(pool, at)
    # the engine refuses the close while the balance still holds usage not given back
    assert (await w.evaluate(at)).termination == "pending"
    t = await termination.current(pool, "t1", "a1")
    assert t["waiting_for"] == "a zero balance (balance -2000000, reserved 0 micros)"
    assert await w.status() == ("suspended", "suspended")
    await credit_pending(pool, w.store, at)
    assert await dunning_run.evaluate_due(pool, w.accounts, at=at) == 1  # closed now
    assert await w.status() == ("terminated", "terminated")
    t = await termination.current(pool, "t1", "a1")
    assert (t["state"], t["closed_at"], t["waiting_for"]) == ("closed", at, None)
    [event] = await w.events("account.terminated")
    assert event["data"]["account_id"] == "a1" and event["data"]["final_invoice_id"] == final
    # final: further passes, and even a payment of the whole debt, change nothing
    assert await dunning_run.evaluate_due(pool, w.accounts, at=at) == 0
    await pay_everything(w)
    p = await w.evaluate(at + timedelta(days=1))
    assert (p.step, p.status, p.termination) == (None, None, None)
    assert await w.status() == ("terminated", "terminated")
    assert (await w.billing())["ends_on"] == TERMINATION_DAY
    assert len(await w.events("account.terminated")) == 1


@pytest.mark.parametrize("term_days", [62, 61])  # enrolled 2026-03-01: ends 05-02 or 05-01
async def test_the_cancellation_charge_only_inside_the_minimum_term(
    pool: asyncpg.Pool, redis: aioredis.Redis, term_days: int
) -> None:
    w = await world(pool, redis, enrolled=ENROLLED, term_days=term_days)
    await terminate(w)
    await w.evaluate(at_day(61, 12))
    charged = [("cancellation", FEE, None)] if term_days == 62 else []
    assert await w.charges() == charged
    assert (await w.billing())["ends_on"] == TERMINATION_DAY
    [final] = await w.bill(utc(2026, 5, 2, 0, 5))
    assert await lines(pool, final) == [("recurring", 100)] + (
        [("one_time", FEE)] if charged else [])


async def test_one_billing_tick_bills_the_final_invoice_and_closes(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    w = await world(pool, redis, enrolled=ENROLLED)
    await terminate(w)
    jobs = BillingJobs(pool, w.store, clock=w.clock, accounts=w.accounts)
    w.clock.set(utc(2026, 5, 1, 12))
    tick = await jobs.tick()
    assert (tick.run.invoices, tick.dunning) == (0, 0)  # the close waits for the final invoice
    w.clock.set(utc(2026, 5, 2, 0, 5))
    tick = await jobs.tick()  # the run, finalization, the usage credit, then the ladder
    assert (tick.run.invoices, tick.finalized, tick.dunning) == (1, 1, 1)
    assert await w.status() == ("terminated", "terminated")
    assert len(await w.events("account.terminated")) == 1
    w.clock.set(utc(2026, 6, 2, 0, 5))
    tick = await jobs.tick()
    assert (tick.run.invoices, tick.dunning) == (0, 0)


async def test_fees_billed_in_advance_and_dids_are_prorated_on_the_final_invoice(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    w = await world(pool, redis, enrolled=ENROLLED, plan={"fees_in_advance": True})
    await pool.execute("INSERT INTO dids (tenant_id, number, account_id, monthly_fee,"
                       " assigned_on) VALUES ('t1', '15550100', 'a1', 3100, '2026-03-01')")
    await terminate(w)  # April's invoice billed May in advance
    assert (await w.billing())["fees_billed_to"] == date(2026, 6, 1)
    [final] = await w.bill(utc(2026, 5, 2, 0, 5))
    # the cancellation fee; May's day used, less the month billed ahead; a day of the DID
    assert await lines(pool, final) == [("one_time", FEE), ("recurring", 100),
                                        ("recurring", -PLAN_FEE), ("did", 100)]
    inv = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1", final)
    assert inv["total"] == FEE + 100 - PLAN_FEE + 100
    assert (await w.billing())["fees_billed_to"] == date(2026, 5, 2)
    assert await w.bill(utc(2026, 6, 2, 0, 5)) == []


async def test_a_payment_before_the_close_cancels_the_termination(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    w = await world(pool, redis, enrolled=ENROLLED)
    await terminate(w)
    await pay_everything(w)
    p = await w.evaluate(at_day(61, 10))
    assert (p.step, p.status, p.termination) == (None, AccountStatus.ACTIVE, "cancelled")
    assert await w.status() == ("active", "active")
    assert await w.charges() == []  # not invoiced yet: gone
    assert (await w.billing())["ends_on"] is None
    assert (await termination.current(pool, "t1", "a1"))["state"] == "cancelled"
    # billing goes on as if nothing happened: May in full at its end, no cancellation line
    assert await w.bill(utc(2026, 5, 2, 0, 5)) == []
    [may] = await w.bill(utc(2026, 6, 1, 0, 5))
    assert await lines(pool, may) == [("recurring", PLAN_FEE)]
    assert await w.events("account.terminated") == []


async def test_a_payment_after_the_final_invoice_still_cancels(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    w = await world(pool, redis, enrolled=ENROLLED, finalization="review", review_hours=48)
    await terminate(w)
    [final] = await w.bill(utc(2026, 5, 2, 0, 5))  # in review: not closed yet
    assert (await w.evaluate(utc(2026, 5, 2, 1))).termination == "pending"
    await pay_everything(w)
    p = await w.evaluate(utc(2026, 5, 2, 2))
    assert (p.status, p.termination) == (AccountStatus.ACTIVE, "cancelled")
    ba = await w.billing()
    assert (ba["ends_on"], ba["ended_at"], ba["final_invoice_id"]) == (None, None, None)
    # the cancellation charge was invoiced (on the draft): it stays there for the reviewer
    assert await w.charges() == [("cancellation", FEE, final)]
    # billing resumes with the rest of May, prorated (30/31)
    [rest] = await w.bill(utc(2026, 6, 1, 0, 5))
    inv = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1", rest)
    assert (inv["period_start"], inv["period_end"]) == (date(2026, 5, 2), date(2026, 6, 1))
    assert await lines(pool, rest) == [("recurring", 3_000)]


async def test_an_admin_status_holds_the_termination(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    w = await world(pool, redis, enrolled=ENROLLED)
    await w.evaluate(at_day(31))
    await w.accounts.change_status(ADMIN, "t1", "a1", AccountStatus.ACTIVE, "promised to pay")
    p = await w.evaluate(at_day(61))
    assert (p.step_name, p.held, p.termination) == ("terminated", True, None)
    assert await w.status() == ("active", "active")
    assert await w.charges() == [] and (await w.billing())["ends_on"] is None
    # handed back to the ladder: the termination starts now (its charge once)
    async with pool.acquire() as conn:
        back = await dunning_run.resume(conn, w.accounts, "t1", "a1", ADMIN,
                                        today=TERMINATION_DAY, at=at_day(61, 10))  # fmt: skip
    assert back is not None and back.termination == "pending"
    assert await w.status() == ("suspended", "suspended")
    assert await w.charges() == [("cancellation", FEE, None)]
    # an admin's status during a pending termination cancels it (billing goes on)
    await w.accounts.change_status(ADMIN, "t1", "a1", AccountStatus.ACTIVE, "paying by card")
    p = await w.evaluate(at_day(61, 11))
    assert p.termination == "cancelled" and (await w.billing())["ends_on"] is None
    assert await w.charges() == []


# --- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "message"), [
    ([{"name": "a", "min_days": 1, "status": "terminated"},
      {"name": "b", "min_days": 2}], "terminated must be the last step"),
    ([{"name": "a", "min_days": 1, "status": "terminated"},
      {"name": "b", "min_days": 2, "status": "terminated"}], "terminated must be the last step"),
    ([{"name": "a", "min_days": 1, "status": "terminated"},
      {"name": "b", "min_days": 2, "status": "suspended"}], "last step|stricter"),
])  # fmt: skip
def test_terminated_must_be_the_last_step(steps: list[dict[str, object]], message: str) -> None:
    with pytest.raises(LadderError, match=message):
        parse_ladder(steps)


def test_a_terminating_ladder_round_trips_and_bars_service_first() -> None:
    assert parse_ladder(ladder_doc(LADDER)) == LADDER
    alone = parse_ladder([{"name": "end", "min_days": 90, "status": "terminated"}])
    assert wanted_status(alone, 0) is AccountStatus.SUSPENDED
    assert wanted_status(LADDER, 3) is AccountStatus.SUSPENDED
    assert wanted_status(LADDER, None) is AccountStatus.ACTIVE
    inactive = parse_ladder([{"name": "dormant", "min_days": 30, "status": "inactive"},
                             {"name": "end", "min_days": 90, "status": "terminated"}])
    assert wanted_status(inactive, 1) is AccountStatus.INACTIVE  # never milder


@pytest.mark.parametrize(("enrolled", "term", "fee", "expected"), [
    (date(2026, 3, 1), 365, 5_000, 5_000),
    (date(2026, 3, 1), 62, 5_000, 5_000),  # the term's last day is 2026-05-01
    (date(2026, 3, 1), 61, 5_000, 0),  # it ended on 2026-04-30
    (date(2026, 3, 1), 0, 5_000, 0),  # no minimum term
    (date(2026, 3, 1), 365, 0, 0),  # no fee
    (None, 365, 5_000, 0),  # never enrolled
])  # fmt: skip
def test_the_cancellation_fee_inside_the_minimum_term(
    enrolled: date | None, term: int, fee: int, expected: int
) -> None:
    assert termination.cancellation_fee(enrolled, term, fee, TERMINATION_DAY) == expected


def row(**kw: Any) -> dict[str, Any]:
    base = {"open_start_date": date(2026, 5, 1), "open_end_date": date(2026, 6, 1),
            "open_ends_at": utc(2026, 6, 1), "open_reference_days": None, "ends_on": None,
            "ends_at": None, "ended_at": None, "timezone": "UTC"}  # fmt: skip
    return base | kw


def test_the_final_period_is_cut_after_the_last_day() -> None:
    [open_ended] = final_view([row()])
    assert not open_ended["final"] and open_ended["usage_until"] == utc(2026, 6, 1)
    [cut] = final_view([row(ends_on=date(2026, 5, 10), ends_at=utc(2026, 5, 11))])
    assert (cut["final"], cut["open_end_date"], cut["open_ends_at"], cut["open_reference_days"],
            cut["usage_until"]) == (True, date(2026, 5, 11), utc(2026, 5, 11), 31, SWEEP_UNTIL)
    assert final_view([cut]) == [cut]  # idempotent
    [earlier] = final_view([row(ends_on=date(2026, 6, 5), ends_at=utc(2026, 6, 6))])
    assert not earlier["final"]  # a period before the final one is billed as usual
    [last_day] = final_view([row(ends_on=date(2026, 5, 31), ends_at=utc(2026, 6, 1))])
    assert last_day["final"] and last_day["open_reference_days"] is None  # no cut needed
    [ended] = final_view([row(ends_on=date(2026, 5, 10), ends_at=utc(2026, 5, 11),
                              ended_at=utc(2026, 5, 11))])  # fmt: skip
    assert not ended["final"]


def test_fees_billed_in_advance_are_settled_on_the_final_invoice() -> None:
    seg = PlanSegment(PlanTerms("pp", "Business", plan_fee=PLAN_FEE), date(2026, 5, 1),
                      date(2026, 5, 2))  # fmt: skip
    got = final_settlement([seg], date(2026, 5, 1), date(2026, 5, 2), date(2026, 6, 1), (),
                           reference_days=31)  # fmt: skip
    assert [(c.kind, c.amount) for c in got] == [(LineKind.RECURRING, 100),
                                                 (LineKind.RECURRING, -PLAN_FEE)]
    assert got[1].description.startswith("Billed in advance: ")
