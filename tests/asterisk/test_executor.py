"""Tracker commands carried out against a real engine on the private Redis, including the paths
the simulator cannot reach (its AMI outages lose Cdr events, as a real Asterisk's do)."""

from __future__ import annotations

import asyncio

from charging_engine.balance.store import BalanceStore
from charging_engine.sessions.policy import SessionPolicy
from charging_engine.sessions.service import ChargingService
from charging_engine.sessions.sweeper import Sweeper
from pbx_connectors.asterisk.commands import (
    Answer,
    Command,
    End,
    Leg,
    OrphanCdr,
    Reconcile,
    Release,
    SettleFromCdr,
)
from pbx_connectors.asterisk.config import ChargingConfig
from pbx_connectors.asterisk.enforcer import Enforcer
from pbx_connectors.asterisk.executor import CommandExecutor
from tests.asterisk.support import CLOSED, PER_SECOND, account, catalog, fund
from tests.service.support import Clock

US = "12125550100"


class NoAmi:
    async def action(self, name: str, *, tag: object | None = None,
                     within_s: float | None = None, **fields: str | int) -> list[object]:
        raise AssertionError("no AMI action expected here")


async def setup(store: BalanceStore, clock: Clock) -> tuple[ChargingService, CommandExecutor]:
    acc = account("acc1")
    await fund(store, acc, 1000 * PER_SECOND)
    svc = ChargingService(store, catalog(acc), SessionPolicy(slice_seconds=60, ttl_margin_s=5),
                          clock)
    cfg = ChargingConfig()
    enforcer = Enforcer(svc, NoAmi(), lambda _: None, cfg, lambda: None)  # type: ignore[arg-type]
    return svc, CommandExecutor(svc, enforcer, cfg, clock=clock)


async def run(ex: CommandExecutor, *cmds: Command) -> None:
    for c in cmds:
        ex.submit(c)
    assert await ex.drain(10)


async def balance(store: BalanceStore) -> int:
    state = await store.state(CLOSED, "acc1")
    assert state is not None and state.reserved >= 0
    return state.balance


def leg(call: str) -> Leg:
    return Leg(call, CLOSED, "acc1", f"PJSIP/{call}", f"{call}-h")


async def test_call_lost_in_an_outage_settles_from_its_cdr(store: BalanceStore) -> None:
    clock = Clock(wall := 1_800_000_000_000)
    svc, ex = await setup(store, clock)
    await svc.authorize(CLOSED, "acc1", "c1", US)
    await run(ex, Answer(leg("c1"), wall), SettleFromCdr(leg("c1"), 42))
    assert await balance(store) == (1000 - 42) * PER_SECOND
    assert ex.stats["settled_from_cdr"] == 1


async def test_cdr_after_the_ttl_settled_the_call_re_rates_it(store: BalanceStore) -> None:
    clock = Clock(wall := 1_800_000_000_000)
    svc, ex = await setup(store, clock)
    await svc.authorize(CLOSED, "acc1", "c2", US)
    await run(ex, Answer(leg("c2"), wall))
    clock.ms += 3_600_000  # long past the reservation's TTL
    swept = await Sweeper(svc, 16).sweep_once()
    assert [s[2:] for s in swept] == [("c2", f"charged {60 * PER_SECOND}")]  # 60 s granted
    await run(ex, SettleFromCdr(leg("c2"), 42))  # the Cdr came late: 42 s, not 60
    assert await balance(store) == (1000 - 42) * PER_SECOND
    assert ex.stats["cdr_corrected"] == 1


async def test_reconcile_corrects_once_and_release_charges_nothing(store: BalanceStore) -> None:
    clock = Clock(wall := 1_800_000_000_000)
    svc, ex = await setup(store, clock)
    for call in ("c3", "c4"):
        await svc.authorize(CLOSED, "acc1", call, US)
    await run(ex, Answer(leg("c3"), wall), End(leg("c3"), 40, wall + 40_000),
              Reconcile(leg("c3"), 41), Reconcile(leg("c3"), 50),  # the second changes nothing
              Release(leg("c4"), "c3"))
    assert await balance(store) == (1000 - 41) * PER_SECOND
    state = await store.state(CLOSED, "acc1")
    assert state is not None and state.reserved == 0
    assert (ex.stats["cdr_corrected"], ex.stats["cdr_already_corrected"]) == (1, 1)


async def test_cdr_of_a_leg_the_engine_never_saw_changes_nothing(store: BalanceStore) -> None:
    clock = Clock()
    svc, ex = await setup(store, clock)
    await svc.authorize(CLOSED, "acc1", "c5", US)
    await svc.end(CLOSED, "acc1", "c5", billable_seconds=10)
    await run(ex, OrphanCdr(leg("callee-leg"), 30),  # no session: a callee or Local half
              OrphanCdr(leg("c5"), 30))  # settled already: an orphan Cdr never re-rates
    assert await balance(store) == (1000 - 10) * PER_SECOND
    assert ex.stats["settled_orphan_cdr"] == 0 and ex.stats["refused"] == 0


async def test_commands_of_one_call_run_in_order(store: BalanceStore) -> None:
    clock = Clock(wall := 1_800_000_000_000)
    svc, ex = await setup(store, clock)
    calls = [f"o{i}" for i in range(15)]  # 15 slices of 60 s fit in 1000 s of money
    await asyncio.gather(*(svc.authorize(CLOSED, "acc1", c, US) for c in calls))
    for c in calls:  # all submitted at once: each call's end must follow its answer
        ex.submit(Answer(leg(c), wall))
        ex.submit(End(leg(c), 2, wall + 2_000))
    assert await ex.drain(10)
    assert ex.stats["answered"] == 15 and ex.stats["ended"] == 15
    assert await balance(store) == (1000 - 30) * PER_SECOND
