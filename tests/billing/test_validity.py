"""Prepaid periods on real Postgres and Redis with a movable clock: a top-up's money expires on
its day, only what is left of it, exactly once however often (or concurrently) it is
evaluated; a dormant account is warned, inactivated and closed on the configured days; money
topped up again brings an inactivated account back. And the pure rule under hypothesis
against an independent first-in-first-out model of the money."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import validity_run
from billing.clock import MovableClock
from billing.validity import (
    Inflow,
    Policy,
    PolicyInvalid,
    dormancy_step,
    expiring,
    parse_policy,
    policy_doc,
)
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges, NewAccount
from charging_engine.accounts.money import MoneyOperations, Operation
from charging_engine.ledger.settlement import Settlement
from tests.billing import support
from tests.billing.support import utc
from tests.billing.test_postpaid_flow import ADMIN, call, ms
from tests.integration.drive import BUCKETS
from tests.integration.fixtures import pool_fixture, redis_fixture  # noqa: F401

USD = 1_000_000  # micros
DAY0 = utc(2026, 3, 1, 12)
POLICY = Policy(validity_days=30, warn_days=7, inactivate_after=10, terminate_after=20)


class World:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, clock: MovableClock) -> None:
        from charging_engine.balance.store import BalanceStore

        self.pool, self.clock = pool, clock
        self.store = BalanceStore(redis, BUCKETS)

        async def refreshed() -> None:
            return None

        self.accounts = AccountChanges(pool, self.store, clock=lambda: ms(clock.now()),
                                       on_catalog_change=refreshed)  # fmt: skip
        self.money = MoneyOperations(pool, self.store, clock=lambda: ms(clock.now()))
        self.settlement = Settlement(redis, pool, BUCKETS, "s1")

    async def drain(self) -> None:
        while await self.settlement.drain_once():
            pass

    async def topup(self, account: str, amount: int, key: str, days: int | None = None) -> None:
        until = await validity_run.validity_of(self.pool, "t1", self.clock.now(), days)
        await self.money.perform(ADMIN, "t1", account, Operation.topup(
            amount, "cash", valid_until=until), key)  # fmt: skip

    async def evaluate(self, account: str, day: int) -> validity_run.Outcome:
        self.clock.set(DAY0 + timedelta(days=day))
        await self.drain()
        out = await validity_run.evaluate(self.pool, self.money, self.accounts, "t1", account,
                                          at=self.clock.now())  # fmt: skip
        assert out is not None and not out.behind
        await self.drain()
        return out

    async def balance(self, account: str) -> int:
        state = await self.store.state("t1", account)
        assert state is not None
        return state.balance


@pytest.fixture
async def world(pool: asyncpg.Pool, redis: aioredis.Redis) -> World:
    clock = MovableClock(DAY0)
    w = World(pool, redis, clock)
    await support.tenant(pool, "t1", "USD")
    await support.rate_plan(pool, "t1", "rp", "USD", {"4420": "UK London"})
    await pool.execute("INSERT INTO prepaid_policies (tenant_id, policy) VALUES ('t1', $1)",
                       orjson.dumps(policy_doc(POLICY)).decode())  # fmt: skip
    for a in ("p1", "p2"):
        await w.accounts.create(ADMIN, "t1", NewAccount(a, rate_plan_id="rp"))
    await w.settlement.ensure_groups()
    return w


async def events(pool: asyncpg.Pool, kind: str) -> list[dict[str, object]]:
    rows = await pool.fetch("SELECT payload FROM webhook_events WHERE type = $1"
                            " ORDER BY created_at", kind)  # fmt: skip
    return [orjson.loads(r["payload"])["data"] for r in rows]


async def test_money_expires_on_its_day_only_what_is_left_and_once(world: World) -> None:
    w = world
    await w.topup("p1", 10 * USD, "top-a")  # day 0, valid 30 days (the tenant's default)
    assert (await call(w.store.redis, "p1", DAY0 + timedelta(days=5), 6 * USD, "4420"))[0] == b"ok"
    w.clock.set(DAY0 + timedelta(days=10))
    await w.topup("p1", 5 * USD, "top-b", days=60)  # valid until day 70
    assert (await w.evaluate("p1", 25)).expired == []  # a week before: warned, nothing taken
    warned = await events(w.pool, "balance.expiring")
    assert [e["amount"] for e in warned] == [4 * USD]

    # the day it expires: the 4 USD left of the first top-up go, the second's 5 stay; five
    # evaluations at once take it once
    w.clock.set(DAY0 + timedelta(days=30))
    outs = await asyncio.gather(*(validity_run.evaluate(
        w.pool, w.money, w.accounts, "t1", "p1", at=w.clock.now()) for _ in range(5)))
    assert sum(len(o.expired) for o in outs if o) == 1
    await w.drain()
    assert await w.balance("p1") == 5 * USD
    assert (await w.evaluate("p1", 31)).expired == []
    rows = await w.pool.fetch("SELECT amount FROM ledger_entries WHERE kind = 'expiry'")
    assert [r["amount"] for r in rows] == [-4 * USD]
    assert len(await events(w.pool, "balance.expired")) == 1

    # the second top-up expires whole on day 70; the balance is zero from then on
    assert [a for _, a in (await w.evaluate("p1", 70)).expired] == [5 * USD]
    assert await w.balance("p1") == 0
    assert (await w.evaluate("p1", 70)).expired == []


async def test_a_call_spending_the_money_first_leaves_nothing_to_expire(world: World) -> None:
    w = world
    await w.topup("p1", 3 * USD, "top-c")
    assert (await call(w.store.redis, "p1", DAY0 + timedelta(days=29), 3 * USD, "4420"))[0] \
        == b"ok"  # fmt: skip
    out = await w.evaluate("p1", 30)
    assert out.expired == [] and await w.balance("p1") == 0
    assert await w.pool.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'expiry'") == 0
    assert await w.pool.fetchval("SELECT status FROM prepaid_expiries") == "done"


async def test_dormant_account_is_warned_inactivated_and_closed_on_its_days(world: World) -> None:
    w = world
    await w.topup("p1", 2 * USD, "top-d", days=5)  # expires on day 5: zero from then
    assert [a for _, a in (await w.evaluate("p1", 5)).expired] == [2 * USD]
    plan = {8: ["inactivation_warning: warned"], 15: ["inactivate: inactivated"],
            28: ["termination_warning: warned"], 35: ["terminate: terminated"]}
    for day in range(6, 37):
        out = await w.evaluate("p1", day)
        assert out.steps == plan.get(day, []), day
        status = await w.pool.fetchval("SELECT status FROM accounts WHERE account_id = 'p1'")
        want = ("active" if day < 15 else "inactive" if day < 35 else "terminated")
        assert status == want, day
        if day == 20:  # inactive in Redis too: a call is refused
            res = await call(w.store.redis, "p1", w.clock.now(), 1, "4420")
            assert res[0] == b"account_inactive"
    assert await w.pool.fetchval("SELECT count(*) FROM prepaid_dormancy") == 4
    for kind in ("account.inactivation_pending", "account.inactivated",
                 "account.termination_pending", "account.terminated"):
        assert len(await events(w.pool, kind)) == 1, kind


async def test_top_up_brings_an_inactivated_account_back_and_manual_status_stands(
    world: World,
) -> None:
    w = world
    for day in (0, 10):  # p2 never had money: dormant since it was opened
        await w.evaluate("p2", day)
    assert await w.pool.fetchval("SELECT status FROM accounts WHERE account_id = 'p2'") \
        == "inactive"  # fmt: skip
    await w.topup("p2", 1 * USD, "top-e")
    assert (await w.evaluate("p2", 11)).steps == ["reactivated"]
    assert await w.pool.fetchval("SELECT status FROM accounts WHERE account_id = 'p2'") \
        == "active"  # fmt: skip
    # an admin suspends p1 by hand; dormancy does not touch it
    await w.accounts.change_status(ADMIN, "t1", "p1", AccountStatus.SUSPENDED, "fraud check")
    out = await w.evaluate("p1", 12)
    assert out.steps == ["inactivation_warning: warned", "inactivate: held: suspended"]
    assert await w.pool.fetchval("SELECT status FROM accounts WHERE account_id = 'p1'") \
        == "suspended"  # fmt: skip


async def test_the_scheduled_screen_finds_what_is_due(world: World) -> None:
    w = world
    await w.topup("p1", 4 * USD, "top-f", days=3)
    await w.topup("p2", 4 * USD, "top-g", days=300)
    w.clock.set(DAY0 + timedelta(days=3))
    await w.drain()
    changed = await validity_run.evaluate_due(w.pool, w.money, w.accounts, at=w.clock.now())
    assert changed == 1
    await w.drain()
    assert await w.balance("p1") == 0 and await w.balance("p2") == 4 * USD

    async def due(day: float) -> set[str]:
        at = DAY0 + timedelta(days=day)
        return {r["account_id"] for r in await w.pool.fetch(validity_run.CANDIDATES_SQL, at)}

    # p1 at zero is looked at for dormancy once a day, not every tick; p2's money is not due
    assert await due(3.01) == set()
    assert await due(4) == {"p1"}
    assert await due(302) == {"p1", "p2"}  # p2's top-up past its validity: due every tick
    # both top-ups are their account's entry 2: each account's expiry is its own operation
    assert await validity_run.evaluate_due(w.pool, w.money, w.accounts,
                                           at=DAY0 + timedelta(days=302)) == 2  # fmt: skip
    await w.drain()  # (p1 took its dormancy steps meanwhile)
    assert await w.balance("p2") == 0
    rows = await w.pool.fetch("SELECT account_id, amount FROM ledger_entries WHERE kind ="
                              " 'expiry' ORDER BY account_id")  # fmt: skip
    assert [(r["account_id"], r["amount"]) for r in rows] == [("p1", -4 * USD), ("p2", -4 * USD)]


def test_policy_documents_are_checked() -> None:
    assert parse_policy(policy_doc(POLICY)) == POLICY
    for bad in ({"validity_days": 0}, {"warn_days": -1}, {"terminate_after": 5},
                {"validity_days": "30"}, {"whatever": 1}, {"inactivate_after": True}):
        with pytest.raises(PolicyInvalid):
            parse_policy(bad)


def test_dormancy_days() -> None:
    zero = datetime(2026, 1, 1, tzinfo=UTC).date()
    steps = dormancy_step(POLICY, zero, zero + timedelta(days=40))
    assert [(s.step, (s.on - zero).days) for s in steps] == [
        ("inactivation_warning", 3), ("inactivate", 10), ("termination_warning", 23),
        ("terminate", 30)]  # fmt: skip
    assert dormancy_step(POLICY, None, zero) == []
    assert dormancy_step(Policy(), zero, zero + timedelta(days=999)) == []


# A day: top up (amount, validity days or None), spend, or let days pass.
ops = st.lists(st.one_of(
    st.tuples(st.just("top"), st.integers(1, 50), st.one_of(st.none(), st.integers(1, 20))),
    st.tuples(st.just("spend"), st.integers(1, 60), st.none()),
    st.tuples(st.just("wait"), st.integers(1, 10), st.none()),
), max_size=40)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(ops)
def test_expiry_matches_a_first_in_first_out_model(days: list[tuple[str, int, int | None]]
                                                   ) -> None:  # fmt: skip
    """The model keeps each inflow's remainder and spends the oldest first; the rule only sees
    the balance and the inflows. At every step they agree on what expires, and the balance
    never goes below zero."""
    now = DAY0
    lots: deque[list[object]] = deque()  # model: [ref, left, valid_until]
    flows: dict[int, Inflow] = {}
    balance = 0
    for ref, (op, n, days_valid) in enumerate(days, start=1):
        if op == "top":
            until = now + timedelta(days=days_valid) if days_valid else None
            lots.append([ref, n, until])
            flows[ref] = Inflow(ref, n, until)
            balance += n
        elif op == "spend":
            take = min(n, balance)
            balance -= take
            while take:
                lot = lots[0]
                used = min(take, lot[1])  # type: ignore[call-overload]
                lot[1] -= used  # type: ignore[operator]
                take -= used
                if lot[1] == 0:
                    lots.popleft()
        else:
            now += timedelta(days=n)
        due = expiring(flows.values(), balance, now)
        model = {lot[0]: lot[1] for lot in lots
                 if lot[2] is not None and lot[2] <= now}  # type: ignore[operator]
        for f in flows.values():  # spent-out lots that fell due: expired with nothing left
            if not f.expired and f.valid_until is not None and f.valid_until <= now:
                model.setdefault(f.ref, 0)
        assert {e.ref: e.amount for e in due} == model
        for e in due:
            balance -= e.amount
            flows[e.ref] = Inflow(e.ref, flows[e.ref].amount, flows[e.ref].valid_until, True)
        lots = deque(lot for lot in lots if lot[0] not in {e.ref for e in due})
        assert balance >= 0 and balance == sum(lot[1] for lot in lots)  # type: ignore[misc]
