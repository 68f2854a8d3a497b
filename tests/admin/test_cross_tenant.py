"""No key of tenant A can read or change anything of tenant B, on any route.

Every operation in the served OpenAPI is listed here (the test fails when a route is added
without a case). Tenant-scoped routes are called with each of A's keys on B's tenant and B's
ids, and on A's own tenant with ids that exist only in B: every call must answer 404 (never
403, which would confirm the id exists), and B's data must be exactly as before.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from billing.secrets import generate_key
from billing.webhooks.outbox import enqueue
from notifications.channels.http_sms import SIGNATURE_HEADER, sign
from tests.admin.conftest import Api, World, eventually, problem

ROLES = ("tenant_admin", "ops", "agent", "finance")
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
    ("POST", "/v1/tenants/{tenant_id}/bill-plans"): {"plan_id": "bp2", "plan_fee": "1.00"},
    ("PATCH", "/v1/tenants/{tenant_id}/bill-plans/{bill_plan_id}"): {"plan_fee": "9.00"},
    ("POST", "/v1/tenants/{tenant_id}/tax-labels"): {"code": "T2", "name": "x", "rate": "1"},
    ("PATCH", "/v1/tenants/{tenant_id}/tax-labels/{tax_code}"): {"rate": "99"},
    ("POST", "/v1/tenants/{tenant_id}/discounts"):
        {"discount_id": "d2", "name": "x", "kind": "percent", "value": "50",
         "scope": "invoice", "account_id": "b1"},
    ("PATCH", "/v1/tenants/{tenant_id}/discounts/{discount_id}"): {"value": "99"},
    ("POST", "/v1/tenants/{tenant_id}/dids"): {"number": "4930000009"},
    ("PATCH", "/v1/tenants/{tenant_id}/dids/{did_number}"): {"monthly_fee": "9.00"},
    ("POST", "/v1/tenants/{tenant_id}/dids/{did_number}/assign"): {"account_id": "b2"},
    ("POST", "/v1/tenants/{tenant_id}/dids/{did_number}/release"): {},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/charges"):
        {"description": "taken over", "amount": "1.00"},
    ("PUT", "/v1/tenants/{tenant_id}/billing-settings"): {"seller_name": "taken over"},
    ("PATCH", "/v1/tenants/{tenant_id}/billing-settings"): {"footer": "taken over"},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/billing"): {"plan_id": "bp_z"},
    ("PATCH", "/v1/tenants/{tenant_id}/accounts/{account_id}/billing"): {"extensions": 3},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/billing/cycle-day"): {"bcd": 5},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/billing/kind"):
        {"kind": "prepaid", "effective": "boundary"},
    ("POST", "/v1/tenants/{tenant_id}/invoices/{invoice_id}/corrections"):
        {"changes": [{"op": "remove", "position": 1}], "reason": "x"},
    ("POST", "/v1/tenants/{tenant_id}/invoices/{invoice_id}/void"): {"reason": "x"},
    ("POST", "/v1/tenants/{tenant_id}/webhook-endpoints"): {"url": "https://x.example/h"},
    ("PATCH", "/v1/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}"): {"enabled": False},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/payments"):
        {"method": "cash", "amount": "1.00", "currency": "EUR"},
    ("POST", "/v1/tenants/{tenant_id}/payments/{payment_id}/reverse"): {"reason": "x"},
    ("POST", "/v1/tenants/{tenant_id}/payments/{payment_id}/refund"): {"reason": "x"},
    ("POST", "/v1/tenants/{tenant_id}/invoices/{invoice_id}/credit-notes"):
        {"lines": [{"position": 1, "amount": "0.10", "reason": "x"}]},
    ("PUT", "/v1/tenants/{tenant_id}/gateways/{gateway}"):
        {"api_key": "sk_test_taken_over", "webhook_secret": "whsec_taken_over"},
    ("POST", "/v1/tenants/{tenant_id}/invoices/{invoice_id}/pay-link"):
        {"success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/pay-link"):
        {"amount": "5.00", "success_url": "https://a.example/ok",
         "cancel_url": "https://a.example/no"},
    ("PUT", "/v1/tenants/{tenant_id}/dunning-ladder"):
        {"steps": [{"name": "taken", "min_days": 1, "status": "suspended"}]},
    ("PUT", "/v1/tenants/{tenant_id}/prepaid-policy"): {"validity_days": 1},
    ("PUT", "/v1/tenants/{tenant_id}/notification-settings"): {"sms_alternate": True},
    ("PUT", "/v1/tenants/{tenant_id}/notification-channels/{channel}"):
        {"host": "smtp.taken.example", "port": 25, "sender": "x@taken.example"},
    ("PUT", "/v1/tenants/{tenant_id}/notification-templates/{event}/{channel}/{part}/{language}"):
        {"source": "taken over"},
    ("POST", "/v1/tenants/{tenant_id}/notification-templates/preview"):
        {"event": "invoice.ready", "channel": "sms", "part": "body"},
    ("POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/plan-change-requests"):
        {"plan_id": "bp_z", "effective": "now"},
    ("POST", "/v1/tenants/{tenant_id}/plan-change-requests/{request_id}/reject"):
        {"reason": "taken over"},
    ("PUT", "/v1/tenants/{tenant_id}/accounts/{account_id}/payment-method"):
        {"customer_ref": "cus_taken", "method_ref": "pm_taken"},
    ("PUT", "/v1/tenants/{tenant_id}/collection-agents/{agent_id}"): {"name": "taken over"},
    ("PUT", "/v1/tenants/{tenant_id}/collection-presets"):
        {"presets": [{"code": "taken", "label": "x", "outcome": "collected"}]},
    ("POST", "/v1/tenants/{tenant_id}/collection-tasks"): {"account_id": "b1", "kind": "pickup"},
    ("POST", "/v1/tenants/{tenant_id}/collection-tasks/{task_id}/assign"): {"agent_id": None},
    ("POST", "/v1/tenants/{tenant_id}/collection-tasks/{task_id}/visits"):
        {"preset": "customer_absent"},
    ("POST", "/v1/tenants/{tenant_id}/collection-tasks/{task_id}/collections"):
        {"amount": "1.00", "method": "cash"},
    ("PUT", "/v1/tenants/{tenant_id}/inbound-settings"): {"destination": "+15550000999"},
    ("PUT", "/v1/tenants/{tenant_id}/inbound-keywords/{keyword}"): {"meaning": "help"},
}
# Query strings some routes need to get past validation.
QUERIES: dict[tuple[str, str], str] = {
    ("GET", "/v1/tenants/{tenant_id}/exports/invoices"): "?from=2020-01-01&to=2020-02-01",
    ("GET", "/v1/tenants/{tenant_id}/exports/invoice-lines"): "?from=2020-01-01&to=2020-02-01",
    ("GET", "/v1/tenants/{tenant_id}/reports/payments"): "?from=2020-01-01&to=2030-01-01",
    ("GET", "/v1/tenants/{tenant_id}/reports/collections"): "?from=2020-01-01&to=2020-12-31",
    ("GET", "/v1/tenants/{tenant_id}/accounts/{account_id}/plan-change-preview"):
        "?plan_id=bp_z2",
}
# The path parameters that name one of B's objects (checked on A's own tenant too).
FOREIGN = ("account_id", "key_id", "rate_id", "alert_id", "bill_plan_id", "tax_code",
           "discount_id", "did_number", "charge_id", "invoice_id", "endpoint_id", "delivery_id",
           "payment_id", "credit_note_id", "request_id", "notification_id", "task_id")
# Routes not under a tenant: what a tenant key gets there.
UNSCOPED = {
    ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/v1/me"),
    ("GET", "/v1/tenants"), ("POST", "/v1/tenants"), ("GET", "/v1/audit"),
    ("GET", "/v1/platform/keys"), ("POST", "/v1/platform/keys"),
    ("POST", "/v1/platform/keys/{key_id}/rotate"), ("POST", "/v1/platform/keys/{key_id}/revoke"),
    ("POST", "/v1/gateway-webhooks/{gateway}/{tenant_id}"),  # no key: the gateway's signature
    # the customer's self-service token only (its account is the scope): keys get a 401
    ("GET", "/v1/self/plan-change-preview"), ("POST", "/v1/self/plan-change-requests"),
    ("GET", "/v1/self/plan-change-requests"),
    ("POST", "/v1/self/plan-change-requests/{request_id}/cancel"),
    ("POST", "/v1/self/pickup-requests"),
    # no key: the tenant's HTTP SMS gateway signs them with its webhook secret
    ("POST", "/v1/sms-gateway/{tenant_id}/inbound"), ("POST", "/v1/sms-gateway/{tenant_id}/status"),
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
    path += QUERIES.get((method, template), "")
    body = BODIES.get((method, template))
    headers = {"Idempotency-Key": f"x-{next(_keys)}"}
    if isinstance(body, str):
        return await client.request(method, path, content=body,
                                    headers={**headers, "Content-Type": "text/csv"})
    if body is not None:
        return await client.request(method, path, json=body, headers=headers)
    return await client.request(method, path, headers=headers)


_keys = itertools.count()


@pytest.fixture
async def world(finance_world: World) -> World:
    """Both tenants with a finance key too."""
    return finance_world


async def snapshot(world: World, api: Api) -> dict[str, Any]:
    """Everything of tenant B, read with B's own key, plus B's rows in the database."""
    b = world.b.admin
    out: dict[str, Any] = {}
    for path in ("/v1/tenants/zeta", "/v1/tenants/zeta/accounts", "/v1/tenants/zeta/keys",
                 "/v1/tenants/zeta/rate-plans", "/v1/tenants/zeta/rate-plans/std/rates",
                 "/v1/tenants/zeta/alerts", "/v1/tenants/zeta/audit?limit=500",
                 "/v1/tenants/zeta/bill-plans", "/v1/tenants/zeta/tax-labels",
                 "/v1/tenants/zeta/discounts", "/v1/tenants/zeta/dids",
                 "/v1/tenants/zeta/accounts/b1/charges", "/v1/tenants/zeta/billing-settings",
                 "/v1/tenants/zeta/invoices", "/v1/tenants/zeta/webhook-endpoints",
                 "/v1/tenants/zeta/accounts/b1/billing", "/v1/tenants/zeta/payments",
                 "/v1/tenants/zeta/accounts/b1/receivables", "/v1/tenants/zeta/credit-notes",
                 "/v1/tenants/zeta/reports/aging"):
        r = await b.get(path)
        assert r.status_code == 200, (path, r.text)
        out[path] = r.json()
    r = await b.get("/v1/tenants/zeta/rate-plans/std/deck")
    out["deck"] = r.text
    pool = api.engine.pool
    for table in ("accounts", "account_details", "money_operations", "alerts", "rate_plans",
                  "api_keys", "pbx_keys", "audit_log", "account_status_history",
                  "bill_plans", "tax_labels", "discounts", "dids", "one_time_charges",
                  "billing_settings", "billing_accounts", "invoices", "webhook_endpoints",
                  "webhook_deliveries", "webhook_events", "account_plan_history", "payments",
                  "payment_allocations", "credit_notes", "dunning_ladders", "account_dunning",
                  "dunning_entries", "gateway_accounts", "gateway_events", "pay_links",
                  "prepaid_policies", "prepaid_expiries", "prepaid_dormancy",
                  "payment_methods", "auto_topup_attempts", "plan_change_requests",
                  "self_service_tokens", "notification_settings", "notification_channels",
                  "notification_templates", "notifications", "collection_agents",
                  "collection_presets", "collection_tasks", "collection_visits",
                  "inbound_settings", "inbound_keywords", "inbound_messages"):
        rows = await pool.fetch(f"SELECT * FROM {table} WHERE tenant_id = 'zeta'")
        out[table] = sorted(map(str, (dict(r) for r in rows)))
    return out


async def foreign_ids(api: Api, world: World) -> dict[str, str]:
    """Ids that exist in tenant B only: an alert, a rate, a key, accounts, and B's billing
    catalogue (a bill plan, a tax label, a discount, a DID, a one-time charge, settings)."""
    b = world.b.admin
    r = await b.patch("/v1/tenants/zeta/accounts/b2", json={"low_balance_thresholds": ["50.00"]})
    assert r.status_code == 200, r.text

    async def alerted() -> bool:
        r = await b.get("/v1/tenants/zeta/alerts")
        return bool(r.json()["items"])

    await eventually(alerted, 5, "B's low-balance alert to be stored")
    alert_id = (await b.get("/v1/tenants/zeta/alerts")).json()["items"][0]["id"]
    rates = (await b.get("/v1/tenants/zeta/rate-plans/std/rates")).json()["items"]
    billing = await _b_billing(b, api.engine.pool)
    # A's agent key is an agent of A's: it reaches the task routes, where B's task is not found
    r = await world.a.admin.put("/v1/tenants/acme/collection-agents/ga",
                                json={"name": "A", "key_id": world.a.key_ids["agent"]})
    assert r.status_code == 200, r.text
    return {
        "tenant_id": "zeta", "account_id": "b1", "plan_id": "std",
        "key_id": world.b.key_ids["ops"], "rate_id": str(rates[0]["id"]),
        "alert_id": str(alert_id), **billing,
    }


async def _b_billing(b: httpx.AsyncClient, pool: asyncpg.Pool) -> dict[str, str]:
    z = "/v1/tenants/zeta"
    for path, body in (
        ("/tax-labels", {"code": "VAT_Z", "name": "MwSt", "rate": "19"}),
        ("/bill-plans", {"plan_id": "bp_z", "plan_fee": "5.00", "tax_codes": ["VAT_Z"]}),
        ("/discounts", {"discount_id": "d_z", "name": "Z", "kind": "fixed", "value": "1.00",
                        "scope": "invoice", "plan_id": "bp_z"}),
        ("/dids", {"number": "4930000001", "monthly_fee": "2.00"}),
        ("/dids/4930000001/assign", {"account_id": "b1"}),
    ):
        r = await b.post(z + path, json=body)
        assert r.status_code in (200, 201), (path, r.text)
    assert (await b.put(z + "/billing-settings", json={"seller_name": "Zeta"})).status_code == 200
    r = await b.post(z + "/accounts/b1/charges", json={"description": "SIM", "amount": "3.00"})
    assert r.status_code == 201, r.text
    charge_id = r.json()["charge_id"]
    r = await b.post(z + "/accounts/b1/billing", json={"plan_id": "bp_z"})
    assert r.status_code == 201, r.text
    r = await b.post(z + "/webhook-endpoints", json={"url": "https://zeta.example/hook"})
    assert r.status_code == 201, r.text
    endpoint_id = r.json()["endpoint_id"]
    invoice_id, delivery_id = await _b_invoice(pool)
    r = await b.post(z + "/accounts/b1/payments", headers={"Idempotency-Key": "zeta-pay-1"},
                     json={"method": "cheque", "amount": "2.00", "currency": "EUR"})
    assert r.status_code == 201, r.text
    payment_id = r.json()["payment_id"]
    r = await b.put(z + "/dunning-ladder", json={"steps": [{"name": "z", "min_days": 3}]})
    assert r.status_code == 200, r.text
    r = await b.put(z + "/prepaid-policy", json={"validity_days": 90, "inactivate_after": 30})
    assert r.status_code == 200, r.text
    r = await b.put(z + "/accounts/b1/payment-method", json={"customer_ref": "cus_zeta",
                                                              "method_ref": "pm_zeta"})
    assert r.status_code == 200, r.text
    r = await b.post(z + "/bill-plans", json={"plan_id": "bp_z2", "plan_fee": "9.00"})
    assert r.status_code == 201, r.text
    r = await b.post(z + "/accounts/b1/plan-change-requests", json={"plan_id": "bp_z2"})
    assert r.status_code == 201, r.text
    request_id = r.json()["request_id"]
    assert (await b.post(z + "/accounts/b1/self-service-tokens")).status_code == 201
    assert (await b.put(z + "/notification-settings", json={"locale": "de_DE"})).status_code \
        == 200  # fmt: skip
    r = await b.put(z + "/notification-templates/invoice.ready/sms/body/en",
                    json={"source": "Zeta: {{ invoice_number }}"})
    assert r.status_code == 200, r.text
    notification_id = await pool.fetchval(
        "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
        " recipient, language, context, status, next_attempt_at, created_at) VALUES ('zeta',"
        " 'b1', 'z1', 'invoice.ready', 'sms', '+4915100000009', 'en', '{}', 'dead', now(),"
        " now()) RETURNING notification_id")  # fmt: skip
    r = await b.post(z + f"/invoices/{invoice_id}/finalize")
    assert r.status_code == 200, r.text
    r = await b.post(z + f"/invoices/{invoice_id}/credit-notes",
                     headers={"Idempotency-Key": "zeta-cn-1"},
                     json={"lines": [{"position": 1, "amount": "0.50", "reason": "goodwill"}]})
    assert r.status_code == 201, r.text
    credit_note_id = r.json()["credit_note_id"]
    r = await b.put(z + "/gateways/stripe", json={"api_key": "sk_test_zeta_secret_key",
                                                  "webhook_secret": "whsec_zeta_secret"})
    assert r.status_code == 200, r.text
    task_id = await _b_collections(b)
    await _b_inbound(b, pool)
    return {"payment_id": payment_id, "credit_note_id": credit_note_id, "gateway": "stripe",
            "task_id": task_id, "agent_id": "gz",
            "request_id": request_id, "notification_id": str(notification_id),
            "channel": "smtp", "keyword": "SALDO", "event": "invoice.ready", "part": "body",
            "language": "en",
            "bill_plan_id": "bp_z", "tax_code": "VAT_Z",
            "discount_id": "d_z", "did_number": "4930000001", "charge_id": charge_id,
            "invoice_id": invoice_id, "endpoint_id": endpoint_id, "delivery_id": str(delivery_id)}


async def _b_collections(b: httpx.AsyncClient) -> str:
    """B's collection agent (with B's agent key) and a task assigned to it, visited."""
    z = "/v1/tenants/zeta"
    me = (await b.get("/v1/tenants/zeta/keys")).json()["items"]
    agent_key = next(k["key_id"] for k in me if k["role"] == "agent")
    r = await b.put(z + "/collection-agents/gz", json={"name": "Z", "area": "z",
                                                       "key_id": agent_key})
    assert r.status_code == 200, r.text
    r = await b.post(z + "/collection-tasks", json={"account_id": "b1", "kind": "pickup",
                                                    "area": "z"})
    assert r.status_code == 201 and r.json()["agent_id"] == "gz", r.text
    task_id: str = r.json()["task_id"]
    r = await b.post(z + f"/collection-tasks/{task_id}/visits", json={"preset": "refused"})
    assert r.status_code == 201, r.text
    return task_id


async def _b_inbound(b: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    """B's inbound number, a keyword of B's, a text B received and B's HTTP SMS gateway."""
    z = "/v1/tenants/zeta"
    r = await b.put(z + "/inbound-settings", json={"destination": "+15550000777"})
    assert r.status_code == 200, r.text
    r = await b.put(z + "/inbound-keywords/saldo", json={"meaning": "balance", "language": "de"})
    assert r.status_code == 200, r.text
    await pool.execute(
        "INSERT INTO inbound_messages (tenant_id, source, number, destination, text, outcome,"
        " received_at) VALUES ('zeta', '+4915100000009', '+4915100000009', '+15550000777',"
        " 'SALDO', 'no_reply', now())")  # fmt: skip
    r = await b.put(z + "/notification-channels/http_sms", json={
        "url": "https://sms.zeta.example/send", "auth": "bearer", "token": "zeta-token",
        "sender": "Zeta",
        "webhook_secret": "zeta-webhook-secret-0123"})  # fmt: skip
    assert r.status_code == 200, r.text


