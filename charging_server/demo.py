"""The local demo: the whole stack on private servers, driven by simulated PBX traffic over HTTP.

It loads two tenants from ``demo_data/``, serves the real-time API on a free loopback port, plays
the call flows a PBX would (allowed and denied calls, a low balance running out, parallel calls
on one account), then settles into Postgres and reconciles Redis against the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from importlib import resources
from typing import Any

import httpx
import uvicorn

from charging_engine.bootstrap import Engine, open_engine
from charging_engine.config import Settings
from charging_engine.ledger.reconcile import reconcile
from charging_engine.loader import TenantData, load_tenant
from charging_engine.realtime.app import create_app

TENANTS = (
    ("acme", "Acme Telecom", "USD", "America/New_York", "acme-std", "acme-pbx-key"),
    ("globex", "Globex GmbH", "EUR", "Europe/Berlin", "globex-std", "globex-pbx-key"),
)


def _data(name: str) -> str:
    return resources.files("charging_server").joinpath(f"demo_data/{name}").read_text()


class Pbx:
    """A simulated PBX: asks before each call, reports answer and hangup."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}
        self.seq = 0

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = await self.client.post(path, json=body, headers=self.headers)
        return r.status_code, r.json()

    async def call(self, account: str, dst: str, talk: int | None) -> dict[str, Any]:
        """One call: authorize, then answer and hang up after ``talk`` seconds (capped by the
        granted limit, as Asterisk's Dial L() would), or give up unanswered when talk is None."""
        self.seq += 1
        call_id = f"{account}-{self.seq}"
        status, auth = await self.post(
            "/v1/calls/authorize", {"account": account, "call_id": call_id, "destination": dst}
        )
        out: dict[str, Any] = {"account": account, "dst": dst, "http": status, **auth}
        if status != 200 or not auth["allowed"]:
            return out
        granted, cut = auth["max_seconds"], False
        if talk is not None:
            await self.post("/v1/calls/answer", {"account": account, "call_id": call_id})
            ext = 0
            while talk > granted:  # a long call asks for another slice before its limit
                ext += 1
                _, more = await self.post("/v1/calls/extend", {
                    "account": account, "call_id": call_id, "sequence": ext})
                if not more["extended"]:
                    cut = True  # the PBX hangs up when the granted time runs out
                    break
                granted = more["max_seconds"]
            talked = min(talk, granted)
        else:
            talked = 0
        _, end = await self.post(
            "/v1/calls/end", {"account": account, "call_id": call_id, "billable_seconds": talked}
        )
        out.update(talked=talked, cost=end["cost"], balance=end["balance"], cut=cut,
                   answered=talk is not None, max_seconds=granted)
        return out

    async def balance(self, account: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/accounts/{account}/balance", headers=self.headers)
        return dict(r.json())


def _show(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n== {title}")
    for r in rows:
        if r.get("allowed"):
            talk = f"talked {r['talked']:>5}s" if r["answered"] else "no answer    "
            note = "  <- cut: money ran out" if r["cut"] else ""
            print(f"  {r['account']:<6} -> {r['dst']:<18} ALLOWED max {r['max_seconds']:>5}s "
                  f"{talk} cost {r['cost']:>8}  balance {r['balance']}{note}")
        else:
            print(f"  {r['account']:<6} -> {r['dst']:<18} DENIED  ({r.get('reason')}) "
                  f"http {r['http']}")


async def _scenarios(engine: Engine, acme: Pbx, globex: Pbx) -> None:
    _show("allowed and denied calls (tenant acme, USD)", [
        await acme.call("alice", "+1 212 555 0100", 125),
        await acme.call("alice", "+44 20 7946 0000", 61),
        await acme.call("alice", "+44 7700 900123", 2),  # inside the 3 s grace: free
        await acme.call("alice", "+33 1 42 68 53 00", None),  # not answered: nothing charged
        await acme.call("alice", "+999 123", 10),  # no rate
        await acme.call("dave", "+1 212 555 0100", 10),  # suspended
        await acme.call("nobody", "+1 212 555 0100", 10),  # unknown account
    ])
    rows = [await acme.call("bob", "+881 6 1234 5678", 60)]  # satellite: fee alone is 0.50
    for _ in range(3):  # long UK mobile calls, extended slice by slice until the money runs out
        rows.append(await acme.call("bob", "+44 7700 900456", 3600))
    _show("a low balance running out (bob, 0.50 USD)", rows)
    before = await acme.balance("carol")
    calls = await asyncio.gather(*(acme.call("carol", "+49 30 1234567", 900) for _ in range(40)))
    allowed = [c for c in calls if c.get("allowed")]
    after = await acme.balance("carol")
    print(f"\n== 40 parallel calls on carol ({before['balance']} USD): {len(allowed)} allowed, "
          f"{len(calls) - len(allowed)} denied (insufficient_funds); balance now "
          f"{after['balance']}, never below zero")
    _show("tenant globex (EUR, peak/off-peak bands in Europe/Berlin, credit limit)", [
        await globex.call("frank", "+49 30 555 1234", 300),
        await globex.call("frank", "+49 89 555 1234", 600),
        await globex.call("frank", "+44 20 7946 0000", 1200),
        await globex.call("grace", "+49 40 555 1234", 45),
    ])
    print(f"\n   frank: {await globex.balance('frank')}")


async def run_demo(settings: Settings) -> int:
    async with open_engine(settings) as engine:
        for tid, name, cur, tz, plan, key in TENANTS:
            data = TenantData.from_text(
                tenant_id=tid, name=name, currency=cur, timezone=tz, plan_id=plan,
                rates=_data(f"{tid}_rates.csv"), accounts=_data(f"{tid}_accounts.csv"),
                pbx_key=key,
            )
            print(await load_tenant(engine, data))
        server = uvicorn.Server(uvicorn.Config(
            create_app(engine.service), loop="none",
            log_level="warning", lifespan="off",
        ))
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(engine.run_background(stop))
            # The socket listens before serve() starts: connections queue until it accepts them.
            sock = socket.create_server(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            serving = tg.create_task(server.serve(sockets=[sock]))
            print(f"real-time API listening on http://127.0.0.1:{port} (docs at /docs)")
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    await _scenarios(
                        engine, Pbx(client, TENANTS[0][5]), Pbx(client, TENANTS[1][5])
                    )
            finally:
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await serving
                stop.set()
        settled = 0
        while (n := await engine.settlement.drain_once()) > 0:
            settled += n
        diffs = await reconcile(engine.redis, engine.pool, settings.buckets, engine.settlement)
        async with engine.pool.acquire() as conn:
            entries = await conn.fetchval("select count(*) from ledger_entries")
            calls = await conn.fetchval("select count(*) from calls")
        print(f"\n== settlement: {entries} ledger entries and {calls} call records in Postgres; "
              f"reconcile: {len(diffs)} difference(s) between Redis and the ledger")
        for d in diffs:
            print(f"   {d}")
    return 1 if diffs else 0
