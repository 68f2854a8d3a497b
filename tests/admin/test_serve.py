"""``charging-engine serve`` as an operator runs it: the first key from the command line, the
admin API on its own port, and the alert feed running as part of the engine's background."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from charging_engine.devservers import free_port
from tests.e2e.support import EngineProcess, eventually


async def test_serve_runs_the_admin_api_and_its_alert_feed(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "charging_server", "create-platform-key", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    secret = out.decode().split()[-1]
    admin_port = free_port()
    engine = EngineProcess(redis_url, database_url, tmp_path / "engine.log",
                           CE_ADMIN_PORT=str(admin_port))
    await engine.start("serve-test")
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{admin_port}",
            headers={"Authorization": f"Bearer {secret}"},
        ) as c:
            assert (await c.get("/v1/me")).json()["role"] == "platform"
            assert (await c.post("/v1/tenants", json={"tenant_id": "t", "currency": "USD"})
                    ).status_code == 201
            r = await c.post("/v1/tenants/t/accounts", json={
                "account_id": "a", "low_balance_thresholds": ["1.00"]})
            assert r.status_code == 201, r.text

            async def alerted() -> bool:  # 0.00 < 1.00: the line fires when it is set
                items = (await c.get("/v1/tenants/t/alerts")).json()["items"]
                return [a["kind"] for a in items] == ["low_balance"]

            await eventually(alerted, 10, "the alert stored by the engine's background")
            assert (await c.get("/ready")).status_code == 200
    finally:
        engine.stop()
