"""SMS over SMPP: the outbox's messages through a bound ``SmppClient``, and the delivery
receipts it hands back recorded against their messages.

A message's parts are submitted in order; the provider reference is the SMSC's ids of all of
them. A part the SMSC refuses for good (an invalid destination) makes the message
``Undeliverable``; not bound, or no answer in time, is ``SendFailed`` (retried: a part the SMSC
may have taken could then arrive twice at the handset, which SMPP cannot recall; the ids of the
parts already accepted are in the error). Receipts go to ``notifications.receipts``.
"""

from __future__ import annotations

from typing import Any, Final

import asyncpg

from notifications import receipts
from notifications.channels.model import Outgoing, SendFailed, Undeliverable
from notifications.smpp import (
    Delivery,
    DeliveryReport,
    NotBound,
    SmppClient,
    SubmitRejected,
    SubmitUncertain,
)

__all__ = ["DeliveryReceipts", "SmsChannel"]

# Statuses that will not change by trying again (SMPP 3.4 section 5.1.3).
PERMANENT: Final = frozenset({0x0B, 0x0A, 0x33, 0x48, 0x49, 0x50, 0x51})


class SmsChannel:
    def __init__(self, client: SmppClient, sender: str) -> None:
        self.client = client
        self.sender = sender

    async def send(self, message: Outgoing) -> str:
        try:
            ids = await self.client.submit(self.sender, message.recipient, message.body)
        except SubmitRejected as e:
            if e.status in PERMANENT:
                raise Undeliverable(str(e)) from None
            raise SendFailed(str(e)) from None
        except (NotBound, SubmitUncertain) as e:
            raise SendFailed(f"{type(e).__name__}: {e}") from None
        return ",".join(ids)


class DeliveryReceipts:
    """``on_deliver`` for the SMPP client: receipts update the messages (idempotent: the SMSC
    delivers again until answered)."""

    def __init__(self, pool: asyncpg.Pool, *, now: Any) -> None:
        self.pool = pool
        self.now = now

    async def __call__(self, d: Delivery) -> None:
        if isinstance(d, DeliveryReport):  # mobile-originated texts are the keywords' (not here)
            await receipts.record(self.pool, "sms", d.message_id, d.state, self.now())
