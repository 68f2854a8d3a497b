"""Accounts: Postgres record and Redis balance kept in step; status history; closing."""

from __future__ import annotations

import asyncio

from tests.admin.conftest import Api, World, problem

ACCOUNTS = "/v1/tenants/acme/accounts"


async def test_create_read_update_and_the_engine_sees_it(api: Api, world: World) -> None:
    admin = world.a.admin
    body = {
        "account_id": "c1", "kind": "postpaid", "credit_limit": "25.00", "rate_plan_id": "std",
        "name": "Carol", "primary_mobile": "+447700900123", "email": "carol@example.com",
        "low_balance_thresholds": ["5.00", "1.00"],
    }
    r = await admin.post(ACCOUNTS, json=body)
    assert r.status_code == 201, r.text
    a = r.json()
    assert (a["kind"], a["currency"], a["credit_limit"], a["status"]) == (
        "postpaid", "USD", "25.00", "active")
    assert a["low_balance_thresholds"] == ["1.00", "5.00"]
    assert a["low_balance_hysteresis"] == "0.50"  # a tenth of the highest line by default
    assert a["balance"] == {"currency": "USD", "balance": "0.00", "credit_limit": "25.00",
                            "reserved": "0.00", "available": "25.00", "status": "active"}
    # the real-time path knows the account at once (catalogue refreshed, Redis provisioned)
    d = await api.engine.service.authorize("acme", "c1", "call-1", "+14155550100")
    assert d.allowed
    # an identical create is a retry: same account, 200; a different one is a conflict
    r = await admin.post(ACCOUNTS, json=body)
    assert r.status_code == 200 and r.json()["account_id"] == "c1"
    problem(await admin.post(ACCOUNTS, json={**body, "name": "Other"}), 409, "account_exists")
    # prepaid/postpaid switch and limits
    r = await admin.patch(f"{ACCOUNTS}/c1", json={"kind": "prepaid", "credit_limit": "0",
                                                  "email": None})
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["credit_limit"], r.json()["email"]) == (
        "prepaid", "0.00", None)
    assert r.json()["balance"]["credit_limit"] == "0.00"
    problem(await admin.patch(f"{ACCOUNTS}/c1", json={"kind": None}), 422)
    problem(await admin.patch(f"{ACCOUNTS}/c1", json={"credit_limit": "-1"}), 422)
    problem(await admin.patch(f"{ACCOUNTS}/c1", json={"rate_plan_id": "nope"}), 422)
    audit = (await admin.get("/v1/tenants/acme/audit?action=account.update")).json()["items"]
    assert audit[0]["before"]["kind"] == "postpaid" and audit[0]["after"]["kind"] == "prepaid"
    assert audit[0]["before"]["email"] == "carol@example.com" and audit[0]["after"]["email"] is None


async def test_minimum_balance_is_enforced(api: Api, world: World) -> None:
    admin = world.a.admin
    r = await admin.patch(f"{ACCOUNTS}/a1", json={"min_balance": "9.99"})
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["available"] == "0.01"
    problem(await admin.post(f"{ACCOUNTS}/a1/withdrawals", json={"amount": "0.02", "reason": "x"},
                             headers={"Idempotency-Key": "w"}), 409, "insufficient_funds")
    d = await api.engine.service.authorize("acme", "a1", "call-1", "+442079460000")
    assert not d.allowed and d.reason.value == "insufficient_funds"  # 0.12 first minute


async def test_status_changes_are_recorded_with_reasons(api: Api, world: World) -> None:
    admin = world.a.admin
    refusals = {"outgoing_suspended": "outgoing_suspended", "suspended": "account_suspended"}
    for n, (status, reason) in enumerate((("outgoing_suspended", "late payment"),
                                          ("active", "paid"), ("suspended", "fraud check"))):
        r = await admin.post(f"{ACCOUNTS}/a1/status", json={"status": status, "reason": reason})
        assert r.status_code == 200, r.text
        assert r.json()["balance"]["status"] == status  # Redis enforces it now
        if status in refusals:
            d = await api.engine.service.authorize("acme", "a1", f"call-{n}", "+14155550100")
            assert not d.allowed and d.reason.value == refusals[status]
    history = (await admin.get(f"{ACCOUNTS}/a1/status-history")).json()["items"]
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in history] == [
        ("active", "suspended", "fraud check"), ("outgoing_suspended", "active", "paid"),
        ("active", "outgoing_suspended", "late payment"), (None, "active", "created"),
    ]
    assert all(h["changed_by"] == world.a.key_ids["tenant_admin"] for h in history[:3])
    problem(await admin.post(f"{ACCOUNTS}/a1/status", json={"status": "terminated",
                                                            "reason": "x"}), 422)
    problem(await admin.post(f"{ACCOUNTS}/a1/status", json={"status": "active"}), 422)


