"""Standard Webhooks messages (pure): ids, bodies, signed headers, the retry schedule.

Receivers verify with any Standard Webhooks library (``standardwebhooks.Webhook(secret)
.verify(body, headers)``); ``webhook-id`` is the event's id on every retry, so a receiver
recognises a redelivery.
"""

from __future__ import annotations

import base64
import math
import random
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX: Final = "whsec_"


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes them: ``whsec_`` + base64 of 32 bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def body(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The JSON body: ``{"type", "timestamp", "data"}`` (the exact text that is signed)."""
    return orjson.dumps({
        "type": event_type, "timestamp": at.astimezone(UTC).isoformat(), "data": data,
    }).decode()


def headers(secret: str, msg_id: str, payload: str, at: datetime) -> dict[str, str]:
    """The three signature headers for sending ``payload`` at ``at`` (the real send time:
    receivers refuse timestamps more than five minutes off their own clock)."""
    if at.tzinfo is None:
        raise ValueError("the signature timestamp needs an aware datetime")
    # Webhook.sign reads the wall-clock fields as UTC (replace(tzinfo=utc)), so give it UTC.
    at = at.astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, payload),
        "content-type": "application/json",
    }


def backoff(attempt: int, base_s: float = 30.0, cap_s: float = 6 * 3600.0,
            rng: random.Random | None = None) -> timedelta:
    """Wait before attempt ``attempt + 1``: exponential from ``base_s``, capped, with full
    jitter over its upper half (so retries of many deliveries spread out)."""
    top = min(cap_s, base_s * 2 ** min(max(0, attempt - 1), 64))  # 2**64: past any cap
    r = (rng or random).random()
    return timedelta(seconds=top / 2 + r * top / 2)
