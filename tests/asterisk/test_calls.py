"""Calls through the PBX simulator (real AMI over TCP, real FastAGI), the connector and a real
engine on the private Redis and Postgres: charged exactly, once, and cut when money runs out."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from pbx_connectors.asterisk.simulator import CallRecord, CallSpec, Outcome
from tests.asterisk.stack import UK, US, Stack, eventually, expected_cost, running_stack

SETTLE_KINDS = ("commit", "release", "expire")
OUTCOMES: list[Outcome] = ["answer", "busy", "noanswer", "congestion"]


async def assert_charged_once(stack: Stack, records: list[CallRecord]) -> None:
    """One ledger row per A-leg (nothing for Local halves or callee legs), one settlement
    entry per call, at most one Cdr correction, and every account's balance exactly what the
    Cdrs say."""
    rows = await stack.in_ledger(len(records))
    assert sorted(r["call_id"] for r in rows) == sorted(r.uniqueid for r in records)
    entries = await stack.ledger_rows(
        "SELECT call_id, kind FROM ledger_entries WHERE tenant_id = 'tel' AND call_id <> ''")
    settles = Counter(e["call_id"] for e in entries if e["kind"] in SETTLE_KINDS)
    corrections = Counter(e["call_id"] for e in entries if e["kind"] == "correction")
    assert set(settles.values()) == {1}
    assert set(corrections.values()) <= {1}
    assert len(corrections) <= len(records) // 20, corrections  # the hangup rarely disagrees
    await stack.settled_into_ledger(len(corrections))
    by_call = {r["call_id"]: r for r in await stack.in_ledger(len(records))}
    for rec in records:
        row = by_call[rec.uniqueid]
        assert row["cost"] + row["correction"] == expected_cost(rec), (rec, row)
        assert row["settled_by"] == ("commit" if row["billed_seconds"] else "release")
    balances = {acc: await stack.balance(acc) for acc in stack.opening}
    assert balances == stack.expected_balances(records)
    for acc in stack.opening:
        assert await stack.reserved(acc) == 0


async def test_hundred_concurrent_calls_are_each_charged_once_to_the_unit(
    redis_url: str, database_url: str,
) -> None:
    rnd = random.Random(20261122)
    accounts = {f"a{i}": "1000.00" for i in range(1, 6)}
    specs = []
    for i in range(100):
        outcome: Outcome = rnd.choices(OUTCOMES, [85, 5, 5, 5])[0]
        specs.append(CallSpec(
            account=f"a{i % 5 + 1}", caller=f"1555000{i % 10}", destination=rnd.choice([US, UK]),
            ring_s=rnd.uniform(0.05, 0.8), talk_s=rnd.uniform(0.2, 6.0), outcome=outcome,
            hangup_by=rnd.choice(["caller", "callee"]), cdr_first=rnd.random() < 0.5,
        ))
    async with running_stack(redis_url, database_url, accounts) as stack:
        port = stack.connector.fastagi.port
        stalled = []
        for _ in range(3):  # FastAGI peers that send half a header and stall throughout
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"agi_network: yes\nagi_uniq")
            stalled.append(w)
        records = await stack.sim.run(specs, concurrency=100)
        assert Counter(r.agi_variables.get("CHARGING_STATUS") for r in records) == \
            {"ALLOWED": 100}
        assert sum(r.answered for r in records) == sum(s.outcome == "answer" for s in specs)
        await stack.quiet()
        await assert_charged_once(stack, records)
        assert stack.connector.executor.stats["ended"] == 100
        for w in stalled:
            w.close()


async def test_duplicated_and_reordered_events_change_nothing(
    redis_url: str, database_url: str,
) -> None:
    accounts = {"a1": "500.00", "a2": "500.00"}
    dup = frozenset({"Hangup", "Cdr", "DialEnd", "DialBegin", "BridgeEnter", "LocalBridge",
                     "Newchannel"})
    specs = [CallSpec(account=f"a{i % 2 + 1}", caller="15550001",
                      destination=US if i % 3 else UK, ring_s=0.1 + 0.05 * i,
                      talk_s=0.5 + 0.37 * i, cdr_first=bool(i % 2),
                      duplicate=dup if i % 4 else frozenset(),
                      hangup_by="callee" if i % 5 == 0 else "caller")
             for i in range(12)]
    async with running_stack(redis_url, database_url, accounts) as stack:
        stack.sim.duplicate_events({"Hangup", "Cdr"})  # and every call's on top
        records = await stack.sim.run(specs, concurrency=12)
        await stack.quiet()
        await assert_charged_once(stack, records)
        assert stack.connector.executor.stats["ended_duplicate"] == 0  # a repeat never re-ends


async def test_money_for_90_seconds_across_three_simultaneous_calls(
    redis_url: str, database_url: str,
) -> None:
    """5 s slices: each call is extended every few seconds until the account is spent, then
    cut; the three together never cost more than the balance (no credit limit)."""
    async with running_stack(redis_url, database_url, {"a1": "0.09"},  # 90 s at 0.06/min
                             engine={"slice_seconds": 5}) as stack:
        specs = [CallSpec("a1", "15550001", US, ring_s=0.1 + 0.2 * i, talk_s=120.0)
                 for i in range(3)]
        records = await asyncio.wait_for(stack.sim.run(specs, concurrency=3), 120)
        assert {r.ended_by for r in records} <= {"absolute_timeout", "ami_hangup"}
        await stack.quiet()
        total = sum(r.billable_seconds for r in records)
        assert 80 <= total <= 90, [r.billable_seconds for r in records]
        assert await stack.balance("a1") >= 0
        assert await stack.balance("a1") == stack.expected_balances(records)["a1"]
        assert stack.connector.enforcer.refusals >= 3
        rows = await stack.in_ledger(3)
        assert sum(r["cost"] for r in rows) <= 90_000


async def test_mid_call_top_up_extends_a_running_call(redis_url: str, database_url: str) -> None:
    async with running_stack(redis_url, database_url, {"a1": "0.01"},  # 10 s of money
                             engine={"slice_seconds": 4},
                             fastagi={"dial_limit": "max_call"}) as stack:
        handle = stack.sim.start_call(CallSpec("a1", "15550001", US, talk_s=16.0))
        async with asyncio.timeout(10):
            await handle.wait_answered()

        async def shortened() -> bool:
            sup = stack.connector.enforcer.supervised(handle.uniqueid)
            return sup is not None and sup.shortened

        await eventually(shortened, 15, "the call to be shortened by AbsoluteTimeout")
        assert not handle.done()
        await stack.engine.store.credit("tel", "a1", kind="topup", amount=60_000,
                                        idem_key="mid-call", extra={}, now_ms=1)
        record = await asyncio.wait_for(handle, 40)
        assert record.ended_by == "caller"  # not cut: the top-up paid for the rest
        assert record.billable_seconds >= 15
        await stack.quiet()
        assert await stack.balance("a1") == 70_000 - expected_cost(record)
