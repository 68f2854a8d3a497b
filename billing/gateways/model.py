"""What a gateway adapter hands the billing core: pay links and verified payment events, and the
one interface every adapter (Stripe, PayPal, CCAvenue) implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class GatewayRejected(ValueError):
    """An inbound event that failed verification (forged, stale, malformed): nothing trusted."""


@dataclass(frozen=True, slots=True)
class PayLink:
    url: str
    reference: str  # the gateway's id for it (a Checkout Session id, an order id)


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A verified event. ``paid`` events carry the money: ``amount`` in minor units."""

    gateway: str
    event_id: str
    type: str
    paid: bool
    payment_ref: str = ""  # the gateway's payment id: one payment per ref, whatever the event
    amount: int = 0
    currency: str = ""
    metadata: dict[str, str] = field(default_factory=dict)  # tenant, account, invoice we sent
    payload: dict[str, Any] = field(default_factory=dict)
    link_ref: str = ""  # the pay link's reference, when the event names it (no metadata echoed)


@dataclass(frozen=True, slots=True)
class Charged:
    """A saved card charged off-session (auto top-up): ``succeeded`` moved the money."""

    status: Literal["succeeded", "declined", "pending"]
    payment_ref: str  # the gateway's payment id (a PaymentIntent id)
    amount: int = 0  # minor units
    message: str = ""  # the gateway's reason for a decline


@dataclass(frozen=True, slots=True)
class Credentials:
    """A tenant's account with a gateway, decrypted. What each field holds per gateway:
    Stripe: api_key = secret key, webhook_secret = endpoint secret (whsec_...);
    PayPal: account_id = client id, api_key = client secret, webhook_secret = webhook id;
    CCAvenue: account_id = merchant id, api_key = access code, webhook_secret = working key."""

    api_key: str
    webhook_secret: str
    account_id: str | None = None
    base_url: str | None = None  # None: the gateway's own API


class Gateway(Protocol):
    """A pay link out, a verified event in. ``follow_up`` is the gateway's next step after a
    stored event (PayPal: capture an approved order), giving the event that step produced."""

    async def pay_link(self, *, amount: int, currency: str, description: str,
                       metadata: dict[str, str], success_url: str, cancel_url: str,
                       idempotency_key: str) -> PayLink: ...  # fmt: skip

    async def verify(self, payload: bytes, headers: dict[str, str]) -> GatewayEvent: ...

    async def follow_up(self, event: GatewayEvent) -> GatewayEvent | None: ...

    async def aclose(self) -> None: ...


class SavedMethods(Protocol):
    """A gateway that charges a customer's saved payment method without them (auto top-up)."""

    async def charge_saved(self, *, customer: str, payment_method: str, amount: int,
                           currency: str, metadata: dict[str, str],
                           idempotency_key: str) -> Charged: ...  # fmt: skip
