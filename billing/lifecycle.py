"""Invoice lifecycle: draft -> finalized -> paid / partially paid / void.

Numbers are given at finalization from the tenant's ``document_counters`` row, updated in the
finalizing transaction: a rollback gives the number back (no gap), and concurrent
finalizations in any number of processes queue on that row's lock, so numbers are unique and
strictly increasing per tenant in commit order. The ``invoices_immutable`` trigger refuses any
change to a finalized invoice's content, whatever route or script tries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from billing import events
from billing.errors import InvoiceNotFound, InvoiceStateError
from billing.numbering import format_number
from charging_engine.audit import Actor, record_change
from charging_engine.ledger.catalog_repo import Conn

DUE_SQL: Final = """
SELECT invoice_id, tenant_id FROM invoices
WHERE status = 'draft' AND kind = 'invoice' AND review_until <= $1
ORDER BY tenant_id, created_at, invoice_id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""


async def numbering(conn: Conn, tenant_id: str, series: str) -> tuple[str, str]:
    """(prefix, pattern) of a series: receipts add R to the prefix, credit notes CN."""
    row = await conn.fetchrow(
        "SELECT coalesce(s.number_prefix, 'INV') AS prefix,"
        " coalesce(s.number_pattern, '{prefix}-{year}-{seq:06d}') AS pattern"
        " FROM tenants t LEFT JOIN billing_settings s USING (tenant_id)"
        " WHERE t.tenant_id = $1", tenant_id,
    )
    prefix, pattern = (row["prefix"], row["pattern"]) if row else ("INV", "{prefix}-{seq}")
    if series == "receipt":
        prefix = f"{prefix}R" if prefix else "R"
    elif series == "credit_note":
        prefix = f"{prefix}CN" if prefix else "CN"
    return prefix, pattern


async def take_numbers(conn: Conn, tenant_id: str, series: str, count: int) -> int:
    """Reserve ``count`` numbers of a series in this transaction; -> the first one."""
    await conn.execute(
        "INSERT INTO document_counters (tenant_id, series) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING", tenant_id, series,
    )
    last: int = await conn.fetchval(
        "UPDATE document_counters SET last_seq = last_seq + $3"
        " WHERE tenant_id = $1 AND series = $2 RETURNING last_seq", tenant_id, series, count,
    )
    return last - count + 1


async def finalize_rows(
    conn: asyncpg.Connection, tenant_id: str, invoice_ids: Sequence[str], now: datetime,
    series: str = "invoice",
) -> list[Any]:
    """Number and finalize drafts of one tenant (locked by the caller), in the given order,
    and queue their ``finalized`` events; -> the finalized rows."""
    if not invoice_ids:
        return []
    first = await take_numbers(conn, tenant_id, series, len(invoice_ids))
    prefix, pattern = await numbering(conn, tenant_id, series)
    issued = {r["invoice_id"]: r["issued_on"] for r in await conn.fetch(
        "SELECT invoice_id, issued_on FROM invoices WHERE invoice_id = ANY($1)",
        list(invoice_ids),
    )}
    seqs = [first + i for i in range(len(invoice_ids))]
    numbers = [format_number(pattern, prefix=prefix, seq=seq, issued_on=issued[i])
               for i, seq in zip(invoice_ids, seqs, strict=True)]
    rows: list[Any] = await conn.fetch(
        "UPDATE invoices i SET status = 'finalized', number = n.number, number_seq = n.seq,"
        " finalized_at = $4, review_until = NULL"
        " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS n(id, number, seq)"
        " WHERE i.invoice_id = n.id AND i.status = 'draft' RETURNING i.*",
        list(invoice_ids), numbers, seqs, now,
    )
    assert len(rows) == len(invoice_ids), "finalize_rows needs drafts locked by the caller"
    rows.sort(key=lambda r: r["number_seq"])
    for kind in ("invoice", "receipt"):
        mine = [r for r in rows if r["kind"] == kind]
        event = "receipt.issued" if kind == "receipt" else "invoice.finalized"
        await events.emit_many(conn, tenant_id, event, mine, now)
    return rows


async def finalize_due(pool: asyncpg.Pool, now: datetime, batch: int = 2000) -> int:
    """Finalize the drafts whose review window has closed (at once for automatic tenants)."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(DUE_SQL, now, batch)
            if not rows:
                return total
            by_tenant: dict[str, list[str]] = {}
            for r in rows:
                by_tenant.setdefault(r["tenant_id"], []).append(r["invoice_id"])
            for tenant_id in sorted(by_tenant):
                total += len(await finalize_rows(conn, tenant_id, by_tenant[tenant_id], now))


async def lock_invoice(conn: asyncpg.Connection, tenant_id: str, invoice_id: str) -> Any:
    row = await conn.fetchrow(
        "SELECT * FROM invoices WHERE tenant_id = $1 AND invoice_id = $2 FOR UPDATE",
        tenant_id, invoice_id,
    )
    if row is None:
        raise InvoiceNotFound(invoice_id)
    return row


def summary(r: Any) -> dict[str, Any]:
    """What the audit log keeps of an invoice before and after a change."""
    return {k: r[k] for k in ("status", "number", "subtotal", "tax_total", "total",
                              "amount_due", "credit_applied")}


async def audit(conn: asyncpg.Connection, actor: Actor | None, action: str, before: Any,
                after: Any) -> None:
    """The change's audit row, in the change's own transaction."""
    if actor is not None:
        await record_change(conn, actor, before["tenant_id"], action,
                            f"invoice:{before['invoice_id']}", summary(before), summary(after))


async def finalize(pool: asyncpg.Pool, tenant_id: str, invoice_id: str, now: datetime,
                   actor: Actor | None = None) -> Any:
    """Finalize one draft now (before its review window closes); finalizing a finalized
    invoice answers it unchanged."""
    async with pool.acquire() as conn, conn.transaction():
        row = await lock_invoice(conn, tenant_id, invoice_id)
        if row["status"] != "draft":
            if row["status"] == "void":
                raise InvoiceStateError(invoice_id, row["status"], "finalize")
            return row
        done = (await finalize_rows(conn, tenant_id, [invoice_id], now, row["kind"]))[0]
        await audit(conn, actor, "invoice.finalize", row, done)
        return done


async def void(
    pool: asyncpg.Pool, tenant_id: str, invoice_id: str, reason: str, now: datetime,
    actor: Actor | None = None,
) -> Any:
    """Void a finalized, unpaid invoice (a draft is corrected instead); a repeat answers it."""
    if not reason.strip():
        raise ValueError("a void needs a reason")
    async with pool.acquire() as conn, conn.transaction():
        row = await lock_invoice(conn, tenant_id, invoice_id)
        if row["status"] == "void":
            return row
        if row["status"] != "finalized":
            raise InvoiceStateError(invoice_id, row["status"], "void")
        out = await conn.fetchrow(
            "UPDATE invoices SET status = 'void', voided_at = $2, void_reason = $3"
            " WHERE invoice_id = $1 RETURNING *", invoice_id, now, reason,
        )
        await events.emit(conn, "invoice.voided", out, now)
        await audit(conn, actor, "invoice.void", row, out)
        return out
