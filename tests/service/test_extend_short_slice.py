"""A slice shorter than the rate's billing increment still extends a call, one block at a time.

Regression: ``extend`` used to round ``granted + slice`` down to a boundary, which is
``granted`` itself when the slice is shorter than an increment, so such calls were cut after
their first block even with money on the account.
"""

from __future__ import annotations

from charging_engine.balance.store import BalanceStore
from charging_engine.catalog import Account, Catalog, CatalogData, Tenant
from charging_engine.rating.model import Rate, RatePlan
from charging_engine.rating.pricing import cost
from charging_engine.sessions.model import Reason
from charging_engine.sessions.policy import SessionPolicy
from charging_engine.sessions.service import ChargingService
from tests.service.support import Clock, fund

# 0.06 a minute billed per whole minute: every block costs 60_000 micros.
MINUTE = Rate(prefix="1", price_per_minute=60_000, first_increment=60, next_increment=60)
# A first block of 30 s, then whole minutes: boundaries 30, 90, 150, ...
HALF_THEN_MINUTE = Rate(prefix="44", price_per_minute=60_000, first_increment=30,
                        next_increment=60)
PLAN = RatePlan("minutes", "USD", (MINUTE, HALF_THEN_MINUTE))
US, UK = "+1 212 555 0100", "+44 20 7946 0000"


def account(account_id: str) -> Account:
    return Account("t1", account_id, "USD", PLAN.plan_id)


def short_slice_service(store: BalanceStore, clock: Clock, account_id: str,
                        max_call_seconds: int = 4 * 3600) -> ChargingService:
    """10 s slices: shorter than every increment of PLAN."""
    catalog = Catalog(CatalogData(
        version=1, tenants=[Tenant("t1", "Tenant one", "USD")],
        accounts=[account(account_id)], plans=[("t1", PLAN)],
    ))
    policy = SessionPolicy(slice_seconds=10, max_call_seconds=max_call_seconds)
    return ChargingService(store, catalog, policy, clock)


async def reserved(store: BalanceStore, account_id: str) -> int:
    state = await store.state("t1", account_id)
    assert state is not None
    return state.reserved


async def test_extends_block_by_block_until_the_money_runs_out(
    store: BalanceStore, clock: Clock
) -> None:
    opening = 3 * 60_000 + 20_000  # three minutes, and 20_000 that buys no fourth
    await fund(store, account("a1"), opening)
    svc = short_slice_service(store, clock, "a1")

    d = await svc.authorize("t1", "a1", "c1", US)
    assert d.allowed and d.max_seconds == 60  # the slice (10 s) is raised to the first block
    assert d.reserved == 60_000 == await reserved(store, "a1")
    answered = clock.ms
    await svc.answer("t1", "a1", "c1")

    clock.ms = answered + 50_000
    ext = await svc.extend("t1", "a1", "c1", 1)
    assert ext.extended and ext.reason is Reason.OK
    assert ext.max_seconds == 120 and ext.seconds_left == 70
    assert await reserved(store, "a1") == 120_000

    again = await svc.extend("t1", "a1", "c1", 1)  # a retried request reserves nothing more
    assert again.extended and again.max_seconds == 120
    assert await reserved(store, "a1") == 120_000

    clock.ms = answered + 110_000
    ext = await svc.extend("t1", "a1", "c1", 2)
    assert ext.extended and ext.max_seconds == 180 and ext.seconds_left == 70
    assert await reserved(store, "a1") == 180_000

    clock.ms = answered + 170_000
    refused = await svc.extend("t1", "a1", "c1", 3)
    assert not refused.extended and refused.reason is Reason.INSUFFICIENT_FUNDS
    assert refused.max_seconds == 180 and refused.seconds_left == 10
    assert await reserved(store, "a1") == 180_000

    charge = await svc.end("t1", "a1", "c1", billable_seconds=175)
    assert charge.reason is Reason.OK
    assert charge.billed_seconds == 180 and charge.cost == cost(MINUTE, 175) == 180_000
    assert charge.balance == opening - 180_000
    replay = await svc.end("t1", "a1", "c1", billable_seconds=175)
    assert replay.reason is Reason.DUPLICATE and replay.cost == 180_000
    state = await store.state("t1", "a1")
    assert state is not None
    assert state.balance == opening - 180_000 and state.reserved == 0


async def test_first_block_shorter_than_the_next(store: BalanceStore, clock: Clock) -> None:
    """Boundaries 30, 90, 150: each 10 s slice reaches the next one, never past it."""
    await fund(store, account("a2"), 10**9)
    svc = short_slice_service(store, clock, "a2")
    d = await svc.authorize("t1", "a2", "c1", UK)
    assert d.allowed and d.max_seconds == 30 and d.reserved == cost(HALF_THEN_MINUTE, 30)
    await svc.answer("t1", "a2", "c1")
    grants = [(await svc.extend("t1", "a2", "c1", seq)).max_seconds for seq in (1, 2, 3)]
    assert grants == [90, 150, 210]
    assert await reserved(store, "a2") == cost(HALF_THEN_MINUTE, 210)
    charge = await svc.end("t1", "a2", "c1", billable_seconds=200)
    assert charge.cost == cost(HALF_THEN_MINUTE, 200)
    assert await reserved(store, "a2") == 0


async def test_stops_at_the_longest_call(store: BalanceStore, clock: Clock) -> None:
    """With money to spare, extensions end at the last boundary within max_call_seconds."""
    await fund(store, account("a3"), 10**9)
    svc = short_slice_service(store, clock, "a3", max_call_seconds=150)
    d = await svc.authorize("t1", "a3", "c1", US)
    assert d.allowed and d.max_seconds == 60
    await svc.answer("t1", "a3", "c1")
    assert (await svc.extend("t1", "a3", "c1", 1)).max_seconds == 120
    capped = await svc.extend("t1", "a3", "c1", 2)
    assert not capped.extended and capped.max_seconds == 120
    assert capped.reason is Reason.MAX_CALL_DURATION  # not the money: it had plenty
    assert await reserved(store, "a3") == 120_000