async def _b_invoice(pool: asyncpg.Pool) -> tuple[str, int]:
    """A draft invoice of B's with one line, and a webhook delivery of B's."""
    invoice_id = "inv_" + "b" * 32
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO invoices (invoice_id, tenant_id, account_id, currency, issued_on,"
            " total, subtotal, inputs) VALUES ($1, 'zeta', 'b1', 'EUR', '2026-01-01', 100, 100,"
            " $2)", invoice_id, '{"currency": "EUR", "rounding": "per_line",'
            ' "credit_available": 0, "minimum_spend": 0, "minimum_spend_tax_codes": [],'
            ' "charges": [{"kind": "one_time", "description": "x", "amount": 100,'
            ' "tax_codes": [], "quantity": "1", "unit": "", "calls": 0, "seconds": 0,'
            ' "ref": null}], "discounts": [], "taxes": []}')
        await conn.execute(
            "INSERT INTO invoice_lines (invoice_id, position, kind, description, amount, net)"
            " VALUES ($1, 1, 'one_time', 'x', 100, 100)", invoice_id)
        await enqueue(conn, "zeta", "invoice.finalized", {"x": 1}, "zeta-1")
        delivery_id = await conn.fetchval(
            "SELECT delivery_id FROM webhook_deliveries WHERE tenant_id = 'zeta'")
    return invoice_id, int(delivery_id)


