"""The gateway inbox: a verified event is stored once by its id, then processed once.

Storing and processing are two transactions, so an event whose processing failed (the database
restarted, say) is processed by its next delivery; processing takes the event row's lock, so
twenty deliveries of one event at once process it once. A paid event becomes a payment under
the key ``{gateway}:{payment ref}``: two different events for the same payment (completed,
then async-succeeded) still record it once. The money goes to the invoice the pay link was
for while it is open (the rest to credit), else oldest due first.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import orjson

from billing import payments
from billing.catalog.lookups import Conn
from billing.errors import BillingError
from billing.gateways.model import GatewayEvent
from billing.payments import PaymentIn
from charging_engine.accounts.money import MoneyOperations

__all__ = ["receive", "resolve"]


async def resolve(conn: Conn, tenant_id: str, event: GatewayEvent) -> GatewayEvent:
    """``event`` with the tenant, account and invoice of the pay link it names, from our own
    record of the link (what we made outranks what the gateway echoes back)."""
    if not event.link_ref:
        return event
    row = await conn.fetchrow("SELECT account_id, invoice_id, currency FROM pay_links WHERE"
                              " tenant_id = $1"
                              " AND gateway = $2 AND reference = $3", tenant_id, event.gateway,
                              event.link_ref)  # fmt: skip
    if row is None:
        return event
    meta = {"tenant_id": tenant_id, "account_id": row["account_id"],
            "link_currency": row["currency"].strip()}
    if row["invoice_id"]:
        meta["invoice_id"] = row["invoice_id"]
    return dataclasses.replace(event, metadata=meta)


async def receive(conn: Conn, tenant_id: str, event: GatewayEvent, *, at: datetime,
                  money: MoneyOperations | None = None) -> str:  # fmt: skip
    """Store and process ``event`` (already verified); -> its outcome."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO gateway_events (tenant_id, gateway, event_id, type, paid, payment_ref,"
            " payload, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING", tenant_id, event.gateway, event.event_id, event.type,
            event.paid, event.payment_ref, orjson.dumps(event.payload).decode(), at,
        )  # fmt: skip
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT processed_at, outcome FROM gateway_events WHERE tenant_id = $1"
            " AND gateway = $2 AND event_id = $3 FOR UPDATE", tenant_id, event.gateway,
            event.event_id,
        )  # fmt: skip
        if row["processed_at"] is not None:
            return "duplicate"
        outcome, payment_id = await _process(conn, tenant_id, event, at, money)
        await conn.execute(
            "UPDATE gateway_events SET processed_at = $4, outcome = $5, payment_id = $6"
            " WHERE tenant_id = $1 AND gateway = $2 AND event_id = $3", tenant_id,
            event.gateway, event.event_id, at, outcome, payment_id,
        )  # fmt: skip
    return outcome


async def _process(conn: Conn, tenant_id: str, event: GatewayEvent, at: datetime,
                   money: MoneyOperations | None) -> tuple[str, str | None]:  # fmt: skip
    if not event.paid:
        return "ignored", None
    meta = event.metadata
    if meta.get("tenant_id") != tenant_id or not meta.get("account_id"):
        return "ignored: not a pay link of this tenant", None
    if event.amount <= 0 or not event.payment_ref:
        return "ignored: no amount", None
    if meta.get("link_currency", event.currency) != event.currency:  # not what we asked for
        return f"refused: paid in {event.currency}, the link asked {meta['link_currency']}", None
    key = f"{event.gateway}:{event.payment_ref}"
    known = await conn.fetchval("SELECT payment_id FROM payments WHERE tenant_id = $1"
                                " AND idem_key = $2", tenant_id, key)  # fmt: skip
    if known is not None:  # the same payment in another event: recorded already
        return "payment", known
    allocations = await _to_invoice(conn, tenant_id, meta.get("invoice_id"), event.amount)
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the event's row usable
            p, _ = await payments.record(conn, tenant_id, PaymentIn(
                meta["account_id"], "online", event.amount, event.currency, at.date(),
                reference=f"{event.gateway} {event.payment_ref}"[:200],
                collected_by=f"gateway:{event.gateway}", allocations=allocations),
                idempotency_key=key, at=at,
                money=money)  # fmt: skip
    except BillingError as e:  # stored, acknowledged, and visible for finance to settle
        return f"refused: {e}"[:500], None
    return "payment", p.payment_id


async def _to_invoice(conn: Conn, tenant_id: str, invoice_id: str | None, amount: int
                      ) -> tuple[tuple[str, int], ...] | None:  # fmt: skip
    if not invoice_id:
        return None
    open_: Any = await conn.fetchval("SELECT open FROM invoice_open WHERE tenant_id = $1"
                                     " AND invoice_id = $2", tenant_id, invoice_id)  # fmt: skip
    if not open_ or open_ <= 0:
        return None  # paid meanwhile: the money settles what else is owed, or becomes credit
    return ((invoice_id, min(int(open_), amount)),)
