"""The whole chain for integration tests: the PBX simulator (AMI server that also calls our
FastAGI server), the Asterisk connector, and a real engine on the private Redis and Postgres
(settlement into the ledger, the expiry sweeper, the catalogue loaded from Postgres)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from charging_engine.bootstrap import Engine, open_engine
from charging_engine.config import Settings
from charging_engine.devservers import free_port
from charging_engine.loader import TenantData, load_tenant
from charging_engine.money import parse_amount
from charging_engine.rating.deck import parse_deck
from charging_engine.rating.model import Rate
from charging_engine.rating.pricing import cost
from pbx_connectors.asterisk.config import (
    AmiConfig,
    ChargingConfig,
    FastAgiConfig,
    PbxConfig,
)
from pbx_connectors.asterisk.connector import PbxConnector
from pbx_connectors.asterisk.simulator import CallRecord, Simulator, SimulatorConfig

TENANT = "tel"
RATES = """prefix,description,price_per_minute,first_increment,next_increment
1,USA,0.0600,1,1
44,UK,0.1200,6,6
"""
US, UK = "12125550100", "442079460000"
SECRET = "sim-secret"


def rate_for(destination: str) -> Rate:
    """Longest-prefix match over the deck, done here by hand (not by the engine's index)."""
    rates = parse_deck(RATES)
    return max((r for r in rates if destination.startswith(r.prefix)),
               key=lambda r: len(r.prefix))


def expected_cost(record: CallRecord) -> int:
    """What a call must cost: the deck's rate applied to its Cdr's billable seconds."""
    return cost(rate_for(record.spec.destination), record.billable_seconds) \
        if record.billable_seconds else 0


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Wait on an observable fact, failing with ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Stack:
    engine: Engine
    sim: Simulator
    config: PbxConfig
    opening: dict[str, int]
    connector: PbxConnector = field(init=False)
    _stop: asyncio.Event = field(init=False)
    _task: asyncio.Task[None] | None = None

    async def start_connector(self) -> PbxConnector:
        """A new connector process for this PBX (nothing carried over from an earlier one)."""
        self.connector = PbxConnector(self.engine.service, self.config)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.connector.run(self._stop))
        async with asyncio.timeout(10):
            await self.connector.ready.wait()
            await self.connector.ami.logged_in.wait()
        return self.connector

    async def stop_connector(self) -> None:
        if self._task is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(20):
                await self._task
        finally:
            self._task.cancel()
            self._task = None

    async def balance(self, account: str) -> int:
        state = await self.engine.store.state(TENANT, account)
        assert state is not None
        return state.balance

    async def reserved(self, account: str) -> int:
        state = await self.engine.store.state(TENANT, account)
        assert state is not None
        return state.reserved

    async def settled(self, account: str, call_id: str) -> bool:
        return await self.engine.store.settlement_of(TENANT, account, call_id) is not None

    async def quiet(self, within: float = 30.0) -> None:
        """Until the connector has charged and reconciled everything it tracked."""
        c = self.connector

        async def idle() -> bool:
            return len(c.tracker) == 0 and c.executor.pending == 0

        await eventually(idle, within, "the connector to settle and reconcile every call")

    async def ledger_rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.engine.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def in_ledger(self, n_calls: int, within: float = 30.0) -> list[asyncpg.Record]:
        """The ``calls`` rows once settlement has written ``n_calls`` of them."""
        rows: list[asyncpg.Record] = []

        async def written() -> bool:
            nonlocal rows
            rows = await self.ledger_rows(
                "SELECT call_id, account_id, cost, correction, billed_seconds, settled_by "
                "FROM calls WHERE tenant_id = $1", TENANT)
            return len(rows) >= n_calls

        await eventually(written, within, f"{n_calls} calls in the Postgres ledger")
        return rows

    async def settled_into_ledger(self, corrections: int, within: float = 30.0) -> None:
        """Until settlement has written that many corrections into ``calls``."""

        async def written() -> bool:
            rows = await self.ledger_rows(
                "SELECT count(*) AS n FROM calls WHERE tenant_id = $1 AND correction <> 0",
                TENANT)
            return int(rows[0]["n"]) >= corrections

        await eventually(written, within, f"{corrections} corrections in the ledger")

    def expected_balances(self, records: list[CallRecord]) -> dict[str, int]:
        spent: dict[str, int] = defaultdict(int)
        for r in records:
            spent[r.spec.account] += expected_cost(r)
        return {acc: self.opening[acc] - spent[acc] for acc in self.opening}


@asynccontextmanager
async def running_stack(
    redis_url: str, database_url: str, accounts: dict[str, str], *,
    engine: dict[str, Any] | None = None, charging: dict[str, Any] | None = None,
    fastagi: dict[str, Any] | None = None, ami: dict[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    """``accounts``: id -> opening balance (decimal string, major units)."""
    csv = "account_id,kind,credit_limit,opening_balance,status\n" + "".join(
        f"{acc},prepaid,0,{amount},active\n" for acc, amount in accounts.items())
    settings = Settings(
        redis_url=redis_url, database_url=database_url, sweep_interval_s=0.2,
        catalog_refresh_s=0.5, **(engine or {}),
    )
    async with open_engine(settings) as eng:
        await load_tenant(eng, TenantData.from_text(
            tenant_id=TENANT, name="Tel", currency="USD", timezone="UTC", plan_id="p",
            rates=RATES, accounts=csv, pbx_key=None))
        agi_port = free_port()
        sim = Simulator(SimulatorConfig(agi=("127.0.0.1", agi_port), users={"charging": SECRET},
                                        agi_timeout_s=10.0, record_events=False))
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        stack: Stack | None = None
        await sim.start()
        try:
            config = PbxConfig(
                name="sim", tenant=TENANT,
                ami=AmiConfig(**{"host": "127.0.0.1", "port": sim.ami_port,
                                 "username": "charging", "secret": SECRET,
                                 "ping_interval_s": 1.0, "ping_timeout_s": 1.0,
                                 "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, **(ami or {})}),
                fastagi=FastAgiConfig(host="127.0.0.1", port=agi_port, **(fastagi or {})),
                charging=ChargingConfig(**{"cdr_wait_s": 0.3, "gap_cdr_wait_s": 3.0,
                                           "extend_ahead_s": 2.0, "topup_poll_s": 1.0,
                                           **(charging or {})}),
            )
            tasks.append(asyncio.create_task(eng.run_background(stop)))
            stack = Stack(eng, sim, config, {a: parse_amount(v) for a, v in accounts.items()})
            await stack.start_connector()
            yield stack
        finally:
            if stack is not None:
                await stack.stop_connector()
            stop.set()
            await sim.close()
            with suppress(TimeoutError):
                async with asyncio.timeout(20):
                    await asyncio.gather(*tasks, return_exceptions=True)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
