"""Stripe: Checkout Sessions as pay links, and webhooks verified by their Stripe-Signature.

Through the official ``stripe`` package: ``StripeClient`` with an httpx client for the API
(``base_url`` points it at a local stand-in in tests), ``Webhook.construct_event`` for the
signature (HMAC-SHA256 of ``timestamp.payload`` with the endpoint secret, refused outside the
tolerance window). A ``checkout.session.completed`` whose ``payment_status`` is ``paid`` is a
payment; every other verified event is stored and acknowledged, and changes nothing.
"""

from __future__ import annotations

from typing import Any, Final

import stripe

from billing.gateways.model import Charged, GatewayEvent, GatewayRejected, PayLink
from billing.minor_units import exponent

__all__ = ["NAME", "StripeGateway"]

NAME: Final = "stripe"
TOLERANCE_S: Final = 300


class StripeGateway:
    def __init__(self, api_key: str, webhook_secret: str, *, base_url: str | None = None
                 ) -> None:  # fmt: skip
        addresses: Any = {"api": base_url} if base_url else None
        self._http = stripe.HTTPXClient(timeout=20)  # a pay link waits that long at most
        self._client = stripe.StripeClient(api_key, base_addresses=addresses,
                                           http_client=self._http,
                                           max_network_retries=2)  # fmt: skip
        self._secret = webhook_secret

    async def pay_link(self, *, amount: int, currency: str, description: str,
                       metadata: dict[str, str], success_url: str, cancel_url: str,
                       idempotency_key: str) -> PayLink:  # fmt: skip
        """A Checkout Session for ``amount`` minor units of ``currency``."""
        if exponent(currency) is None:  # pragma: no cover - our currencies all have one
            raise ValueError(f"{currency} has no minor unit")
        session = await self._client.v1.checkout.sessions.create_async(
            params={
                "mode": "payment", "success_url": success_url, "cancel_url": cancel_url,
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": currency.lower(), "unit_amount": amount,
                    "product_data": {"name": description}}}],
                "metadata": metadata, "payment_intent_data": {"metadata": metadata},
            },
            options={"idempotency_key": idempotency_key},
        )  # fmt: skip
        return PayLink(str(session.url), str(session.id))

    async def charge_saved(self, *, customer: str, payment_method: str, amount: int,
                           currency: str, metadata: dict[str, str],
                           idempotency_key: str) -> Charged:  # fmt: skip
        """An off-session PaymentIntent, confirmed at once, on the customer's saved card."""
        try:
            pi = await self._client.v1.payment_intents.create_async(
                params={"amount": amount, "currency": currency.lower(), "customer": customer,
                        "payment_method": payment_method, "off_session": True,
                        "confirm": True, "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            )  # fmt: skip
        except stripe.CardError as e:  # declined, or the bank wants the customer present
            intent = getattr(e.error, "payment_intent", None)
            return Charged("declined", str(getattr(intent, "id", "") or ""), 0,
                           str(e.user_message or e.code or "declined"))  # fmt: skip
        if pi.status == "succeeded":
            return Charged("succeeded", str(pi.id), int(pi.amount_received or pi.amount))
        return Charged("pending", str(pi.id), 0, str(pi.status))

    async def aclose(self) -> None:
        """Close the API's HTTP connections (a pay link opened them)."""
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def follow_up(self, event: GatewayEvent) -> GatewayEvent | None:
        """Nothing: a Checkout Session takes the money itself."""
        return None

    async def verify(self, payload: bytes, headers: dict[str, str]) -> GatewayEvent:
        """The event, if Stripe signed it (within the tolerance); else ``GatewayRejected``."""
        signature = headers.get("stripe-signature")
        if not signature:
            raise GatewayRejected("no Stripe-Signature header")
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._secret,
                                                   tolerance=TOLERANCE_S)  # fmt: skip
        except stripe.SignatureVerificationError as e:
            raise GatewayRejected(f"Stripe-Signature does not verify: {e.user_message or e}"
                                  ) from None  # fmt: skip
        except ValueError as e:
            raise GatewayRejected(f"not a Stripe event: {e}") from None
        body: dict[str, Any] = event.to_dict()
        obj: dict[str, Any] = body.get("data", {}).get("object", {}) or {}
        meta = {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}
        paid = event.type == "checkout.session.completed" and obj.get("payment_status") == "paid"
        return GatewayEvent(
            gateway=NAME, event_id=str(event.id), type=str(event.type), paid=paid,
            payment_ref=str(obj.get("payment_intent") or obj.get("id") or ""),
            amount=int(obj.get("amount_total") or 0),
            currency=str(obj.get("currency") or "").upper(), metadata=meta, payload=body,
        )  # fmt: skip
