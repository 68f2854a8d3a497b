"""PayPal and CCAvenue through the admin API against local stand-ins of their APIs: a pay link
for what an invoice owes, and the per-tenant webhook URL. For each gateway: a forged, stale or
tampered delivery changes nothing; twenty concurrent deliveries of one event and a replay
later allocate once; events in another order (PayPal: the capture's event before the order's
approval; CCAvenue: a failure before the success, an abort after it) settle the invoice once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from billing.secrets import generate_key
from charging_server.demo.ccavenue_standin import CCAvenueStandIn
from charging_server.demo.paypal_standin import PayPalStandIn, new_key
from tests.admin.conftest import Api, World
from tests.admin.test_gateways import count
from tests.admin.test_invoices import T, billed

PAYPAL_HOOK = "/v1/gateway-webhooks/paypal/acme"
CCAVENUE_HOOK = "/v1/gateway-webhooks/ccavenue/acme"


async def finalized(api: Api, world: World) -> str:
    invoice_id, _ = await billed(api, world)
    r = await world.a.clients["finance"].post(f"{T}/invoices/{invoice_id}/finalize")
    assert r.status_code == 200, r.text
    return invoice_id


async def configure(world: World, gateway: str, body: dict[str, str]) -> None:
    r = await world.a.clients["finance"].put(f"{T}/gateways/{gateway}", json=body)
    assert r.status_code == 200, r.text
    for secret in (body["api_key"], body["webhook_secret"]):
        assert secret not in r.text  # shown once: never returned
    assert r.json()["account_ref"] == body["account_ref"]


async def paypal_link(world: World, invoice_id: str) -> str:
    r = await world.a.clients["finance"].post(f"{T}/invoices/{invoice_id}/pay-link", json={
        "gateway": "paypal", "success_url": "https://acme.example/paid",
        "cancel_url": "https://acme.example/no"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["amount"] == "23.23"
    return str(r.json()["reference"])


async def to_paypal(world: World, event: tuple[bytes, dict[str, str]]) -> tuple[int, str]:
    body, headers = event
    r = await world.a.admin.post(PAYPAL_HOOK, content=body, headers=headers)
    return r.status_code, r.json().get("outcome", r.json().get("reason", ""))


async def invoice_status(world: World, invoice_id: str) -> str:
    r = await world.a.clients["finance"].get(f"{T}/invoices/{invoice_id}")
    return str(r.json()["status"])


@pytest.fixture
def secrets_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())


async def paypal_setup(api: Api, world: World, paypal: PayPalStandIn) -> str:
    invoice_id = await finalized(api, world)
    await configure(world, "paypal", {
        "api_key": paypal.client_secret, "webhook_secret": paypal.webhook_id,
        "account_ref": paypal.client_id, "base_url": paypal.base_url})  # fmt: skip
    return invoice_id


async def test_paypal_refuses_forged_stale_and_tampered_deliveries(
    api: Api, finance_world: World, secrets_key: None
) -> None:
    world = finance_world
    async with PayPalStandIn() as paypal:
        invoice_id = await paypal_setup(api, world, paypal)
        order = await paypal_link(world, invoice_id)
        assert paypal.orders[order]["purchase_units"][0]["amount"]["value"] == "23.23"
        paypal.approve(order)
        forged = paypal.approved_event(order, key=new_key())
        stale = paypal.approved_event(order, at=time.time() - 3600)
        other_hook = paypal.approved_event(order, webhook_id="WH-SOMEONE-ELSE")
        body, headers = paypal.approved_event(order)
        tampered = (body.replace(b"23.23", b"0.01"), headers)
        unsigned = (body, {"content-type": "application/json"})
        for bad in (forged, stale, other_hook, tampered, unsigned):
            assert await to_paypal(world, bad) == (400, "unverified")
        assert await count(api, "gateway_events") == 0 and await count(api, "payments") == 0
        assert all(o["status"] != "COMPLETED" for o in paypal.orders.values())  # not captured


async def test_paypal_twenty_deliveries_capture_and_pay_once(
    api: Api, finance_world: World, secrets_key: None
) -> None:
    world = finance_world
    async with PayPalStandIn() as paypal:
        invoice_id = await paypal_setup(api, world, paypal)
        order = await paypal_link(world, invoice_id)
        approved = paypal.approved_event(order)
        results = await asyncio.gather(*(to_paypal(world, approved) for _ in range(20)))
        assert all(status == 200 for status, _ in results)
        assert [o for _, o in results].count("payment") == 1
        assert await count(api, "payments") == 1
        assert await invoice_status(world, invoice_id) == "paid"
        assert paypal.orders[order]["status"] == "COMPLETED"
        # PayPal's own capture event afterwards, and a replay of the approval: nothing more
        assert await to_paypal(world, paypal.capture_completed_event(order)) == (200, "payment")
        assert (await to_paypal(world, approved))[0] == 200
        assert await count(api, "payments") == 1
        amount = await api.engine.pool.fetchval("SELECT amount FROM payments")
        assert amount == 2323


async def test_paypal_capture_event_before_the_approval_settles_once(
    api: Api, finance_world: World, secrets_key: None
) -> None:
    world = finance_world
    async with PayPalStandIn() as paypal:
        invoice_id = await paypal_setup(api, world, paypal)
        order = await paypal_link(world, invoice_id)
        approved = paypal.approved_event(order)  # sent first, delivered last
        captured = paypal.capture_completed_event(order)  # someone captured at PayPal
        assert await to_paypal(world, captured) == (200, "payment")
        assert (await to_paypal(world, approved))[0] == 200  # ORDER_ALREADY_CAPTURED: same one
        assert await count(api, "payments") == 1
        assert await invoice_status(world, invoice_id) == "paid"


async def ccavenue_setup(api: Api, world: World, cc: CCAvenueStandIn) -> tuple[str, str]:
    invoice_id = await finalized(api, world)
    await configure(world, "ccavenue", {
        "api_key": cc.access_code, "webhook_secret": cc.working_key,
        "account_ref": cc.merchant_id, "base_url": cc.base_url})  # fmt: skip
    r = await world.a.clients["finance"].post(f"{T}/invoices/{invoice_id}/pay-link", json={
        "gateway": "ccavenue", "success_url": "https://acme.example/paid",
        "cancel_url": "https://acme.example/no"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["url"].startswith(cc.base_url + "/pay/")
    return invoice_id, str(r.json()["reference"])


async def to_ccavenue(world: World, body: bytes) -> tuple[int, str]:
    r = await world.a.admin.post(CCAVENUE_HOOK, content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    return r.status_code, r.json().get("outcome", r.json().get("reason", ""))


async def test_ccavenue_refuses_forged_stale_and_tampered_responses(
    api: Api, finance_world: World, secrets_key: None
) -> None:
    world = finance_world
    async with CCAvenueStandIn() as cc:
        _, order = await ccavenue_setup(api, world, cc)
        forged = cc.response(order, working_key="FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF")
        stale = cc.response(order, at=datetime.now(UTC) - timedelta(days=2))
        genuine = cc.paid(order)
        swapped = genuine.replace(f"orderNo={order}".encode(), b"orderNo=bl0000")
        flipped = genuine[:20] + (b"0" if genuine[20:21] != b"0" else b"1") + genuine[21:]
        for bad in (forged, stale, swapped, flipped, b"encResp=zz&orderNo=x", b""):
            assert await to_ccavenue(world, bad) == (400, "unverified")
        assert await count(api, "gateway_events") == 0 and await count(api, "payments") == 0


async def test_ccavenue_twenty_deliveries_and_reordered_statuses_pay_once(
    api: Api, finance_world: World, secrets_key: None
) -> None:
    world = finance_world
    async with CCAvenueStandIn() as cc:
        invoice_id, order = await ccavenue_setup(api, world, cc)
        failed = cc.response(order, status="Failure")  # a first card declined
        assert await to_ccavenue(world, failed) == (200, "ignored")
        paid = cc.paid(order)
        results = await asyncio.gather(*(to_ccavenue(world, paid) for _ in range(20)))
        assert sorted(o for _, o in results) == ["duplicate"] * 19 + ["payment"]
        assert await to_ccavenue(world, paid) == (200, "duplicate")  # replayed later
        aborted = cc.response(order, status="Aborted")  # arrives after the success
        assert await to_ccavenue(world, aborted) == (200, "ignored")
        assert await count(api, "payments") == 1
        assert await invoice_status(world, invoice_id) == "paid"
        p = await api.engine.pool.fetchrow("SELECT amount, currency, collected_by FROM payments")
        assert (p["amount"], p["currency"].strip(), p["collected_by"]) == (
            2323, "USD", "gateway:ccavenue")


async def test_stripe_link_helper_still_defaults_to_stripe(
    api: Api, finance_world: World, secrets_key: None
) -> None:
    """The pay-link body's gateway defaults to Stripe: without its credentials, a 404."""
    world = finance_world
    invoice_id = await finalized(api, world)
    r = await world.a.clients["finance"].post(f"{T}/invoices/{invoice_id}/pay-link", json={
        "success_url": "https://acme.example/paid", "cancel_url": "https://acme.example/no"})
    assert r.status_code == 404, r.text
