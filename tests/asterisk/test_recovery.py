"""AMI outages and connector restarts, through the simulator and a real engine: every call is
charged exactly once, and nothing the connector sent before an outage is replayed after it."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from pbx_connectors.asterisk.ami_client import AmiDisconnected
from pbx_connectors.asterisk.simulator import CallHandle, CallRecord, CallSpec
from tests.asterisk.stack import UK, US, Stack, eventually, expected_cost, running_stack

# slices a multiple of every increment in the deck (the engine cannot extend by less than an
# increment: see the report)
SHORT_TTL = {"slice_seconds": 6, "ring_allowance_s": 2, "ttl_margin_s": 1}


async def answered(handles: list[CallHandle]) -> None:
    async with asyncio.timeout(15):
        for h in handles:
            await h.wait_answered()


async def settled_rows(stack: Stack, n: int) -> dict[str, dict[str, object]]:
    rows = await stack.in_ledger(n, within=60)
    entries = await stack.ledger_rows(
        "SELECT call_id, kind FROM ledger_entries WHERE tenant_id = 'tel' AND call_id <> ''")
    settles = Counter(e["call_id"] for e in entries if e["kind"] in ("commit", "release",
                                                                     "expire"))
    corrections = Counter(e["call_id"] for e in entries if e["kind"] == "correction")
    assert len(rows) == n and set(settles.values()) == {1}, settles  # once each
    assert set(corrections.values()) <= {1}
    return {r["call_id"]: dict(r) for r in rows}


async def test_ami_dropped_for_ten_seconds_mid_call(redis_url: str, database_url: str) -> None:
    accounts = {"a1": "500.00", "a2": "500.00"}
    async with running_stack(redis_url, database_url, accounts, engine=SHORT_TTL) as stack:
        sim = stack.sim

        def call(i: int, talk: float) -> CallHandle:
            return sim.start_call(CallSpec(f"a{i % 2 + 1}", "15550001", US if i % 3 else UK,
                                           ring_s=0.2, talk_s=talk, cdr_first=bool(i % 2)))

        spanning = [call(i, 14.0 + 0.3 * i) for i in range(6)]  # outlive the outage
        ending = [call(i, 4.5 + 0.3 * i) for i in range(6, 10)]  # end during it
        await answered(spanning + ending)
        generation = stack.connector.ami.generation
        await sim.drop_ami(10.0)
        async with asyncio.timeout(5):  # FastAGI still authorizes while AMI is away
            starting = [call(i, 11.0) for i in range(10, 13)]  # start during it, end after
            inside = [call(i, 2.0) for i in range(13, 15)]  # start and end during it
            await answered(starting + inside)
        assert not sim.ami_up
        records: list[CallRecord] = await asyncio.wait_for(
            asyncio.gather(*spanning, *ending, *starting, *inside), 60)
        assert stack.connector.ami.generation > generation  # reconnected
        assert stack.connector.recovery.snapshots >= 1

        # the sweeper settles what ended unseen (events of the outage are lost, Cdr included)
        async def all_settled() -> bool:
            return all([await stack.settled(r.spec.account, r.uniqueid) for r in records])

        await eventually(all_settled, 60, "every call to be settled")
        await stack.quiet()
        rows = await settled_rows(stack, len(records))
        for rec in records[:6] + records[10:13]:  # seen hanging up: exactly their Cdr
            row = rows[rec.uniqueid]
            assert row["cost"] + row["correction"] == expected_cost(rec), (rec, row)  # type: ignore[operator]
        for rec in records[6:10]:  # ended unseen after being answered: charged by TTL policy
            row = rows[rec.uniqueid]
            assert row["settled_by"] == "expire" and row["cost"] >= expected_cost(rec)  # type: ignore[operator]
        for rec in records[13:]:  # never seen at all: released by TTL (their Cdr was lost)
            assert rows[rec.uniqueid]["settled_by"] == "expire"
        for acc in accounts:
            assert await stack.reserved(acc) == 0
        assert stack.connector.executor.stats["lost"] == 6


async def test_silent_ami_is_dropped_and_nothing_is_replayed(
    redis_url: str, database_url: str,
) -> None:
    async with running_stack(redis_url, database_url, {"a1": "100.00"},
                             ami={"action_timeout_s": 1.0}) as stack:
        ami = stack.connector.ami
        handle = stack.sim.start_call(CallSpec("a1", "15550001", US, talk_s=7.0))
        await answered([handle])
        generation = ami.generation
        stack.sim.silent_ami(True)
        with pytest.raises(AmiDisconnected):  # unanswered: it may or may not have run
            await ami.action("Hangup", Channel=handle.channel)

        async def dropped() -> bool:
            return not ami.connected

        await eventually(dropped, 10, "the watchdog to drop the silent connection")
        stack.sim.silent_ami(False)

        async def back() -> bool:
            return ami.connected and ami.generation > generation

        await eventually(back, 10, "the connector to log in again")
        record = await asyncio.wait_for(handle, 20)
        assert record.ended_by == "caller"  # the unanswered Hangup was never sent again
        await stack.quiet()
        rows = await settled_rows(stack, 1)
        row = rows[record.uniqueid]
        assert row["cost"] + row["correction"] == expected_cost(record)  # type: ignore[operator]


async def test_calls_survive_a_connector_restart(redis_url: str, database_url: str) -> None:
    """A new connector process adopts the live calls the old one authorized (their engine
    sessions are in Redis), extends them and charges their hangup."""
    async with running_stack(redis_url, database_url, {"a1": "100.00"},
                             engine={"slice_seconds": 4}) as stack:
        handles = [stack.sim.start_call(CallSpec("a1", "15550001", US, talk_s=9.0 + i))
                   for i in range(3)]
        await answered(handles)
        await stack.stop_connector()
        new = await stack.start_connector()

        async def adopted() -> bool:
            return new.recovery.adopted == 3

        await eventually(adopted, 10, "the live calls to be adopted")
        records = await asyncio.wait_for(asyncio.gather(*handles), 30)
        assert {r.ended_by for r in records} == {"caller"}
        assert new.enforcer.extensions >= 3  # kept ahead by the new process
        await stack.quiet()
        rows = await settled_rows(stack, 3)
        for rec in records:
            row = rows[rec.uniqueid]
            assert row["cost"] + row["correction"] == expected_cost(rec)  # type: ignore[operator]
        assert await stack.balance("a1") == stack.expected_balances(records)["a1"]
