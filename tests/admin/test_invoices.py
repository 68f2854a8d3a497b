"""Invoices through the admin API: enroll a postpaid account, bill its period, correct the draft
in review, finalize (number, 409 on any later change), documents, exports, webhooks."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pypdf
import pytest

from billing.clock import MovableClock
from billing.jobs import BillingJobs
from billing.secrets import generate_key
from tests.admin.conftest import Api, World, problem
from tests.billing.support import Ledger

T = "/v1/tenants/acme"


async def billed(api: Api, world: World) -> tuple[str, MovableClock]:
    """acme's postpaid account p1 enrolled now, two calls settled, its period billed."""
    admin = world.a.admin
    pool = api.engine.pool
    r = await admin.post(f"{T}/accounts", json={"account_id": "p1", "kind": "postpaid",
                                                "credit_limit": "100.00", "rate_plan_id": "std"})
    assert r.status_code == 201, r.text
    await pool.execute(
        "INSERT INTO bill_plans (tenant_id, plan_id, currency, name, plan_fee)"
        " VALUES ('acme', 'biz', 'USD', 'Business', 2000)")
    await pool.execute("INSERT INTO billing_settings (tenant_id, finalization, review_hours,"
                       " number_prefix) VALUES ('acme', 'review', 48, 'AC')")
    fin = world.a.clients["finance"]
    r = await fin.post(f"{T}/accounts/p1/billing", json={"plan_id": "biz"})
    assert r.status_code == 201, r.text
    b = r.json()
    ledger = Ledger(pool)
    start = (await pool.fetchval("SELECT open_starts_at FROM billing_accounts"))
    await ledger.call("acme", "p1", start + timedelta(hours=1), 1_234_567)
    await ledger.call("acme", "p1", start + timedelta(hours=2), 2_000_000)
    r = await fin.get(f"{T}/accounts/p1/unbilled")
    assert r.status_code == 200, r.text
    assert r.json()["usage_total"] == "3.234567"
    preview = (await fin.get(f"{T}/accounts/p1/invoice-preview")).json()
    clock = MovableClock(start)
    clock.set(start + timedelta(days=40))
    tick = await BillingJobs(pool, api.engine.store, clock=clock).tick()
    assert tick.run.invoices == 1, b
    (inv,) = (await fin.get(f"{T}/invoices?kind=invoice")).json()["items"]
    assert inv["total"] == preview["total"] == "23.23"
    return str(inv["invoice_id"]), clock


async def test_review_correct_finalize_and_refuse_changes(
    api: Api, finance_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = finance_world
    invoice_id, _ = await billed(api, world)
    fin, ops = world.a.clients["finance"], world.a.clients["ops"]
    url = f"{T}/invoices/{invoice_id}"
    r = await fin.get(url)
    assert r.json()["status"] == "draft" and r.json()["number"] is None
    # ops may read, not correct
    problem(await ops.post(f"{url}/corrections", json={
        "changes": [{"op": "remove", "position": 1}], "reason": "x"}), 403)
    r = await fin.post(f"{url}/corrections", json={"changes": [
        {"op": "add", "description": "Installation visit", "amount": "45.00"},
        {"op": "change", "position": 2, "amount": "19.99"},
    ], "reason": "agreed with the customer"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["total"] == "68.22"  # 3.23 usage + 19.99 fee + 45.00 visit
    assert [ln["manual"] for ln in got["lines"]] == [False, True, True]
    problem(await fin.post(f"{url}/corrections", json={"changes": [
        {"op": "add", "description": "x", "amount": "1.001"}], "reason": "r"}), 422)
    problem(await fin.post(f"{url}/corrections", json={"changes": [
        {"op": "remove", "position": 9}], "reason": "r"}), 422)
    problem(await fin.post(f"{url}/void", json={"reason": "r"}), 409)  # drafts are corrected
    r = await fin.post(f"{url}/finalize")
    assert r.status_code == 200, r.text
    assert r.json()["number"] == f"AC-{r.json()['issued_on'][:4]}-000001"
    # Immutable now: every changing route answers 409.
    for path, body in ((f"{url}/corrections", {"changes": [{"op": "remove", "position": 1}],
                                               "reason": "r"}),
                       (f"{url}/refresh", None)):
        problem(await fin.post(path, json=body), 409)
    assert (await fin.post(f"{url}/finalize")).json()["number"] == r.json()["number"]
    # Documents
    r = await fin.get(f"{url}/document.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    assert "AC-" in text and "68.22" in text
    r = await fin.get(f"{url}/document.html")
    assert r.status_code == 200 and "68.22" in r.text
    r = await fin.get(f"{url}/calls.csv")
    assert r.text.count("\n") == 3  # header + 2 calls
    # Exports and void
    issued = (await fin.get(url)).json()["issued_on"]
    until = (date.fromisoformat(issued) + timedelta(days=1)).isoformat()
    r = await fin.get(f"{T}/exports/invoices?from={issued}&to={until}&format=json")
    assert r.status_code == 200, r.text
    assert [x["total"] for x in r.json()] == ["68.22"]
    r = await fin.get(f"{T}/exports/invoice-lines?from={issued}&to={until}")
    assert r.headers["content-type"].startswith("text/csv") and r.text.count("\n") == 4
    r = await fin.post(f"{url}/void", json={"reason": "issued in error"})
    assert r.json()["status"] == "void"
    audit = await api.engine.pool.fetch(
        "SELECT action FROM audit_log WHERE target = $1 ORDER BY id", f"invoice:{invoice_id}")
    assert [a["action"] for a in audit] == ["invoice.correct", "invoice.finalize",
                                            "invoice.void"]


async def test_webhook_endpoints_show_the_secret_once(
    api: Api, finance_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    fin = finance_world.a.clients["finance"]
    monkeypatch.delenv("CE_SECRETS_KEY", raising=False)
    problem(await fin.post(f"{T}/webhook-endpoints", json={"url": "https://acc.example/h"}),
            503, "secrets_key_missing")
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    r = await fin.post(f"{T}/webhook-endpoints", json={"url": "https://acc.example/h",
                                                       "event_types": ["invoice.finalized"]},
                       headers={"Idempotency-Key": "ep-1"})
    assert r.status_code == 201 and r.json()["secret"].startswith("whsec_")
    ep = r.json()["endpoint_id"]
    again = await fin.post(f"{T}/webhook-endpoints", json={"url": "https://acc.example/h"},
                           headers={"Idempotency-Key": "ep-1"})
    assert again.status_code == 200 and again.json()["secret"] is None
    assert again.json()["endpoint_id"] == ep
    r = await fin.get(f"{T}/webhook-endpoints/{ep}")
    assert "secret" not in r.json()
    problem(await fin.post(f"{T}/webhook-endpoints", json={"url": "ftp://x/y"}), 422)
    r = await fin.post(f"{T}/webhook-endpoints/{ep}/rotate-secret")
    assert r.json()["secret"].startswith("whsec_")
    r = await fin.get(f"{T}/webhook-endpoints/{ep}/deliveries")
    assert r.json()["items"] == []
    assert (await fin.delete(f"{T}/webhook-endpoints/{ep}")).status_code == 204