async def test_every_route_hides_other_tenants(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())  # B's webhook endpoint needs it
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
            foreign = [k for k in FOREIGN if "{" + k + "}" in template]
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


async def test_unscoped_routes_show_a_tenant_key_only_itself(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    r = await world.b.admin.put("/v1/tenants/zeta/notification-channels/http_sms", json={
        "url": "https://sms.zeta.example/send", "sender": "Zeta",
        "webhook_secret": "zeta-webhook-secret-0123"})
    assert r.status_code == 200, r.text
    now = int(datetime.now(UTC).timestamp())
    for role in ROLES:
        c = world.a.clients[role]
        r = await c.get("/v1/tenants")
        assert [t["tenant_id"] for t in r.json()["items"]] == ["acme"]
        r = await c.get("/v1/me")
        assert r.json() == {"key_id": world.a.key_ids[role], "role": role, "tenant_id": "acme"}
        problem(await c.post("/v1/tenants", json={"tenant_id": "x", "currency": "USD"}), 403)
        problem(await c.get("/v1/audit"), 403)
        problem(await c.get("/v1/self/plan-change-requests"), 401)  # a key is no customer token
        problem(await c.get("/v1/platform/keys"), 403)
        problem(await c.post("/v1/platform/keys", json={}), 403)
        problem(await c.post(f"/v1/platform/keys/{world.b.key_ids['ops']}/rotate"), 403)
        problem(await c.post(f"/v1/platform/keys/{world.b.key_ids['ops']}/revoke"), 403)
        for path in ("/health", "/ready", "/metrics"):
            assert (await c.get(path)).status_code == 200
        # B's gateway webhook: a key is no credential there, only Stripe's signature is
        r = await c.post("/v1/gateway-webhooks/stripe/zeta", content=b'{"id": "evt_x"}',
                         headers={"Content-Type": "application/json",
                                  "Stripe-Signature": "t=1,v1=00"})  # fmt: skip
        assert r.status_code in (400, 404), r.text
        # B's SMS gateway webhooks: neither a key nor a signature with another secret will do
        for hook in ("inbound", "status"):
            body = b'{"from": "+4915100000009", "to": "+15550000777", "text": "BALANCE",' \
                b' "message_id": "m1", "status": "delivered"}'  # fmt: skip
            r = await c.post(f"/v1/sms-gateway/zeta/{hook}", content=body, headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign("acme-webhook-secret-0123", now, body)})  # fmt: skip
            problem(r, 401, "unverified")
    assert await api.engine.pool.fetchval("SELECT count(*) FROM gateway_events") == 0
    assert await api.engine.pool.fetchval("SELECT count(*) FROM inbound_messages") == 0
    # The metrics page carries no tenant data
    text = (await world.a.admin.get("/metrics")).text
    assert "zeta" not in text and "b1" not in text


async def test_a_pbx_key_is_refused_by_the_admin_api(api: Api, world: World) -> None:
    pbx = world.a.clients["pbx"]
    problem(await pbx.get("/v1/tenants/acme/accounts"), 401, "unauthorized")
    problem(await pbx.get("/v1/me"), 401, "unauthorized")
