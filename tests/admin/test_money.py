"""Top-ups, withdrawals, adjustments: exactly once per Idempotency-Key, audited, in the ledger."""

from __future__ import annotations

import asyncio
import json

from tests.admin.conftest import Api, World, problem

A1 = "/v1/tenants/acme/accounts/a1"


async def balance(world: World, account: str = "a1") -> str:
    r = await world.a.admin.get(f"/v1/tenants/acme/accounts/{account}/balance")
    assert r.status_code == 200, r.text
    return str(r.json()["balance"])


async def test_concurrent_topups_with_one_key_credit_once(api: Api, world: World) -> None:
    agent = world.a.clients["agent"]
    body = {"amount": "7.25", "method": "card", "reference": "txn-991"}

    async def topup() -> tuple[int, dict[str, object]]:
        r = await agent.post(f"{A1}/topups", json=body, headers={"Idempotency-Key": "pay-1"})
        return r.status_code, r.json()

    results = await asyncio.gather(*(topup() for _ in range(25)))
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 24 + [201], statuses
    assert {r["balance_after"] for _, r in results} == {"17.25"}
    assert sum(not r["replayed"] for _, r in results) == 1
    assert await balance(world) == "17.25"
    # Postgres: one operation, one audit row, one ledger entry carrying the payment details
    pool = api.engine.pool
    assert await pool.fetchval(
        "SELECT count(*) FROM money_operations WHERE tenant_id = 'acme' AND idem_key = 'pay-1'"
    ) == 1
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'account.topup'"
        " AND after->>'idempotency_key' = 'pay-1'"
    ) == 1
    await api.settle()
    rows = await pool.fetch(
        "SELECT amount, extra FROM ledger_entries WHERE tenant_id = 'acme' AND account_id = 'a1'"
        " AND kind = 'topup' AND idem_key = 'topup:pay-1'"
    )
    assert len(rows) == 1 and rows[0]["amount"] == 7_250_000
    extra = json.loads(rows[0]["extra"])
    assert extra["method"] == "card" and extra["reference"] == "txn-991"
    assert extra["by"] == world.a.key_ids["agent"]


async def test_a_key_reused_for_another_request_is_refused(api: Api, world: World) -> None:
    admin = world.a.admin
    h = {"Idempotency-Key": "k-1"}
    r = await admin.post(f"{A1}/topups", json={"amount": "1.00", "method": "cash"}, headers=h)
    assert r.status_code == 201, r.text
    problem(await admin.post(f"{A1}/topups", json={"amount": "2.00", "method": "cash"},
                             headers=h), 409, "idempotency_key_reused")
    problem(await admin.post("/v1/tenants/acme/accounts/a2/topups",
                             json={"amount": "1.00", "method": "cash"}, headers=h),
            409, "idempotency_key_reused")
    problem(await admin.post(f"{A1}/adjustments", json={"amount": "1.00", "reason": "x"},
                             headers=h), 409, "idempotency_key_reused")
    assert await balance(world) == "11.00"
    # the same request again is a replay, even after Redis forgot the key
    await api.engine.redis.flushall()
    r = await admin.post(f"{A1}/topups", json={"amount": "1.00", "method": "cash"}, headers=h)
    assert r.status_code == 200 and r.json()["replayed"] is True


