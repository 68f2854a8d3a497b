"""A funded ``ChargingService`` on the private Redis, and the real-time app and client on it.

Two tenants, so isolation can be tested: ``t1`` (key ``secret-t1``) with a funded account
``a1``, an empty ``poor`` and ``noplan`` without a rate plan; ``t2`` (key ``secret-t2``) with
``b1``. Rates: ``44`` at 0.06/min billed 60 then 1 s, ``1`` at 0.01/min billed per second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from charging_engine.balance.store import BalanceStore
from charging_engine.catalog import Account, Catalog, CatalogData, PbxKey, Tenant, hash_key
from charging_engine.rating.model import Rate, RatePlan
from charging_engine.realtime.app import create_app
from charging_engine.sessions.service import ChargingService

KEY_T1 = "secret-t1"
KEY_T2 = "secret-t2"
FUNDS = 10_000_000  # 10.00 USD in micros
NOW_MS = 1_700_000_000_000  # fixed engine clock: answer/end times are exact

RATE_UK = Rate(prefix="44", price_per_minute=60_000, first_increment=60, next_increment=1)
RATE_US = Rate(prefix="1", price_per_minute=10_000, first_increment=1, next_increment=1)


def catalog() -> Catalog:
    plan1 = RatePlan("std", "USD", (RATE_UK, RATE_US))
    plan2 = RatePlan("std", "EUR", (RATE_UK,))
    return Catalog(
        CatalogData(
            1,
            [Tenant("t1", "Tenant one", "USD"), Tenant("t2", "Tenant two", "EUR")],
            [
                Account("t1", "a1", "USD", "std"),
                Account("t1", "poor", "USD", "std"),
                Account("t1", "noplan", "USD", None),
                Account("t2", "b1", "EUR", "std"),
            ],
            [("t1", plan1), ("t2", plan2)],
            [PbxKey("t1", "k1", hash_key(KEY_T1)), PbxKey("t2", "k2", hash_key(KEY_T2))],
        )
    )


class Clock:
    """The engine's clock, moved by tests instead of sleeping."""

    def __init__(self, now_ms: int = NOW_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@dataclass
class Engine:
    service: ChargingService
    store: BalanceStore
    redis: aioredis.Redis
    clock: Clock


@pytest.fixture
async def engine(redis_url: str) -> AsyncIterator[Engine]:
    """A service on the flushed private Redis with ``a1`` and ``b1`` funded, ``poor`` at 0."""
    client = aioredis.Redis.from_url(redis_url)
    store = BalanceStore(client, 16)
    await store.load()
    clock = Clock()
    service = ChargingService(store, catalog(), clock=clock)
    for tenant, account, currency in (
        ("t1", "a1", "USD"),
        ("t1", "poor", "USD"),
        ("t1", "noplan", "USD"),
        ("t2", "b1", "EUR"),
    ):
        await store.provision(
            tenant, account, currency=currency, credit_limit=0, status="active", now_ms=1
        )
    for tenant, account in (("t1", "a1"), ("t2", "b1")):
        done = await store.credit(
            tenant, account, kind="topup", amount=FUNDS, idem_key="seed", extra={}, now_ms=1
        )
        assert done.status == "ok"
    try:
        yield Engine(service, store, client, clock)
    finally:
        await store.close()
        await client.aclose()


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return create_app(engine.service)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, authenticated as tenant ``t1``."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://engine",
        headers={"Authorization": f"Bearer {KEY_T1}"},
    ) as c:
        yield c
