"""A settled call reconciled with the PBX's CDR: corrected once, beyond a tolerance only."""

from __future__ import annotations

import asyncio

from charging_engine.balance.store import BalanceStore
from charging_engine.rating.pricing import cost
from tests.service.support import PLAN, Clock, account, fund, make_service

UK = next(r for r in PLAN.rates if r.prefix == "44")


async def test_cdr_difference_is_corrected_once(store: BalanceStore, clock: Clock) -> None:
    acc = account("cdr")
    await fund(store, acc, 10_000_000)
    svc = make_service(store, clock, acc)
    await svc.authorize("t1", "cdr", "c1", "+44 20 7946 0000")
    await svc.answer("t1", "cdr", "c1")
    charged = await svc.end("t1", "cdr", "c1", billable_seconds=100)
    assert charged.cost == cost(UK, 100)

    within = await svc.correct("t1", "cdr", "c1", 101)
    assert (within.corrected, within.reason) == (False, "within_tolerance")

    results = await asyncio.gather(*(svc.correct("t1", "cdr", "c1", 160) for _ in range(5)))
    assert [r.corrected for r in results].count(True) == 1
    assert {r.reason for r in results} == {"corrected", "already_corrected"}
    delta = cost(UK, 160) - cost(UK, 100)
    assert next(r for r in results if r.corrected).delta == delta
    state = await store.state("t1", "cdr")
    assert state is not None and state.balance == 10_000_000 - cost(UK, 160)


async def test_cdr_of_a_call_not_settled_changes_nothing(
    store: BalanceStore, clock: Clock
) -> None:
    acc = account("early")
    await fund(store, acc, 1_000_000)
    svc = make_service(store, clock, acc)
    await svc.authorize("t1", "early", "c1", "+44 20 7946 0000")
    res = await svc.correct("t1", "early", "c1", 30)
    assert (res.corrected, res.reason) == (False, "not_settled")
    state = await store.state("t1", "early")
    assert state is not None and state.balance == 1_000_000


async def test_affordable_seconds_cover_all_available_money(
    store: BalanceStore, clock: Clock
) -> None:
    acc = account("rich")
    await fund(store, acc, 50_000_000)
    svc = make_service(store, clock, acc)
    d = await svc.authorize("t1", "rich", "c1", "+44 20 7946 0000", with_affordable=True)
    assert d.max_seconds < d.affordable_seconds
    assert cost(UK, d.affordable_seconds) <= 50_000_000
