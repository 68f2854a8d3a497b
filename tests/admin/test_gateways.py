"""Stripe through the admin API against a local stand-in of Stripe's API: credentials stored
write-only, a pay link (a Checkout Session) for what an invoice owes, and the per-tenant
webhook URL: a paid session allocates to its invoice once, however often or concurrently it is
delivered; forged, stale and foreign events change nothing; events arriving in another order
settle each invoice."""

from __future__ import annotations

import asyncio
import time

import pytest

from billing.secrets import generate_key
from charging_server.demo.stripe_standin import StripeStandIn
from tests.admin.conftest import Api, World, problem
from tests.admin.test_invoices import T, billed

HOOK = "/v1/gateway-webhooks/stripe/acme"


async def setup(api: Api, world: World, stripe: StripeStandIn) -> str:
    invoice_id, _ = await billed(api, world)
    fin = world.a.clients["finance"]
    assert (await fin.post(f"{T}/invoices/{invoice_id}/finalize")).status_code == 200
    r = await fin.put(f"{T}/gateways/stripe", json={
        "api_key": stripe.api_key, "webhook_secret": stripe.webhook_secret,
        "base_url": stripe.base_url})  # fmt: skip
    assert r.status_code == 200, r.text
    assert stripe.api_key not in r.text and stripe.webhook_secret not in r.text
    assert r.json()["webhook_path"] == HOOK
    return invoice_id


async def link(world: World, invoice_id: str) -> dict[str, str]:
    r = await world.a.clients["finance"].post(f"{T}/invoices/{invoice_id}/pay-link", json={
        "success_url": "https://acme.example/paid", "cancel_url": "https://acme.example/no"})
    assert r.status_code == 200, r.text
    out: dict[str, str] = r.json()
    return out


async def deliver(world: World, body: bytes, signature: str) -> tuple[int, str]:
    r = await world.a.admin.post(HOOK, content=body, headers={
        "Stripe-Signature": signature, "Content-Type": "application/json"})  # fmt: skip
    return r.status_code, r.json().get("outcome", r.json().get("reason", ""))


async def count(api: Api, table: str) -> int:
    n: int = await api.engine.pool.fetchval(f"SELECT count(*) FROM {table}")
    return n


async def test_pay_link_and_a_verified_payment_once(
    api: Api, finance_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    world = finance_world
    async with StripeStandIn() as stripe:
        invoice_id = await setup(api, world, stripe)
        pay = await link(world, invoice_id)
        assert pay["amount"] == "23.23" and pay["url"].startswith(stripe.base_url)
        session = stripe.sessions[pay["reference"]]
        assert session["amount_total"] == 2323 and session["metadata"]["invoice_id"] == invoice_id
        assert (await link(world, invoice_id))["reference"] == pay["reference"]  # idempotent

        forged = stripe.paid_event(pay["reference"], secret="whsec_not_the_secret")
        assert await deliver(world, *forged) == (400, "unverified")
        stale = stripe.paid_event(pay["reference"], at=int(time.time()) - 3600)
        assert await deliver(world, *stale) == (400, "unverified")
        body, sig = stripe.paid_event(pay["reference"])
        assert await deliver(world, body, sig[:-2] + "00") == (400, "unverified")  # tampered
        assert await count(api, "gateway_events") == 0 and await count(api, "payments") == 0

        # twenty deliveries of the same event at once: one payment
        results = await asyncio.gather(*(deliver(world, body, sig) for _ in range(20)))
        assert sorted(o for _, o in results) == ["duplicate"] * 19 + ["payment"]
        assert await deliver(world, body, sig) == (200, "duplicate")  # a replay later
        assert await count(api, "payments") == 1
        inv = (await world.a.clients["finance"].get(f"{T}/invoices/{invoice_id}")).json()
        assert inv["status"] == "paid"
        # the same payment in another event (a retry with a new id): still one payment
        again = stripe.paid_event(pay["reference"])
        assert await deliver(world, *again) == (200, "payment")
        assert await count(api, "payments") == 1
        problem(await world.a.clients["finance"].post(
            f"{T}/invoices/{invoice_id}/pay-link", json={
                "success_url": "https://a.example/x", "cancel_url": "https://a.example/y"}),
            409)  # fmt: skip


async def test_foreign_unknown_and_reordered_events(
    api: Api, finance_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    world = finance_world
    async with StripeStandIn() as stripe:
        invoice_id = await setup(api, world, stripe)
        pay = await link(world, invoice_id)
        # not paid: stored, acknowledged, nothing else
        assert await deliver(world, *stripe.event("checkout.session.expired", {
            "id": pay["reference"], "object": "checkout.session"})) == (200, "ignored")
        # a session made for another tenant, signed with this tenant's secret: no money moves
        foreign = {**stripe.sessions[pay["reference"]], "payment_status": "paid",
                   "payment_intent": "pi_foreign", "metadata": {"tenant_id": "zeta",
                                                                "account_id": "b1"}}  # fmt: skip
        status, outcome = await deliver(world, *stripe.event("checkout.session.completed",
                                                             foreign))  # fmt: skip
        assert status == 200 and outcome.startswith("ignored")
        # the paid event arrives after an unrelated later one: it still settles its invoice
        paid = stripe.paid_event(pay["reference"])
        later = stripe.event("payment_intent.created", {"id": "pi_other"})
        assert await deliver(world, *later) == (200, "ignored")
        assert await deliver(world, *paid) == (200, "payment")
        assert await count(api, "payments") == 1
        r = await world.a.admin.post("/v1/gateway-webhooks/stripe/zeta", content=paid[0],
                                     headers={"Stripe-Signature": paid[1],
                                              "Content-Type": "application/json"})  # fmt: skip
        problem(r, 404)  # zeta has no Stripe account configured: nothing stored for it
        assert await count(api, "gateway_events") == 4


async def test_a_top_up_pay_link_credits_the_prepaid_balance_once(
    api: Api, finance_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    fin = finance_world.a.clients["finance"]
    async with StripeStandIn() as stripe:
        r = await fin.put(f"{T}/gateways/stripe", json={
            "api_key": stripe.api_key, "webhook_secret": stripe.webhook_secret,
            "base_url": stripe.base_url})  # fmt: skip
        assert r.status_code == 200, r.text
        before = await api.engine.store.state("acme", "a1")
        assert before is not None
        body = {"amount": "15.00", "success_url": "https://acme.example/ok",
                "cancel_url": "https://acme.example/no"}  # fmt: skip
        r = await fin.post(f"{T}/accounts/a1/pay-link", json=body)
        assert r.status_code == 200, r.text
        link = r.json()
        assert (link["amount"], link["currency"]) == ("15.00", "USD")
        assert stripe.sessions[link["reference"]]["amount_total"] == 1500
        problem(await fin.post(f"{T}/accounts/a1/pay-link", json={**body, "amount": "0"}), 422)
        problem(await fin.post(f"{T}/accounts/a1/pay-link", json={**body, "amount": "1.001"}),
                422)  # fmt: skip
        paid = stripe.paid_event(link["reference"])
        assert await deliver(finance_world, *paid) == (200, "payment")
        assert await deliver(finance_world, *paid) == (200, "duplicate")
        after = await api.engine.store.state("acme", "a1")
        assert after is not None and after.balance - before.balance == 15_000_000
