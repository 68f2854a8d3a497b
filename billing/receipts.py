"""A receipt for every paid prepaid top-up (Postgres adapter).

Top-ups are recorded by the engine's money use case (``money_operations``); the billing job
picks up completed ones without a receipt, and makes each a finalized document with its own
gapless number series, in one transaction: the unique (tenant, source_ref) index means a top-up
gets exactly one receipt however many jobs run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

import asyncpg

from billing import inputs_codec
from billing.composition import Charge, InvoiceInputs, LineKind, compose
from billing.invoice_store import InvoiceHeader, insert_many, new_id
from billing.lifecycle import finalize_rows
from billing.minor_units import micros_to_minor

PENDING_SQL: Final = """
SELECT m.tenant_id, m.account_id, m.idem_key, m.amount, m.method, m.reference, m.completed_at,
       a.currency, t.timezone
FROM money_operations m
JOIN accounts a ON a.tenant_id = m.tenant_id AND a.account_id = m.account_id
JOIN tenants t ON t.tenant_id = m.tenant_id
WHERE m.kind = 'topup' AND m.status = 'ok' AND a.kind = 'prepaid'
  AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = m.tenant_id
                  AND i.kind = 'receipt' AND i.source_ref = m.idem_key)
ORDER BY m.tenant_id, m.completed_at, m.idem_key
LIMIT $1
FOR UPDATE OF m SKIP LOCKED
"""


def _description(method: str | None, reference: str | None) -> str:
    text = "Top-up" + (f" by {method}" if method else "")
    return text + (f" (ref. {reference})" if reference else "")


async def issue_receipts(pool: asyncpg.Pool, now: datetime, batch: int = 500) -> int:
    """Make the receipts still owed; -> how many."""
    made = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(PENDING_SQL, batch)
            if not rows:
                return made
            by_tenant: dict[str, list[str]] = {}
            items = []
            for r in rows:
                cur = r["currency"].strip()
                inputs = InvoiceInputs(currency=cur, charges=(Charge(
                    kind=LineKind.ONE_TIME, description=_description(r["method"],
                                                                     r["reference"]),
                    amount=micros_to_minor(r["amount"], cur), ref=r["idem_key"],
                ),))
                paid = (r["completed_at"] or now).astimezone(ZoneInfo(r["timezone"])).date()
                h = InvoiceHeader(
                    invoice_id=new_id("receipt"), tenant_id=r["tenant_id"],
                    account_id=r["account_id"], currency=cur, issued_on=paid, due_on=None,
                    review_until=None, kind="receipt", source_ref=r["idem_key"],
                    payment_text=f"Paid {paid.isoformat()}", inputs=inputs_codec.dumps(inputs),
                )
                items.append((h, compose(inputs)))
                by_tenant.setdefault(r["tenant_id"], []).append(h.invoice_id)
            await insert_many(conn, items)
            for tenant_id, ids in sorted(by_tenant.items()):
                await finalize_rows(conn, tenant_id, ids, now, series="receipt")
                await conn.execute(
                    "UPDATE invoices SET status = 'paid' WHERE invoice_id = ANY($1)", ids
                )
            made += len(items)
