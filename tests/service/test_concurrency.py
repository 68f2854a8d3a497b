"""Many parallel calls on one account: never more than balance + credit, charged to the unit."""

from __future__ import annotations

import asyncio
import random

import pytest

from charging_engine.balance.store import BalanceStore
from charging_engine.rating.pricing import cost
from charging_engine.sessions.model import InvalidRequest, Reason
from tests.service.support import PLAN, Clock, account, fund, make_service

RATES = {r.prefix: r for r in PLAN.rates}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_200_concurrent_calls_on_one_account(
    store: BalanceStore, clock: Clock, seed: int
) -> None:
    rng = random.Random(seed)
    acc = account("shared", credit=rng.choice([0, 2_000_000]))
    opening = rng.randrange(5_000_000, 30_000_000)
    await fund(store, acc, opening)
    svc = make_service(store, clock, acc)
    destinations = {"1": "+1 212 555 0100", "44": "+44 20 7946 0000", "49": "+49 30 123456"}

    async def one_call(i: int) -> int:
        prefix = rng.choice(list(destinations))
        call = f"c{i}"
        d = await svc.authorize("t1", "shared", call, destinations[prefix])
        if not d.allowed:
            assert d.reason is Reason.INSUFFICIENT_FUNDS
            return 0
        await svc.answer("t1", "shared", call)
        granted = d.max_seconds
        if rng.random() < 0.3:  # long call: try to extend by one slice
            ext = await svc.extend("t1", "shared", call, 1)
            granted = ext.max_seconds
        talked = rng.randint(0, granted)
        charge = await svc.end("t1", "shared", call, billable_seconds=talked)
        assert charge.reason is Reason.OK
        assert charge.cost == cost(RATES[prefix], talked)  # live charge == re-rating
        return charge.cost

    costs = await asyncio.gather(*(one_call(i) for i in range(200)))
    state = await store.state("t1", "shared")
    assert state is not None
    assert sum(costs) <= opening + acc.credit_limit
    assert state.balance == opening - sum(costs)
    assert state.reserved == 0
    assert state.balance >= -acc.credit_limit


async def test_duplicated_and_replayed_end_charges_once(store: BalanceStore, clock: Clock) -> None:
    acc = account("dup")
    await fund(store, acc, 10_000_000)
    svc = make_service(store, clock, acc)
    d = await svc.authorize("t1", "dup", "call-1", "+1 212 555 0100")
    assert d.allowed
    await svc.answer("t1", "dup", "call-1")
    ends = await asyncio.gather(
        *(svc.end("t1", "dup", "call-1", billable_seconds=95) for _ in range(10))
    )
    assert [e.reason for e in ends].count(Reason.OK) == 1
    assert {e.cost for e in ends} == {cost(RATES["1"], 95)}
    replay = await svc.end("t1", "dup", "call-1", billable_seconds=500)
    assert replay.reason is Reason.DUPLICATE and replay.cost == cost(RATES["1"], 95)
    state = await store.state("t1", "dup")
    assert state is not None and state.balance == 10_000_000 - cost(RATES["1"], 95)
    again = await svc.authorize("t1", "dup", "call-1", "+1 212 555 0100")
    assert not again.allowed and again.reason is Reason.ALREADY_ENDED


async def test_retried_authorize_keeps_the_first_rate(store: BalanceStore, clock: Clock) -> None:
    acc = account("retry")
    await fund(store, acc, 10_000_000)
    svc = make_service(store, clock, acc)
    first = await svc.authorize("t1", "retry", "c1", "+44 20 7946 0000")
    again = await svc.authorize("t1", "retry", "c1", "+1 212 555 0100")  # cheaper destination
    assert again.allowed and again.rate_prefix == "44"
    assert (again.max_seconds, again.reserved) == (first.max_seconds, first.reserved)
    charge = await svc.end("t1", "retry", "c1", billable_seconds=120)
    assert charge.cost == cost(RATES["44"], 120)


async def test_end_time_in_the_future_is_refused(store: BalanceStore, clock: Clock) -> None:
    acc = account("future")
    await fund(store, acc, 1_000_000)
    svc = make_service(store, clock, acc)
    await svc.authorize("t1", "future", "c1", "+1 212 555 0100")
    await svc.answer("t1", "future", "c1")
    with pytest.raises(InvalidRequest):
        await svc.end("t1", "future", "c1", ended_at_ms=4_102_444_800_000)
    clock.ms += 42_000
    charge = await svc.end("t1", "future", "c1")
    assert charge.cost == cost(RATES["1"], 42)
