"""Receivables as the books stood on a day (Postgres adapter for ``billing.aging``).

An invoice counts when it was issued on or before the day and not voided by then; its paid
amount is what allocations of payments received on or before the day still held then (an
allocation reversed later still counts, one reversed by then does not), and what credit notes
issued by then took off it.
"""

from __future__ import annotations

from datetime import date

from billing.aging import Receivable
from billing.catalog.lookups import Conn

__all__ = ["as_of"]


async def as_of(conn: Conn, tenant_id: str, day: date, account_id: str | None = None
                ) -> list[Receivable]:  # fmt: skip
    rows = await conn.fetch(
        "SELECT i.account_id, i.currency, COALESCE(i.due_on, i.issued_on) AS due,"
        " i.amount_due, COALESCE(("
        "   SELECT sum(a.amount) FROM payment_allocations a JOIN payments p USING (payment_id)"
        "   WHERE a.invoice_id = i.invoice_id AND p.received_on <= $2"
        "   AND (a.reversed_at IS NULL OR a.reversed_at::date > $2)), 0)::bigint AS paid,"
        " COALESCE((SELECT sum(n.applied) FROM credit_notes n WHERE n.invoice_id = i.invoice_id"
        "   AND n.issued_on <= $2), 0)::bigint AS credited"
        " FROM invoices i WHERE i.tenant_id = $1 AND i.kind = 'invoice'"
        " AND i.status <> 'draft' AND i.issued_on <= $2"
        " AND (i.voided_at IS NULL OR i.voided_at::date > $2)"
        " AND ($3::text IS NULL OR i.account_id = $3)",
        tenant_id, day, account_id,
    )
    return [Receivable(r["account_id"], r["currency"].strip(), r["due"], r["amount_due"],
                       r["paid"], r["credited"]) for r in rows]  # fmt: skip