async def test_withdrawal_beyond_available_funds_is_refused(api: Api, world: World) -> None:
    admin = world.a.admin
    h = {"Idempotency-Key": "w-1"}
    body = problem(await admin.post(f"{A1}/withdrawals",
                                    json={"amount": "10.01", "reason": "refund"}, headers=h),
                   409, "insufficient_funds")
    assert body["available"] == "10.00"
    assert await balance(world) == "10.00"
    # refused, so the same request may be retried under its key once funds allow it
    r = await admin.post(f"{A1}/topups", json={"amount": "0.01", "method": "cash"},
                         headers={"Idempotency-Key": "t-1"})
    assert r.status_code == 201, r.text
    r = await admin.post(f"{A1}/withdrawals", json={"amount": "10.01", "reason": "refund"},
                         headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == "-10.01" and r.json()["balance_after"] == "0.00"
    problem(await admin.post(f"{A1}/withdrawals", json={"amount": "0.01", "reason": "x"},
                             headers={"Idempotency-Key": "w-2"}), 409, "insufficient_funds")


async def test_adjustments_need_a_reason_and_move_both_ways(api: Api, world: World) -> None:
    admin = world.a.admin
    problem(await admin.post(f"{A1}/adjustments", json={"amount": "-1.00"},
                             headers={"Idempotency-Key": "adj-0"}), 422, "invalid_request")
    problem(await admin.post(f"{A1}/adjustments", json={"amount": "0", "reason": "x"},
                             headers={"Idempotency-Key": "adj-0"}), 422, "invalid_request")
    for key, amount in (("adj-1", "-2.50"), ("adj-2", "+0.75")):
        r = await admin.post(f"{A1}/adjustments", json={"amount": amount, "reason": "goodwill"},
                             headers={"Idempotency-Key": key})
        assert r.status_code == 201, r.text
    assert await balance(world) == "8.25"
    audit = (await admin.get("/v1/tenants/acme/audit?action=account.adjust")).json()["items"]
    assert [(a["before"]["balance"], a["after"]["balance"]) for a in audit] == [
        (7_500_000, 8_250_000), (10_000_000, 7_500_000),
    ]
    assert all(a["key_id"] == world.a.key_ids["tenant_admin"] for a in audit)


async def test_bad_money_requests_get_clear_errors(api: Api, world: World) -> None:
    admin = world.a.admin
    ok = {"amount": "1.00", "method": "cash"}
    problem(await admin.post(f"{A1}/topups", json=ok), 422, "invalid_request")  # no key
    for bad in ({"amount": 1, "method": "cash"}, {"amount": "1.1234567", "method": "cash"},
                {"amount": "-1.00", "method": "cash"}, {"amount": "0", "method": "cash"},
                {"amount": "1.00", "method": "bitcoin"}, {**ok, "extra": 1}):
        problem(await admin.post(f"{A1}/topups", json=bad, headers={"Idempotency-Key": "b"}),
                422, "invalid_request")
    problem(await admin.post(f"{A1}/topups", json=ok, headers={"Idempotency-Key": "a b"}),
            422, "invalid_request")
    problem(await admin.post("/v1/tenants/acme/accounts/nope/topups", json=ok,
                             headers={"Idempotency-Key": "c"}), 404, "not_found")
    r = await admin.post(f"{A1}/topups", content=b"amount=1", headers={
        "Idempotency-Key": "d", "Content-Type": "application/x-www-form-urlencoded"})
    problem(r, 415, "unsupported_media_type")
    assert await balance(world) == "10.00"


async def test_roles_for_money(api: Api, world: World) -> None:
    agent, ops = world.a.clients["agent"], world.a.clients["ops"]
    h = {"Idempotency-Key": "r-1"}
    problem(await agent.post(f"{A1}/withdrawals", json={"amount": "1.00", "reason": "x"},
                             headers=h), 403, "forbidden")
    problem(await agent.post(f"{A1}/adjustments", json={"amount": "1.00", "reason": "x"},
                             headers=h), 403, "forbidden")
    problem(await ops.post(f"{A1}/topups", json={"amount": "1.00", "method": "cash"},
                           headers=h), 403, "forbidden")
    assert (await agent.get(f"{A1}/balance")).status_code == 200
    assert (await ops.get(f"{A1}/ledger")).status_code == 200


async def test_ledger_history_pages_and_filters(api: Api, world: World) -> None:
    admin = world.a.admin
    for i in range(5):
        r = await admin.post(f"{A1}/topups", json={"amount": f"{i + 1}.00", "method": "online"},
                             headers={"Idempotency-Key": f"l-{i}"})
        assert r.status_code == 201
    await api.settle()
    seen: list[int] = []
    cursor = None
    while True:
        url = f"{A1}/ledger?kind=topup&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await admin.get(url)).json()
        seen += [e["seq"] for e in page["items"]]
        assert all(e["kind"] == "topup" for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and seen == sorted(seen, reverse=True)
    first = (await admin.get(f"{A1}/ledger?kind=topup&limit=1")).json()["items"][0]
    assert first["amount"] == "5.00" and first["balance_after"] == "25.00"
    assert first["extra"]["method"] == "online"
    # date filters: nothing before 2000, everything before 9000
    assert (await admin.get(f"{A1}/ledger?to=2000-01-01T00:00:00Z")).json()["items"] == []
    everything = (await admin.get(f"{A1}/ledger?from=2000-01-01T00:00:00Z&limit=500")).json()
    assert len(everything["items"]) >= 7  # provision + 6 top-ups
    problem(await admin.get(f"{A1}/ledger?from=2020-01-02T00:00:00Z&to=2020-01-01T00:00:00Z"),
            422)
    problem(await admin.get(f"{A1}/ledger?from=2020-01-01T00:00:00"), 422)  # no offset
    problem(await admin.get(f"{A1}/ledger?to=86400"), 422)  # not Unix seconds: RFC 3339 only
    problem(await admin.get(f"{A1}/ledger?cursor=garbage"), 422, "invalid_cursor")
