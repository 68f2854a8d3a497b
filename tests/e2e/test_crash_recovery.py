"""SIGKILL of the engine in the middle of 50 live calls, then a restart.

No reservation outlives its TTL, no call is charged twice, and Redis reconciles with the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from charging_engine.balance.keys import AccountKeys, expiry_key
from charging_engine.bootstrap import open_engine
from charging_engine.ledger.reconcile import reconcile
from charging_engine.loader import load_tenant
from tests.e2e.support import KEY, EngineProcess, eventually, settings, tenant_data

BUCKETS = 64
SHORT_TTL = {
    "CE_SLICE_SECONDS": "4", "CE_RING_ALLOWANCE_S": "2", "CE_TTL_MARGIN_S": "1",
    "CE_SWEEP_INTERVAL_S": "0.2", "CE_RECLAIM_IDLE_MS": "300", "CE_CATALOG_REFRESH_S": "0.5",
}


@pytest.fixture
def engine_proc(redis_url: str, database_url: str, tmp_path: Path) -> Iterator[EngineProcess]:
    proc = EngineProcess(redis_url, database_url, tmp_path / "engine.log", **SHORT_TTL)
    yield proc
    proc.stop()


async def test_sigkill_mid_calls_then_restart(
    redis_url: str, database_url: str, engine_proc: EngineProcess
) -> None:
    async with open_engine(settings(redis_url, database_url)) as engine:
        await load_tenant(engine, tenant_data())
    await engine_proc.start("engine-a")
    headers = {"Authorization": f"Bearer {KEY}"}
    accounts = ["a1", "a2", "a3", "a4"]
    calls = [(f"call-{i}", accounts[i % 4]) for i in range(50)]
    granted: dict[str, int] = {}

    async with httpx.AsyncClient(base_url=engine_proc.url, headers=headers) as http:
        for call, acc in calls:
            body = {"account": acc, "call_id": call, "destination": "+12125550100"}
            r = await http.post("/v1/calls/authorize", json=body)
            assert r.status_code == 200 and r.json()["allowed"], r.text
            granted[call] = r.json()["max_seconds"]
            r = await http.post("/v1/calls/answer", json={"account": acc, "call_id": call})
            assert r.status_code == 200, r.text
        for call, acc in calls[:20]:
            r = await http.post("/v1/calls/end", json={
                "account": acc, "call_id": call, "billable_seconds": granted[call] // 2})
            assert r.status_code == 200 and r.json()["reason"] == "ok", r.text

    engine_proc.kill()  # 30 calls live, settlement entries possibly read but not acknowledged

    rds = aioredis.Redis.from_url(redis_url)
    scores = [s for b in range(BUCKETS)
              for _, s in await rds.zrange(expiry_key(b), 0, -1, withscores=True)]
    assert len(scores) == 30
    last_expiry_ms = max(scores)

    await engine_proc.start("engine-b")
    async with httpx.AsyncClient(base_url=engine_proc.url, headers=headers) as http:
        for call, acc in calls[20:35]:  # 15 more calls end normally after the restart
            r = await http.post("/v1/calls/end", json={
                "account": acc, "call_id": call, "billable_seconds": granted[call] // 2})
            assert r.status_code == 200, r.text
        for call, acc in calls[:5]:  # replayed ends of calls ended before the crash
            r = await http.post("/v1/calls/end", json={
                "account": acc, "call_id": call, "billable_seconds": granted[call]})
            assert r.status_code == 200 and r.json()["reason"] == "duplicate", r.text

    async def no_reservations() -> bool:
        for acc in accounts:
            if int(await rds.hget(AccountKeys.of("tel", acc, BUCKETS).account_key,
                                  "reserved") or 0) != 0:
                return False
        return True

    # The 15 calls whose end never arrives are swept once their TTL passes.
    await eventually(no_reservations, 30, "the sweeper to release every reservation")
    cleared_ms = time.time() * 1000
    assert cleared_ms <= last_expiry_ms + 3_000, "a reservation outlived its TTL by > 3 s"
    engine_proc.stop()
    await rds.aclose()

    async with open_engine(settings(redis_url, database_url)) as engine:
        while await engine.settlement.drain_once():
            pass
        diffs = await reconcile(engine.redis, engine.pool, BUCKETS, engine.settlement)
        assert diffs == []
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "select call_id, count(*) as n from ledger_entries "
            "where kind in ('commit', 'release', 'expire') group by call_id"
        )
        assert {r["call_id"] for r in rows} == {c for c, _ in calls}
        assert all(r["n"] == 1 for r in rows), "a call was settled twice"
        assert await conn.fetchval("select count(*) from calls") == 50
        kinds = dict(await conn.fetch(
            "select settled_by, count(*) from calls group by settled_by"))
        assert kinds == {"commit": 35, "expire": 15}
    finally:
        await conn.close()
