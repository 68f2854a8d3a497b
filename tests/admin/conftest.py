"""The admin API on a real engine (private Redis, fresh migrated Postgres per test).

``api`` is the app with its background work (alert feed, SSE hub, key expiry) running;
``platform`` is an HTTP client with a platform key; ``world`` adds two tenants, each with
keys of every role, a rate plan and funded accounts, created through the API itself;
``finance_world`` is the same with a ``finance`` key in each tenant too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin_api.app import create_admin_app
from admin_api.keys import Role, create_key
from charging_engine.bootstrap import Engine, open_engine
from charging_engine.config import Settings

BUCKETS = 8
KEY_ROLES = ("tenant_admin", "ops", "agent", "pbx")
# The finance key is made in the database: the key routes do not offer the role yet.
WITH_FINANCE = (*KEY_ROLES, "finance")
RATES = """prefix,description,price_per_minute,first_increment,next_increment
1,USA,0.0600,1,1
44,UK,0.1200,60,1
"""


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, what: str, poll: float = 0.02
) -> None:
    """Wait until ``check()`` holds (an observable fact), failing after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(poll)


def settings(redis_url: str, database_url: str) -> Settings:
    return Settings(
        redis_url=redis_url, database_url=database_url, buckets=BUCKETS,
        consumer_name="admin-test", catalog_refresh_s=0.2,
    )


@pytest.fixture
async def engine(redis_url: str, database_url: str) -> AsyncIterator[Engine]:
    async with open_engine(settings(redis_url, database_url)) as e:
        yield e


@dataclass
class Api:
    engine: Engine
    app: FastAPI
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, secret: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        c = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://admin",
            headers=headers,
        )
        self.clients.append(c)
        return c

    async def settle(self) -> None:
        """Move every Redis ledger entry into Postgres now."""
        while await self.engine.settlement.drain_once() > 0:
            pass


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[Api]:
    app = create_admin_app(engine, background=False)
    stop = asyncio.Event()
    task = asyncio.create_task(app.state.background.run(stop))
    hub = app.state.admin.hub
    await eventually(lambda: _true(hub.listening.is_set()), 10, "the alert hub to LISTEN")
    a = Api(engine, app)
    try:
        yield a
    finally:
        stop.set()
        for c in a.clients:
            await c.aclose()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def _true(value: bool) -> bool:
    return value


@pytest.fixture
async def platform(api: Api) -> httpx.AsyncClient:
    _, secret = await create_key(api.engine.pool, None, Role.PLATFORM, "test", "test")
    return api.client(secret)


@dataclass
class TenantWorld:
    tenant_id: str
    keys: dict[str, str]  # role -> secret
    key_ids: dict[str, str]  # role -> key id
    clients: dict[str, httpx.AsyncClient]
    accounts: list[str]
    plan_id: str = "std"

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.clients["tenant_admin"]


async def make_tenant(
    api: Api, platform: httpx.AsyncClient, tenant_id: str, currency: str = "USD",
    accounts: tuple[str, ...] = ("a1", "a2"), funds: str = "10.00",
    roles: tuple[str, ...] = KEY_ROLES,
) -> TenantWorld:
    r = await platform.post("/v1/tenants", json={
        "tenant_id": tenant_id, "name": tenant_id.upper(), "currency": currency,
        "timezone": "Europe/London",
    })
    assert r.status_code == 201, r.text
    keys: dict[str, str] = {}
    ids: dict[str, str] = {}
    for role in roles:
        if role == Role.FINANCE.value:
            record, keys[role] = await create_key(api.engine.pool, tenant_id, Role.FINANCE,
                                                  "finance", "test")
            ids[role] = record.key_id
            continue
        r = await platform.post(f"/v1/tenants/{tenant_id}/keys", json={"role": role})
        assert r.status_code == 201, r.text
        keys[role], ids[role] = r.json()["secret"], r.json()["key_id"]
    clients = {role: api.client(secret) for role, secret in keys.items()}
    admin = clients["tenant_admin"]
    r = await admin.put(f"/v1/tenants/{tenant_id}/rate-plans/std/deck", content=RATES,
                        headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    for account in accounts:
        r = await admin.post(f"/v1/tenants/{tenant_id}/accounts",
                             json={"account_id": account, "rate_plan_id": "std"})
        assert r.status_code == 201, r.text
        r = await admin.post(
            f"/v1/tenants/{tenant_id}/accounts/{account}/topups",
            json={"amount": funds, "method": "cash"},
            headers={"Idempotency-Key": f"seed-{account}"},
        )
        assert r.status_code == 201, r.text
    return TenantWorld(tenant_id, keys, ids, clients, list(accounts))


@dataclass
class World:
    a: TenantWorld
    b: TenantWorld


@pytest.fixture
async def world(api: Api, platform: httpx.AsyncClient) -> World:
    return World(await make_tenant(api, platform, "acme"),
                 await make_tenant(api, platform, "zeta", "EUR", ("b1", "b2")))


@pytest.fixture
async def finance_world(api: Api, platform: httpx.AsyncClient) -> World:
    return World(await make_tenant(api, platform, "acme", roles=WITH_FINANCE),
                 await make_tenant(api, platform, "zeta", "EUR", ("b1", "b2"),
                                   roles=WITH_FINANCE))


def problem(r: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    if reason is not None:
        assert body["reason"] == reason, body
    return body
