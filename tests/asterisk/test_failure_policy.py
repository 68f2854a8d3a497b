"""The tenant's failure policy seen from the PBX: the simulator's dialplan (``Hangup(21)``
unless ``CHARGING_STATUS=ALLOWED``, then ``Dial(...,L(${CHARGING_MAXMS}))``) against a
connector whose engine is unreachable (a closed port) or stalled (a peer that never answers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from charging_engine.balance.store import BalanceStore
from charging_engine.balance.transport import RespTransport
from charging_engine.devservers import free_port
from pbx_connectors.asterisk.config import AmiConfig, FastAgiConfig, PbxConfig
from pbx_connectors.asterisk.connector import PbxConnector
from pbx_connectors.asterisk.simulator import CallSpec, Simulator, SimulatorConfig
from tests.asterisk.support import CLOSED, OPEN, SlowLink, account, service


@asynccontextmanager
async def pbx_with_engine_at(url: str, tenant: str) -> AsyncIterator[Simulator]:
    client = aioredis.Redis.from_url(url)
    store = BalanceStore(client, buckets=16, transport=RespTransport(url, timeout=2.0))
    svc = service(store, account("acc1", tenant))
    agi_port = free_port()
    sim = Simulator(SimulatorConfig(agi=("127.0.0.1", agi_port), users={"charging": "pw"},
                                    record_events=False))
    await sim.start()
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        config = PbxConfig(
            name="sim", tenant=tenant,
            ami=AmiConfig(port=sim.ami_port, username="charging", secret="pw"),
            fastagi=FastAgiConfig(port=agi_port, answer_timeout_s=0.3, fail_open_seconds=2),
        )
        connector = PbxConnector(svc, config, drain_on_stop_s=1.0)
        task = asyncio.create_task(connector.run(stop))
        async with asyncio.timeout(10):
            await connector.ready.wait()
        yield sim
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 20)
        await sim.close()
        await store.close()
        await client.aclose()


@pytest.mark.parametrize("stalled", [False, True], ids=["unreachable", "stalled"])
async def test_fail_closed_rejects_the_call(stalled: bool) -> None:
    link = await SlowLink(("127.0.0.1", 9), stall=True).start()
    url = link.url if stalled else f"redis://127.0.0.1:{free_port()}/0"
    try:
        async with pbx_with_engine_at(url, CLOSED) as sim:
            rec = await asyncio.wait_for(sim.place_call(
                CallSpec("acc1", "15550001", "12125550100", talk_s=3.0)), 20)
    finally:
        await link.close()
    assert rec.agi_variables["CHARGING_STATUS"] == "ERROR"
    assert rec.agi_variables["CHARGING_REASON"] == ("engine_timeout" if stalled
                                                    else "engine_error")
    assert rec.ended_by == "rejected" and not rec.answered


@pytest.mark.parametrize("stalled", [False, True], ids=["unreachable", "stalled"])
async def test_fail_open_lets_the_call_through_with_a_short_limit(stalled: bool) -> None:
    link = await SlowLink(("127.0.0.1", 9), stall=True).start()
    url = link.url if stalled else f"redis://127.0.0.1:{free_port()}/0"
    try:
        async with pbx_with_engine_at(url, OPEN) as sim:
            rec = await asyncio.wait_for(sim.place_call(
                CallSpec("acc1", "15550001", "12125550100", talk_s=6.0)), 20)
    finally:
        await link.close()
    assert rec.agi_variables["CHARGING_STATUS"] == "ALLOWED"
    assert rec.agi_variables["CHARGING_REASON"] == "fail_open"
    assert rec.limit_ms == 2000
    assert rec.ended_by == "limit" and rec.billable_seconds == 2
