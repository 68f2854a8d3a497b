"""PayPal adapter against the local stand-in of PayPal's API, over TCP: orders as pay links
(amounts as PayPal's decimal strings, idempotent by PayPal-Request-Id), webhooks verified offline
by their transmission signature (forged, altered, misaddressed, stale, foreign-certificate and
header-less deliveries refused), and the capture that follows an approval, once, in whichever
order the approval and the capture's own webhook arrive."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.gateways.model import Credentials, GatewayEvent, GatewayRejected
from billing.gateways.paypal_gateway import (
    HEADERS,
    PayPalError,
    PayPalGateway,
    cert_url_allowed,
    to_minor,
    to_value,
)
from billing.minor_units import exponent
from charging_server.demo.paypal_standin import PayPalStandIn, new_key

META = {"tenant_id": "acme", "account_id": "ACC-1", "invoice_id": "INV-2024-0001"}
LINK: dict[str, Any] = {"description": "Invoice INV-2024-0001", "metadata": META,
                        "success_url": "https://acme.example/paid",
                        "cancel_url": "https://acme.example/no"}  # fmt: skip


def gateway(paypal: PayPalStandIn, *, secret: str | None = None,
            now: Any = time.time) -> PayPalGateway:  # fmt: skip
    return PayPalGateway(Credentials(
        api_key=secret or paypal.client_secret, webhook_secret=paypal.webhook_id,
        account_id=paypal.client_id, base_url=paypal.base_url), now=now)  # fmt: skip


@pytest.fixture
async def paypal() -> AsyncIterator[PayPalStandIn]:
    async with PayPalStandIn() as server:
        yield server


@pytest.fixture
async def gw(paypal: PayPalStandIn) -> AsyncIterator[PayPalGateway]:
    g = gateway(paypal)
    yield g
    await g.aclose()


async def order_for(gw: PayPalGateway, amount: int = 2323, currency: str = "EUR",
                    key: str = "link-1") -> str:  # fmt: skip
    return (await gw.pay_link(amount=amount, currency=currency, idempotency_key=key,
                              **LINK)).reference  # fmt: skip


# --- pay links -------------------------------------------------------------------------------


async def test_pay_link_is_an_order_for_the_amount(paypal: PayPalStandIn,
                                                   gw: PayPalGateway) -> None:  # fmt: skip
    link = await gw.pay_link(amount=2323, currency="EUR", idempotency_key="k1", **LINK)
    assert link.url == f"{paypal.base_url}/checkoutnow?token={link.reference}"
    order = paypal.orders[link.reference]
    assert order["status"] == "PAYER_ACTION_REQUIRED" and order["intent"] == "CAPTURE"
    unit = order["purchase_units"][0]
    assert unit["amount"] == {"currency_code": "EUR", "value": "23.23"}
    assert unit["invoice_id"] == "INV-2024-0001-k1"  # one per link: PayPal refuses repeats
    assert unit["description"] == "Invoice INV-2024-0001"
    assert len(unit["custom_id"]) <= 127
    sent = paypal.requests[link.reference]["payment_source"]["paypal"]["experience_context"]
    assert sent == {"return_url": "https://acme.example/paid",
                    "cancel_url": "https://acme.example/no", "user_action": "PAY_NOW"}  # fmt: skip


async def test_pay_link_in_a_currency_without_decimals(paypal: PayPalStandIn,
                                                       gw: PayPalGateway) -> None:  # fmt: skip
    ref = await order_for(gw, 500, "JPY")
    assert paypal.orders[ref]["purchase_units"][0]["amount"] == {"currency_code": "JPY",
                                                                 "value": "500"}  # fmt: skip


async def test_pay_link_is_idempotent_by_request_id(paypal: PayPalStandIn,
                                                    gw: PayPalGateway) -> None:  # fmt: skip
    first = await gw.pay_link(amount=2323, currency="EUR", idempotency_key="same", **LINK)
    again = await gw.pay_link(amount=2323, currency="EUR", idempotency_key="same", **LINK)
    assert again == first and len(paypal.orders) == 1
    other = await gw.pay_link(amount=2323, currency="EUR", idempotency_key="other", **LINK)
    assert other.reference != first.reference and len(paypal.orders) == 2


async def test_wrong_client_secret_is_an_api_error(paypal: PayPalStandIn) -> None:
    g = gateway(paypal, secret="not-the-secret")
    try:
        with pytest.raises(PayPalError, match="Client Authentication failed"):
            await order_for(g)
    finally:
        await g.aclose()
    assert paypal.orders == {}


async def test_metadata_too_long_for_custom_id_is_left_out(paypal: PayPalStandIn,
                                                           gw: PayPalGateway) -> None:  # fmt: skip
    link = {**LINK, "metadata": {**META, "account_id": "A" * 120}}
    ref = (await gw.pay_link(amount=100, currency="EUR", idempotency_key="k", **link)).reference
    assert "custom_id" not in paypal.orders[ref]["purchase_units"][0]
    event = await gw.verify(*paypal.approved_event(ref))
    assert event.metadata == {} and event.link_ref == ref  # the inbox resolves the link


async def test_token_reused_across_adapters_and_renewed_when_revoked(
        paypal: PayPalStandIn) -> None:  # fmt: skip
    for key in ("a", "b"):
        g = gateway(paypal)
        await order_for(g, key=key)
        await g.aclose()
    assert paypal.token_requests == 1
    paypal.tokens.clear()  # revoked (or expired early): the next call gets a 401
    g = gateway(paypal)
    await order_for(g, key="c")
    await g.aclose()
    assert paypal.token_requests == 2 and len(paypal.orders) == 3


# --- verified webhooks -----------------------------------------------------------------------


async def test_verify_a_capture_completed(paypal: PayPalStandIn, gw: PayPalGateway) -> None:
    ref = await order_for(gw)
    paypal.approve(ref)
    body, headers = paypal.capture_completed_event(ref)
    event = await gw.verify(body, headers)
    capture = paypal.orders[ref]["purchase_units"][0]["payments"]["captures"][0]
    assert event == GatewayEvent(
        gateway="paypal", event_id=event.payload["id"], type="PAYMENT.CAPTURE.COMPLETED",
        paid=True, payment_ref=capture["id"], amount=2323, currency="EUR", metadata=META,
        payload=event.payload, link_ref=ref)  # fmt: skip
    assert event.event_id.startswith("WH-")


async def test_verify_an_approval(paypal: PayPalStandIn, gw: PayPalGateway) -> None:
    ref = await order_for(gw)
    event = await gw.verify(*paypal.approved_event(ref))
    assert (event.type, event.paid, event.link_ref, event.metadata) == (
        "CHECKOUT.ORDER.APPROVED", False, ref, META)  # fmt: skip
    assert event.payment_ref == "" and event.amount == 0


async def test_other_events_are_not_payments(paypal: PayPalStandIn, gw: PayPalGateway) -> None:
    event = await gw.verify(*paypal.event("PAYMENT.CAPTURE.REFUNDED", {"id": "X"}))
    assert (event.type, event.paid) == ("PAYMENT.CAPTURE.REFUNDED", False)
    assert await gw.follow_up(event) is None


async def test_forged_signature_is_refused(paypal: PayPalStandIn, gw: PayPalGateway) -> None:
    ref = await order_for(gw)
    paypal.approve(ref)
    with pytest.raises(GatewayRejected, match="signature does not verify"):
        await gw.verify(*paypal.capture_completed_event(ref, key=new_key()))


async def test_tampered_body_is_refused(paypal: PayPalStandIn, gw: PayPalGateway) -> None:
    ref = await order_for(gw)
    paypal.approve(ref)
    body, headers = paypal.capture_completed_event(ref)
    assert b'"23.23"' in body
    with pytest.raises(GatewayRejected, match="signature does not verify"):
        await gw.verify(body.replace(b'"23.23"', b'"99.99"'), headers)


async def test_another_webhook_id_is_refused(paypal: PayPalStandIn, gw: PayPalGateway) -> None:
    ref = await order_for(gw)
    with pytest.raises(GatewayRejected, match="signature does not verify"):
        await gw.verify(*paypal.approved_event(ref, webhook_id="5GP028458E2496506"))


@pytest.mark.parametrize("skew", [-3600, 3600, -301])
async def test_stale_or_future_transmission_is_refused(paypal: PayPalStandIn,
                                                       skew: int) -> None:  # fmt: skip
    g = gateway(paypal, now=lambda: time.time() - skew)  # the adapter's clock is off
    try:
        body, headers = paypal.event("PAYMENT.CAPTURE.REFUNDED", {"id": "X"})
        with pytest.raises(GatewayRejected, match="transmission time"):
            await g.verify(body, headers)
    finally:
        await g.aclose()
    g = gateway(paypal)  # or the event's time
    try:
        body, headers = paypal.event("PAYMENT.CAPTURE.REFUNDED", {"id": "X"},
                                     at=time.time() + skew)  # fmt: skip
        with pytest.raises(GatewayRejected, match="transmission time"):
            await g.verify(body, headers)
    finally:
        await g.aclose()
    assert paypal.cert_fetches == 0  # refused before any download


async def test_expired_certificate_is_refused(paypal: PayPalStandIn) -> None:
    later = time.time() + 400 * 86400  # the stand-in's certificate is valid for a year
    g = gateway(paypal, now=lambda: later)
    try:
        with pytest.raises(GatewayRejected, match="not valid now"):
            await g.verify(*paypal.event("PAYMENT.CAPTURE.REFUNDED", {"id": "X"}, at=later))
    finally:
        await g.aclose()


async def test_certificate_on_a_foreign_host_is_not_fetched(paypal: PayPalStandIn,
                                                            gw: PayPalGateway) -> None:  # fmt: skip
    """Someone serving their own certificate signs for our webhook id: the signature would
    verify with their certificate, so it is never downloaded."""
    ref = await order_for(gw)
    paypal.approve(ref)
    async with PayPalStandIn(webhook_id=paypal.webhook_id) as forger:
        forger.orders = paypal.orders
        body, headers = forger.capture_completed_event(ref)
        assert headers["paypal-cert-url"].startswith(forger.base_url)
        with pytest.raises(GatewayRejected, match="is not PayPal's"):
            await gw.verify(body, headers)
        assert forger.cert_fetches == 0
    for url in ("https://evil.example/cert.pem", "https://api.paypal.com.evil.example/c.pem",
                "http://api.paypal.com/v1/notifications/certs/CERT-1",
                "https://api.paypal.com:8443/c.pem", "https://evilpaypal.com/c.pem",
                f"https://127.0.0.1:{paypal.port}/certs/x.pem"):  # fmt: skip
        with pytest.raises(GatewayRejected, match="is not PayPal's"):
            await gw.verify(body, {**headers, "paypal-cert-url": url})
    assert paypal.cert_fetches == 0


def test_certificate_hosts() -> None:
    live = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
    assert cert_url_allowed(live, None)
    assert cert_url_allowed("https://api.sandbox.paypal.com/v1/notifications/certs/C", None)
    assert cert_url_allowed("http://127.0.0.1:8080/certs/c.pem", "http://127.0.0.1:8080")
    assert not cert_url_allowed("http://127.0.0.1:8081/certs/c.pem", "http://127.0.0.1:8080")
    assert not cert_url_allowed("https://paypal.com@evil.example/c.pem", None)
    assert not cert_url_allowed("https://api.paypal.com:99999/c.pem", None)
    assert not cert_url_allowed("https://evil.example/x.paypal.com/c.pem", None)


@pytest.mark.parametrize("header", HEADERS)
async def test_a_missing_header_is_refused(paypal: PayPalStandIn, gw: PayPalGateway,
                                           header: str) -> None:  # fmt: skip
    body, headers = paypal.event("PAYMENT.CAPTURE.REFUNDED", {"id": "X"})
    del headers[header]
    with pytest.raises(GatewayRejected, match=f"missing PayPal header.*{header}"):
        await gw.verify(body, headers)


async def test_another_algorithm_is_refused(paypal: PayPalStandIn, gw: PayPalGateway) -> None:
    body, headers = paypal.event("PAYMENT.CAPTURE.REFUNDED", {"id": "X"})
    with pytest.raises(GatewayRejected, match="SHA256withRSA"):
        await gw.verify(body, {**headers, "paypal-auth-algo": "SHA1withRSA"})


TOO_FINE = (
    b'{"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {"id": "C",'
    b' "status": "COMPLETED", "amount": {"currency_code": "EUR", "value": "1.234"}}}'
)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"id": "WH-1"}', TOO_FINE])
async def test_a_signed_but_malformed_body_is_refused(paypal: PayPalStandIn, gw: PayPalGateway,
                                                      body: bytes) -> None:  # fmt: skip
    with pytest.raises(GatewayRejected, match="not a PayPal event"):
        await gw.verify(body, paypal.sign(body))


async def test_a_malformed_signature_is_refused(paypal: PayPalStandIn, gw: PayPalGateway) -> None:
    body, headers = paypal.event("PAYMENT.CAPTURE.REFUNDED", {"id": "X"})
    with pytest.raises(GatewayRejected, match="malformed"):
        await gw.verify(body, {**headers, "paypal-transmission-sig": "not base64!"})


# --- the capture after an approval -----------------------------------------------------------


async def test_follow_up_captures_an_approved_order_once(paypal: PayPalStandIn,
                                                         gw: PayPalGateway) -> None:  # fmt: skip
    ref = await order_for(gw)
    approved = await gw.verify(*paypal.approved_event(ref))
    paid = await gw.follow_up(approved)
    assert paid is not None
    captures = paypal.orders[ref]["purchase_units"][0]["payments"]["captures"]
    assert len(captures) == 1 and paypal.orders[ref]["status"] == "COMPLETED"
    cid = captures[0]["id"]
    assert (paid.event_id, paid.type, paid.paid, paid.payment_ref, paid.amount, paid.currency,
            paid.metadata, paid.link_ref) == (f"capture:{cid}", "PAYMENT.CAPTURE.COMPLETED",
                                              True, cid, 2323, "EUR", META, ref)  # fmt: skip
    again = await gw.follow_up(approved)  # the approval redelivered: the same capture
    assert again is not None and again.event_id == paid.event_id
    hook = await gw.verify(*paypal.capture_completed_event(ref))  # and its own webhook
    assert (hook.paid, hook.payment_ref, hook.amount) == (True, cid, 2323)
    assert len(paypal.orders[ref]["purchase_units"][0]["payments"]["captures"]) == 1
    assert paypal.cert_fetches == 1  # the certificate is downloaded once, then cached


async def test_capture_webhook_before_the_approval(paypal: PayPalStandIn,
                                                   gw: PayPalGateway) -> None:  # fmt: skip
    ref = await order_for(gw, 500, "JPY")
    paypal.approve(ref)
    first = await gw.verify(*paypal.capture_completed_event(ref))  # captured, delivered first
    approved = await gw.verify(*paypal.approved_event(ref))
    paid = await gw.follow_up(approved)  # ORDER_ALREADY_CAPTURED: the order names its capture
    assert paid is not None and first.paid
    assert (paid.payment_ref, paid.amount, paid.currency) == (first.payment_ref, 500, "JPY")
    assert paid.event_id == f"capture:{first.payment_ref}" != first.event_id


async def test_a_pending_capture_is_not_a_payment_yet(paypal: PayPalStandIn,
                                                      gw: PayPalGateway) -> None:  # fmt: skip
    paypal.capture_status = "PENDING"
    ref = await order_for(gw)
    assert await gw.follow_up(await gw.verify(*paypal.approved_event(ref))) is None
    assert paypal.orders[ref]["status"] == "COMPLETED"


async def test_capturing_an_unapproved_order_fails(paypal: PayPalStandIn,
                                                   gw: PayPalGateway) -> None:  # fmt: skip
    ref = await order_for(gw)
    event = GatewayEvent("paypal", "WH-X", "CHECKOUT.ORDER.APPROVED", False, link_ref=ref)
    with pytest.raises(PayPalError, match="ORDER_NOT_APPROVED"):
        await gw.follow_up(event)


async def test_follow_up_of_other_events_does_nothing(gw: PayPalGateway) -> None:
    assert await gw.follow_up(GatewayEvent("paypal", "e", "PAYMENT.CAPTURE.DENIED", False)) is None
    assert await gw.follow_up(GatewayEvent("stripe", "e", "CHECKOUT.ORDER.APPROVED", False,
                                           link_ref="X")) is None  # fmt: skip


# --- amounts ---------------------------------------------------------------------------------

CURRENCIES = ["JPY", "KRW", "EUR", "USD", "INR", "KWD", "BHD"]  # exponents 0, 2 and 3


@settings(max_examples=500, deadline=None)
@given(amount=st.integers(-(10**15), 10**15), currency=st.sampled_from(CURRENCIES))
def test_minor_units_round_trip_through_paypal_values(amount: int, currency: str) -> None:
    value = to_value(amount, currency)
    e = exponent(currency)
    assert Decimal(value) == Decimal(amount).scaleb(-e)
    assert len(value.partition(".")[2]) == e and "e" not in value.lower()
    assert to_minor(value, currency) == amount
    if e and "." in value:  # PayPal may leave trailing zeros off: the same amount
        assert to_minor(value.rstrip("0").rstrip("."), currency) == amount


MALFORMED = [("1.234", "EUR"), ("1.5", "JPY"), ("1,00", "EUR"), ("", "EUR"), ("1e3", "EUR"),
             (" 1", "EUR"), ("12", "XAU")]  # fmt: skip


@pytest.mark.parametrize(("value", "currency"), MALFORMED)
def test_values_finer_than_the_currency_or_malformed(value: str, currency: str) -> None:
    with pytest.raises(ValueError):
        to_minor(value, currency)
