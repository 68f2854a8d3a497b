"""Plan changes through the API: the customer (with the account's self-service token) previews
and requests a bill plan change, staff approve it (applied at once, prorated by days, the
figures those the invoice uses) or reject it; one open request per account; the token reaches
only its own account's requests and nothing else, and staff keys do not work as tokens."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import httpx

from billing.amounts import format_minor
from billing.minor_units import half_up
from charging_engine.money import format_amount
from tests.admin.conftest import Api, World, problem

T = "/v1/tenants/acme"


async def setup(api: Api, world: World) -> dict[str, str]:
    admin, fin = world.a.admin, world.a.clients["finance"]
    await api.engine.pool.execute(
        "INSERT INTO bill_plans (tenant_id, plan_id, currency, name, plan_fee) VALUES"
        " ('acme', 'basic', 'USD', 'Basic', 1000), ('acme', 'pro', 'USD', 'Pro', 3000),"
        " ('acme', 'year', 'USD', 'Yearly', 9000)")  # fmt: skip
    await api.engine.pool.execute("UPDATE bill_plans SET period = 'yearly' WHERE plan_id ="
                                  " 'year'")  # fmt: skip
    tokens = {}
    for acct in ("p1", "p2"):
        r = await admin.post(f"{T}/accounts", json={"account_id": acct, "kind": "postpaid",
                                                    "credit_limit": "100.00",
                                                    "rate_plan_id": "std"})  # fmt: skip
        assert r.status_code == 201, r.text
        assert (await fin.post(f"{T}/accounts/{acct}/billing",
                               json={"plan_id": "basic"})).status_code == 201
        r = await admin.post(f"{T}/accounts/{acct}/self-service-tokens")
        assert r.status_code == 201, r.text
        tokens[acct] = r.json()["token"]
    return tokens


def as_customer(api: Api, token: str) -> httpx.AsyncClient:
    return api.client(token)


async def test_customer_requests_staff_approve_and_the_change_applies(
    api: Api, finance_world: World
) -> None:
    world = finance_world
    tokens = await setup(api, world)
    me = as_customer(api, tokens["p1"])
    r = await me.get("/v1/self/plan-change-preview?plan_id=pro&effective=now")
    assert r.status_code == 200, r.text
    p = r.json()
    start, end = date.fromisoformat(p["period_start"]), date.fromisoformat(p["period_end"])
    today = date.fromisoformat(p["effective_on"])
    days, left = (end - start).days, (end - today).days
    expected = half_up(Fraction(1000 * (days - left), days)) + half_up(Fraction(3000 * left,
                                                                                days))
    assert p["fees_with_change"] == format_minor(expected, "USD")
    assert p["current_fees"] == "10.00" and p["next_period_fees"] == "30.00"
    assert p["difference"] == format_minor(expected - 1000, "USD")
    assert p["carried_balance"] == format_amount(0, "USD")  # nothing prepaid on p1

    r = await me.post("/v1/self/plan-change-requests", json={"plan_id": "pro",
                                                             "effective": "now"})
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["state"] == "requested" and req["requested_by"] == "customer"
    assert req["preview"]["fees_with_change"] == expected
    problem(await me.post("/v1/self/plan-change-requests", json={"plan_id": "pro"}), 409)

    fin = world.a.clients["finance"]
    listed = (await fin.get(f"{T}/plan-change-requests?state=requested")).json()["items"]
    assert [x["request_id"] for x in listed] == [req["request_id"]]
    r = await fin.post(f"{T}/plan-change-requests/{req['request_id']}/approve")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "applied"
    billing = (await fin.get(f"{T}/accounts/p1/billing")).json()
    assert billing["plan_id"] == "pro"
    problem(await fin.post(f"{T}/plan-change-requests/{req['request_id']}/approve"), 409)
    events = await api.engine.pool.fetch("SELECT type FROM webhook_events WHERE type LIKE"
                                         " 'plan_change.%' ORDER BY created_at")  # fmt: skip
    assert [e["type"] for e in events] == ["plan_change.requested", "plan_change.applied"]


async def test_rejects_cancels_and_refusals(api: Api, finance_world: World) -> None:
    world = finance_world
    tokens = await setup(api, world)
    me, other = as_customer(api, tokens["p1"]), as_customer(api, tokens["p2"])
    fin = world.a.clients["finance"]
    problem(await me.get("/v1/self/plan-change-preview?plan_id=basic"), 422)  # on it already
    problem(await me.get("/v1/self/plan-change-preview?plan_id=year"), 422)  # other period
    problem(await me.get("/v1/self/plan-change-preview?plan_id=nope"), 404)
    r = await me.post("/v1/self/plan-change-requests", json={"plan_id": "pro"})
    assert r.status_code == 201, r.text
    rid = r.json()["request_id"]
    assert r.json()["effective"] == "boundary"
    # p2's token does not reach p1's request; staff keys are no tokens; the token is no key
    problem(await other.post(f"/v1/self/plan-change-requests/{rid}/cancel"), 404)
    assert (await other.get("/v1/self/plan-change-requests")).json()["items"] == []
    problem(await world.a.admin.get("/v1/self/plan-change-requests"), 401)
    problem(await me.get(f"{T}/plan-change-requests"), 401)
    problem(await fin.post(f"{T}/plan-change-requests/{rid}/reject", json={}), 422)
    r = await fin.post(f"{T}/plan-change-requests/{rid}/reject", json={"reason": "contract"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    problem(await me.post(f"/v1/self/plan-change-requests/{rid}/cancel"), 409)
    r = await me.post("/v1/self/plan-change-requests", json={"plan_id": "pro"})
    rid2 = r.json()["request_id"]
    r = await me.post(f"/v1/self/plan-change-requests/{rid2}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert (await fin.get(f"{T}/accounts/p1/billing")).json()["plan_id"] == "basic"
    # a new token for p1: the old one stops working
    r = await world.a.admin.post(f"{T}/accounts/p1/self-service-tokens")
    problem(await me.get("/v1/self/plan-change-requests"), 401)
    assert (await as_customer(api, r.json()["token"]).get(
        "/v1/self/plan-change-requests")).status_code == 200
