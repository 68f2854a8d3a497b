"""API keys: hashed, role-bound, rotated with a grace period, revoked at once; PBX keys work
on the real-time API only; the first platform key comes from the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from charging_engine.catalog import hash_key
from charging_engine.realtime.app import create_app
from tests.admin.conftest import Api, World, eventually, problem

KEYS = "/v1/tenants/acme/keys"


@pytest.fixture
async def realtime(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """The real-time (PBX) API of the same engine, without a key."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(
        api.engine.service)), base_url="http://rt") as c:
        yield c


async def pbx_balance(realtime: httpx.AsyncClient, secret: str) -> int:
    r = await realtime.get("/v1/accounts/a1/balance", headers={"Authorization": f"Bearer {secret}"})
    return r.status_code


async def test_secrets_are_shown_once_and_stored_hashed(api: Api, world: World) -> None:
    admin = world.a.admin
    r = await admin.post(KEYS, json={"role": "ops", "name": "night shift"})
    assert r.status_code == 201
    created = r.json()
    assert created["secret"].startswith("ce_") and len(created["secret"]) > 40
    listed = (await admin.get(KEYS)).json()["items"]
    assert all("secret" not in k for k in listed)
    assert {k["role"] for k in listed} == {"tenant_admin", "ops", "agent", "pbx"}
    got = (await admin.get(f"{KEYS}/{created['key_id']}")).json()
    assert got["name"] == "night shift" and got["state"] == "active" and "secret" not in got
    stored = await api.engine.pool.fetchval(
        "SELECT key_hash FROM api_keys WHERE key_id = $1", created["key_id"])
    assert stored == hash_key(created["secret"]) and created["secret"] not in stored
    problem(await admin.post(KEYS, json={"role": "platform"}), 422)
    problem(await world.a.clients["ops"].post(KEYS, json={"role": "ops"}), 403, "forbidden")
    problem(await world.a.clients["agent"].get(KEYS), 403, "forbidden")


async def test_revocation_is_immediate(
    api: Api, world: World, realtime: httpx.AsyncClient
) -> None:
    admin = world.a.admin
    ops = world.a.clients["ops"]
    assert (await ops.get("/v1/me")).status_code == 200
    r = await admin.post(f"{KEYS}/{world.a.key_ids['ops']}/revoke")
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    problem(await ops.get("/v1/me"), 401, "unauthorized")
    # a PBX key: the real-time API stops accepting it at once
    assert await pbx_balance(realtime, world.a.keys["pbx"]) == 200
    assert (await admin.post(f"{KEYS}/{world.a.key_ids['pbx']}/revoke")).status_code == 200
    assert await pbx_balance(realtime, world.a.keys["pbx"]) == 401
    problem(await admin.post(f"{KEYS}/{world.a.key_ids['pbx']}/rotate"), 409, "key_inactive")
    audit = (await admin.get("/v1/tenants/acme/audit?action=key.revoke")).json()["items"]
    assert len(audit) == 2


async def test_rotation_keeps_the_old_secret_for_its_grace_period(
    api: Api, world: World, realtime: httpx.AsyncClient
) -> None:
    admin = world.a.admin
    old_ops = world.a.clients["ops"]
    r = await admin.post(f"{KEYS}/{world.a.key_ids['ops']}/rotate", json={"grace_seconds": 3})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["rotated_from"] == world.a.key_ids["ops"] and new["role"] == "ops"
    r = await admin.post(f"{KEYS}/{world.a.key_ids['pbx']}/rotate", json={"grace_seconds": 3})
    new_pbx = r.json()["secret"]
    # both secrets work during the grace period...
    assert (await old_ops.get("/v1/me")).status_code == 200
    assert (await api.client(new["secret"]).get("/v1/me")).status_code == 200
    assert await pbx_balance(realtime, world.a.keys["pbx"]) == 200
    assert await pbx_balance(realtime, new_pbx) == 200
    old = (await admin.get(f"{KEYS}/{world.a.key_ids['ops']}")).json()
    assert old["state"] == "expiring" and old["expires_at"] is not None

    # ...and the old ones stop after it (PBX keys: revoked by the expiry loop)
    async def old_refused() -> bool:
        return (await old_ops.get("/v1/me")).status_code == 401 and await pbx_balance(
            realtime, world.a.keys["pbx"]) == 401

    await eventually(old_refused, 15, "the old secrets to expire")
    assert (await api.client(new["secret"]).get("/v1/me")).status_code == 200
    assert await pbx_balance(realtime, new_pbx) == 200
    # rotating without grace revokes the old secret at once
    r = await admin.post(f"{KEYS}/{new['key_id']}/rotate")
    assert r.status_code == 201
    problem(await api.client(new["secret"]).get("/v1/me"), 401)


async def test_a_tenant_admin_key_cannot_reach_platform_powers(api: Api, world: World) -> None:
    admin = world.a.admin
    problem(await admin.post("/v1/tenants", json={"tenant_id": "x", "currency": "USD"}), 403)
    problem(await admin.patch("/v1/tenants/zeta", json={"name": "mine"}), 404)
    r = await admin.patch("/v1/tenants/acme", json={"name": "Acme Ltd", "timezone": "Asia/Tokyo"})
    assert r.status_code == 200 and r.json()["timezone"] == "Asia/Tokyo"
    problem(await admin.patch("/v1/tenants/acme", json={"timezone": "Mars/Base"}), 422)
    problem(await world.a.clients["ops"].patch("/v1/tenants/acme", json={"name": "x"}), 403)


async def test_platform_keys(api: Api, platform: httpx.AsyncClient) -> None:
    r = await platform.post("/v1/platform/keys", json={"name": "backup"})
    assert r.status_code == 201 and r.json()["tenant_id"] is None
    backup = api.client(r.json()["secret"])
    assert (await backup.get("/v1/me")).json()["role"] == "platform"
    keys = (await platform.get("/v1/platform/keys")).json()["items"]
    assert len(keys) == 2
    r = await backup.post(f"/v1/platform/keys/{r.json()['key_id']}/revoke")
    assert r.status_code == 200
    problem(await backup.get("/v1/me"), 401)
    # the platform sees every tenant and may act on any
    await platform.post("/v1/tenants", json={"tenant_id": "t1", "currency": "GBP"})
    await platform.post("/v1/tenants", json={"tenant_id": "t2", "currency": "JPY"})
    tenants = (await platform.get("/v1/tenants")).json()["items"]
    assert [t["tenant_id"] for t in tenants] == ["t1", "t2"]
    r = await platform.post("/v1/tenants/t2/accounts", json={"account_id": "y1"})
    assert r.status_code == 201 and r.json()["balance"]["balance"] == "0"
    problem(await platform.get("/v1/tenants/t3/accounts"), 404, "not_found")
    problem(await platform.post("/v1/tenants", json={"tenant_id": "t1", "currency": "EUR"}),
            409, "tenant_exists")
    assert len((await platform.get("/v1/audit?limit=500")).json()["items"]) >= 5


async def test_the_first_platform_key_comes_from_the_command_line(
    api: Api, redis_url: str, database_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "charging_server", "create-platform-key", "--name", "operator",
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    secret = out.decode().strip().splitlines()[-1]
    me = (await api.client(secret).get("/v1/me")).json()
    assert me["role"] == "platform" and me["tenant_id"] is None
    audit = await api.engine.pool.fetchrow(
        "SELECT key_id, action FROM audit_log WHERE action = 'platform_key.create'")
    assert audit["key_id"] == "cli"