async def test_closing_needs_a_zero_balance_and_is_final(api: Api, world: World) -> None:
    admin = world.a.admin
    body = problem(await admin.post(f"{ACCOUNTS}/a1/close", json={"reason": "customer left"}),
                   409, "balance_not_zero")
    assert body["balance"] == "10.00"
    r = await admin.post(f"{ACCOUNTS}/a1/withdrawals", json={"amount": "10.00", "reason": "refund"},
                         headers={"Idempotency-Key": "refund"})
    assert r.status_code == 201
    r = await admin.post(f"{ACCOUNTS}/a1/close", json={"reason": "customer left"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "terminated" and r.json()["closed_at"] is not None
    assert (await admin.post(f"{ACCOUNTS}/a1/close", json={"reason": "again"})).status_code == 200
    problem(await admin.patch(f"{ACCOUNTS}/a1", json={"name": "x"}), 409, "account_closed")
    problem(await admin.post(f"{ACCOUNTS}/a1/topups", json={"amount": "1.00", "method": "cash"},
                             headers={"Idempotency-Key": "late"}), 409, "account_closed")


async def test_concurrent_changes_reach_redis_in_postgres_order(api: Api, world: World) -> None:
    admin = world.a.admin
    limits = [f"{i}.00" for i in range(1, 21)]
    results = await asyncio.gather(*(
        admin.patch(f"{ACCOUNTS}/a1", json={"credit_limit": v}) for v in limits
    ))
    assert all(r.status_code == 200 for r in results)
    final = (await admin.get(f"{ACCOUNTS}/a1")).json()
    assert final["balance"]["credit_limit"] == final["credit_limit"]


async def test_listing_filters_and_pages(api: Api, world: World) -> None:
    admin = world.a.admin
    for i in range(5):
        r = await admin.post(ACCOUNTS, json={"account_id": f"p{i}", "kind": "postpaid"})
        assert r.status_code == 201
    seen, cursor = [], None
    while True:
        url = f"{ACCOUNTS}?kind=postpaid&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await admin.get(url)).json()
        seen += [a["account_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(5)]
    items = (await world.a.clients["agent"].get(f"{ACCOUNTS}?status=active")).json()["items"]
    assert {a["account_id"] for a in items} == {"a1", "a2", *seen}
    problem(await world.a.clients["agent"].post(ACCOUNTS, json={"account_id": "x"}), 403)
    problem(await admin.post(ACCOUNTS, json={"account_id": "bad id"}), 422)
    problem(await admin.post(ACCOUNTS, json={"account_id": "x", "email": "nope"}), 422)
    problem(await admin.post(ACCOUNTS, json={"account_id": "x", "currency": "usd"}), 422)


async def test_auto_topup_settings_are_stored(api: Api, world: World) -> None:
    admin = world.a.admin
    problem(await admin.put(f"{ACCOUNTS}/a1/auto-topup", json={"enabled": True}), 422)
    r = await admin.put(f"{ACCOUNTS}/a1/auto-topup",
                        json={"enabled": True, "threshold": "2.00", "amount": "20.00"})
    assert r.status_code == 200, r.text
    got = (await world.a.clients["agent"].get(f"{ACCOUNTS}/a1/auto-topup")).json()
    assert got == {"enabled": True, "threshold": "2.00", "amount": "20.00"}


async def test_a_lost_balance_record_is_repaired_by_saving(api: Api, world: World) -> None:
    admin = world.a.admin
    await api.engine.redis.flushall()
    problem(await admin.get(f"{ACCOUNTS}/a2/balance"), 409, "no_balance_record")
    r = await admin.patch(f"{ACCOUNTS}/a2", json={"name": "again"})
    assert r.status_code == 200 and r.json()["balance"]["balance"] == "0.00"
