"""What a gateway adapter hands the billing core: pay links and verified payment events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
