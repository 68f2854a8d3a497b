"""No key of tenant A can read or change anything of tenant B, on any route.

Every operation in the served OpenAPI is listed here (the test fails when a route is added
without a case). Tenant-scoped routes are called with each of A's keys on B's tenant and B's
ids, and on A's own tenant with ids that exist only in B: every call must answer 404 (never
403, which would confirm the id exists), and B's data must be exactly as before.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.admin.conftest import Api, World, eventually, problem

ROLES = ("tenant_admin", "ops", "agent")
JSON = "application/json"

# (method, path) -> body (JSON object, or CSV text for decks), for every tenant route.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/tenants/{tenant_id}/accounts"): {"account_id": "new1"},
    ("PATCH", "/v1/tenants/{tenant_id}/accounts/{account_id}"): {"name": "taken over"},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/status"):
        {"status": "suspended", "reason": "x"},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/close"): {"reason": "x"},
    ("PUT", "/v1/tenants/{tenant_id}/accounts/{account_id}/auto-topup"): {"enabled": False},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/topups"):
        {"amount": "1.00", "method": "cash"},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/withdrawals"):
        {"amount": "1.00", "reason": "x"},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/adjustments"):
        {"amount": "-1.00", "reason": "x"},
    ("PATCH", "/v1/tenants/{tenant_id}"): {"name": "taken over"},
    ("POST", "/v1/tenants/{tenant_id}/keys"): {"role": "ops"},
    ("POST", "/v1/tenants/{tenant_id}/keys/{key_id}/rotate"): {"grace_seconds": 0},
    ("POST", "/v1/tenants/{tenant_id}/rate-plans"): {"plan_id": "p2"},
    ("PATCH", "/v1/tenants/{tenant_id}/rate-plans/{plan_id}"): {"name": "x"},
    ("POST", "/v1/tenants/{tenant_id}/rate-plans/{plan_id}/rates"):
        {"prefix": "33", "price_per_minute": "0.10"},
    ("PUT", "/v1/tenants/{tenant_id}/rate-plans/{plan_id}/rates/{rate_id}"):
        {"prefix": "33", "price_per_minute": "0.10"},
    ("PUT", "/v1/tenants/{tenant_id}/rate-plans/{plan_id}/deck"):
        "prefix,price_per_minute\n9,9.00\n",
    ("POST", "/v1/tenants/{tenant_id}/pricing"):
        {"destination": "+14155550100", "account_id": "b1"},
}
# Routes not under a tenant: what a tenant key gets there.
UNSCOPED = {
    ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/v1/me"),
    ("GET", "/v1/tenants"), ("POST", "/v1/tenants"), ("GET", "/v1/audit"),
    ("GET", "/v1/platform/keys"), ("POST", "/v1/platform/keys"),
    ("POST", "/v1/platform/keys/{key_id}/rotate"), ("POST", "/v1/platform/keys/{key_id}/revoke"),
}


def operations(api: Api) -> set[tuple[str, str]]:
    ops = set()
    for path, item in api.app.openapi()["paths"].items():
        for method in item:
            ops.add((method.upper(), path))
    return ops


async def call(
    client: httpx.AsyncClient, method: str, template: str, ids: dict[str, str]
) -> httpx.Response:
    path = template.format(**{k: v for k, v in ids.items() if "{" + k + "}" in template})
    body = BODIES.get((method, template))
    headers = {"Idempotency-Key": f"x-{next(_keys)}"}
    if isinstance(body, str):
        return await client.request(method, path, content=body,
                                    headers={**headers, "Content-Type": "text/csv"})
    if body is not None:
        return await client.request(method, path, json=body, headers=headers)
    return await client.request(method, path, headers=headers)


_keys = itertools.count()


async def snapshot(world: World, api: Api) -> dict[str, Any]:
    """Everything of tenant B, read with B's own key, plus B's rows in the database."""
    b = world.b.admin
    out: dict[str, Any] = {}
    for path in ("/v1/tenants/zeta", "/v1/tenants/zeta/accounts", "/v1/tenants/zeta/keys",
                 "/v1/tenants/zeta/rate-plans", "/v1/tenants/zeta/rate-plans/std/rates",
                 "/v1/tenants/zeta/alerts", "/v1/tenants/zeta/audit?limit=500"):
        r = await b.get(path)
        assert r.status_code == 200, (path, r.text)
        out[path] = r.json()
    r = await b.get("/v1/tenants/zeta/rate-plans/std/deck")
    out["deck"] = r.text
    pool = api.engine.pool
    for table in ("accounts", "account_details", "money_operations", "alerts", "rate_plans",
                  "api_keys", "pbx_keys", "audit_log", "account_status_history"):
        rows = await pool.fetch(f"SELECT * FROM {table} WHERE tenant_id = 'zeta'")
        out[table] = sorted(map(str, (dict(r) for r in rows)))
    return out


async def foreign_ids(api: Api, world: World) -> dict[str, str]:
    """Ids that exist in tenant B only: an alert, a rate, a key, accounts."""
    b = world.b.admin
    r = await b.patch("/v1/tenants/zeta/accounts/b2", json={"low_balance_thresholds": ["50.00"]})
    assert r.status_code == 200, r.text

    async def alerted() -> bool:
        r = await b.get("/v1/tenants/zeta/alerts")
        return bool(r.json()["items"])

    await eventually(alerted, 5, "B's low-balance alert to be stored")
    alert_id = (await b.get("/v1/tenants/zeta/alerts")).json()["items"][0]["id"]
    rates = (await b.get("/v1/tenants/zeta/rate-plans/std/rates")).json()["items"]
    return {
        "tenant_id": "zeta", "account_id": "b1", "plan_id": "std",
        "key_id": world.b.key_ids["ops"], "rate_id": str(rates[0]["id"]),
        "alert_id": str(alert_id),
    }


async def test_every_route_hides_other_tenants(api: Api, world: World) -> None:
    ops = operations(api)
    scoped = {op for op in ops if op[1].startswith("/v1/tenants/{tenant_id}")}
    assert ops == scoped | UNSCOPED, "a route has no cross-tenant case: " + str(
        ops - scoped - UNSCOPED
    )
    ids = await foreign_ids(api, world)
    # A's ids where a path needs one of A's own (so only the foreign id can be the reason)
    own_rates = (await world.a.admin.get("/v1/tenants/acme/rate-plans/std/rates")).json()
    before = await snapshot(world, api)
    checked = 0
    for role in ROLES:
        client = world.a.clients[role]
        for method, template in sorted(scoped):
            # 1. B's tenant in the path
            r = await call(client, method, template, ids)
            problem(r, 404, "not_found")
            checked += 1
            # 2. A's own tenant, with an id that exists only in B
            foreign = [k for k in ("account_id", "key_id", "rate_id", "alert_id")
                       if "{" + k + "}" in template]
            if not foreign and (method, template) != ("POST", "/v1/tenants/{tenant_id}/pricing"):
                continue
            own = {**ids, "tenant_id": "acme", "rate_id": ids["rate_id"]}
            if "{rate_id}" not in template:
                own["rate_id"] = str(own_rates["items"][0]["id"])
            r = await call(client, method, template, own)
            assert r.status_code in (403, 404), (role, method, template, r.status_code, r.text)
            if r.status_code == 403:  # the role may not use the route at all, whatever the id
                problem(r, 403, "forbidden")
                r2 = await call(client, method, template, {**own, **_a_ids(world)})
                assert r2.status_code == 403, (role, method, template, r2.text)
            checked += 1
    assert checked > 3 * len(scoped)
    assert await snapshot(world, api) == before


def _a_ids(world: World) -> dict[str, str]:
    return {"account_id": "a1", "key_id": world.a.key_ids["ops"]}


async def test_unscoped_routes_show_a_tenant_key_only_itself(api: Api, world: World) -> None:
    for role in ROLES:
        c = world.a.clients[role]
        r = await c.get("/v1/tenants")
        assert [t["tenant_id"] for t in r.json()["items"]] == ["acme"]
        r = await c.get("/v1/me")
        assert r.json() == {"key_id": world.a.key_ids[role], "role": role, "tenant_id": "acme"}
        problem(await c.post("/v1/tenants", json={"tenant_id": "x", "currency": "USD"}), 403)
        problem(await c.get("/v1/audit"), 403)
        problem(await c.get("/v1/platform/keys"), 403)
        problem(await c.post("/v1/platform/keys", json={}), 403)
        problem(await c.post(f"/v1/platform/keys/{world.b.key_ids['ops']}/rotate"), 403)
        problem(await c.post(f"/v1/platform/keys/{world.b.key_ids['ops']}/revoke"), 403)
        for path in ("/health", "/ready", "/metrics"):
            assert (await c.get(path)).status_code == 200
    # The metrics page carries no tenant data
    text = (await world.a.admin.get("/metrics")).text
    assert "zeta" not in text and "b1" not in text


async def test_a_pbx_key_is_refused_by_the_admin_api(api: Api, world: World) -> None:
    pbx = world.a.clients["pbx"]
    problem(await pbx.get("/v1/tenants/acme/accounts"), 401, "unauthorized")
    problem(await pbx.get("/v1/me"), 401, "unauthorized")
