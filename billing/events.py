"""Invoice events for accounting, written to the webhook outbox in the caller's transaction.

The dedup key is (event type, invoice): finalizing or voiding an invoice twice, or a retry of
the transaction that did it, never sends the event twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from billing.minor_units import exponent
from billing.webhooks.outbox import enqueue, enqueue_many


def invoice_data(r: Any) -> dict[str, Any]:
    """The invoice as accounting receives it: amounts in minor units with their exponent."""
    cur = r["currency"].strip()

    def day(name: str) -> str | None:
        v = r[name]
        return v.isoformat() if v is not None else None

    return {
        "id": r["invoice_id"], "kind": r["kind"], "number": r["number"],
        "account_id": r["account_id"], "status": r["status"], "currency": cur,
        "minor_unit_exponent": exponent(cur), "subtotal": r["subtotal"],
        "tax_total": r["tax_total"], "total": r["total"], "credit_applied": r["credit_applied"],
        "amount_due": r["amount_due"], "issued_on": day("issued_on"), "due_on": day("due_on"),
        "period_start": day("period_start"), "period_end": day("period_end"),
        "source_ref": r.get("source_ref"),  # a receipt's top-up key ("pay:<id>": a payment's)
    }


async def emit(conn: asyncpg.Connection, event_type: str, invoice: Any, at: datetime
               ) -> str | None:
    """Queue ``event_type`` (``invoice.finalized``, ...) for the invoice row ``invoice``."""
    return await enqueue(
        conn, invoice["tenant_id"], event_type, {"invoice": invoice_data(invoice)},
        dedup_key=f"{event_type}:{invoice['invoice_id']}", at=at,
    )


async def emit_many(conn: asyncpg.Connection, tenant_id: str, event_type: str,
                    invoices: list[Any], at: datetime) -> int:
    """``emit`` for many invoices of one tenant, set-based."""
    return await enqueue_many(conn, tenant_id, [
        (event_type, {"invoice": invoice_data(r)}, f"{event_type}:{r['invoice_id']}")
        for r in invoices
    ], at=at)
