"""The local demo: the whole stack on private servers, driven by simulated PBX traffic over HTTP.

It loads two tenants from ``charging_server/demo_data/``, serves the real-time API on a free
loopback port, plays the call flows a PBX would (allowed and denied calls, a low balance running
out, a postpaid account on credit, parallel calls on one account, time bands), then settles into
Postgres, bills the postpaid account's cycle on a clock it moves (invoice, PDF, webhook), and
reconciles Redis against the ledger: exit code 1 if they differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from importlib import resources

import httpx
import uvicorn

from charging_engine.bootstrap import Engine, open_engine
from charging_engine.config import Settings
from charging_engine.ledger.reconcile import reconcile
from charging_engine.loader import TenantData, load_tenant
from charging_engine.realtime.app import create_app
from charging_server.demo.billing import play_billing
from charging_server.demo.pbx import Pbx
from charging_server.demo.scenarios import Tenant, play_all
from charging_server.demo.show import Money, difference_line, title
from charging_server.migrations import PACKAGES

__all__ = ["run_demo"]

TENANTS = (  # id, name, currency, timezone, rate plan, PBX key
    ("acme", "Acme Telecom", "USD", "America/New_York", "acme-std", "acme-pbx-key"),
    ("globex", "Globex GmbH", "EUR", "Europe/Berlin", "globex-std", "globex-pbx-key"),
)


def _data(name: str) -> str:
    return resources.files("charging_server").joinpath(f"demo_data/{name}").read_text()


async def _load(engine: Engine) -> list[TenantData]:
    loaded = []
    for tid, name, cur, tz, plan, key in TENANTS:
        data = TenantData.from_text(
            tenant_id=tid, name=name, currency=cur, timezone=tz, plan_id=plan,
            rates=_data(f"{tid}_rates.csv"), accounts=_data(f"{tid}_accounts.csv"), pbx_key=key,
        )
        print(f"loaded {await load_tenant(engine, data)} ({name}, {cur}, {tz})")
        loaded.append(data)
    return loaded


async def _serve_and_play(engine: Engine, tenants: list[TenantData]) -> None:
    """Serve the real-time API on a free port and play the scenarios against it over HTTP."""
    server = uvicorn.Server(uvicorn.Config(
        create_app(engine.service), loop="none", log_level="warning", lifespan="off",
    ))
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(engine.run_background(stop))
        # The socket listens before serve() starts: connections queue until it accepts them.
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        serving = tg.create_task(server.serve(sockets=[sock]))
        print(f"real-time API listening on http://127.0.0.1:{port} (docs at /docs)")
        print("each call: account, number dialled, seconds talked and billed, cost, balance after")
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                acme, globex = (
                    Tenant(engine, d, Pbx(client, d.pbx_key or ""), Money.of(d)) for d in tenants
                )
                await play_all(acme, globex)
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
            stop.set()


async def run_demo(settings: Settings) -> int:
    """Run the demo; 0 when Redis and the ledger agree at the end, 1 otherwise."""
    async with open_engine(settings, migrations=PACKAGES) as engine:
        tenants = await _load(engine)
        await _serve_and_play(engine, tenants)
        while await engine.settlement.drain_once() > 0:
            pass
        await play_billing(engine, settings.data_dir)
        while await engine.settlement.drain_once() > 0:  # the billed usage given back
            pass
        diffs = await reconcile(engine.redis, engine.pool, settings.buckets, engine.settlement)
        async with engine.pool.acquire() as conn:
            entries = await conn.fetchval("select count(*) from ledger_entries")
            calls = await conn.fetchval("select count(*) from calls")
        title("settlement and reconcile")
        print(f"  settled into Postgres: {entries} ledger entries, {calls} call records")
        print(f"  reconcile: {len(diffs)} difference{'' if len(diffs) == 1 else 's'} "
              "between the Redis balances and the Postgres ledger")
        money = {d.tenant.tenant_id: Money.of(d) for d in tenants}
        for diff in diffs:
            print(difference_line(diff, money.get(diff.tenant, Money("XXX", 2))))
    return 1 if diffs else 0
