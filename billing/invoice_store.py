"""Writing invoices: the invoice row, its lines and its taxes (Postgres adapter).

A batch of invoices is written with COPY (three statements for any number of invoices); the
caller's transaction also advances the accounts' billing state, so an invoice and the state
that says it exists commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import asyncpg

from billing.composition import ComposedInvoice

INVOICE_COLUMNS: Final = (
    "invoice_id", "tenant_id", "account_id", "kind", "period_index", "period_start",
    "period_end", "starts_at", "ends_at", "currency", "status", "issued_on", "due_on",
    "review_until", "subtotal", "tax_total", "total", "credit_applied", "amount_due",
    "usage_micros", "cut_seq", "usage_credited", "source_ref", "plan_id", "payment_text",
    "inputs",
)
LINE_COLUMNS: Final = (
    "invoice_id", "position", "kind", "description", "quantity", "unit", "amount", "net",
    "tax_codes", "tax_amount", "calls", "seconds", "ref", "manual", "reason",
)
TAX_COLUMNS: Final = ("invoice_id", "code", "name", "rate", "inclusive", "base", "amount")


def new_id(kind: str = "invoice") -> str:
    return f"{'inv' if kind == 'invoice' else 'rcp'}_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class InvoiceHeader:
    invoice_id: str
    tenant_id: str
    account_id: str
    currency: str
    issued_on: date
    due_on: date | None
    review_until: datetime | None
    kind: str = "invoice"
    period_index: int | None = None
    period_start: date | None = None
    period_end: date | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    usage_micros: int = 0
    cut_seq: int | None = None
    usage_credited: bool = True
    source_ref: str | None = None
    plan_id: str | None = None
    payment_text: str = ""
    inputs: str | None = None  # inputs_codec.dumps of what it was composed from


def rows_of(h: InvoiceHeader, c: ComposedInvoice) -> tuple[tuple[Any, ...], list[Any], list[Any]]:
    invoice = (
        h.invoice_id, h.tenant_id, h.account_id, h.kind, h.period_index, h.period_start,
        h.period_end, h.starts_at, h.ends_at, h.currency, "draft", h.issued_on, h.due_on,
        h.review_until, c.subtotal, c.tax_total, c.total, c.credit_applied, c.amount_due,
        h.usage_micros, h.cut_seq, h.usage_credited, h.source_ref, h.plan_id, h.payment_text,
        h.inputs,
    )
    lines = [
        (h.invoice_id, ln.position, str(ln.kind), ln.description, Decimal(ln.quantity),
         ln.unit, ln.amount, ln.net, list(ln.tax_codes), ln.tax_amount, ln.calls, ln.seconds,
         ln.ref, False, None)
        for ln in c.lines
    ]
    taxes = [
        (h.invoice_id, t.code, t.name, Decimal(t.rate), t.inclusive, t.base, t.amount)
        for t in c.tax_totals
    ]
    return invoice, lines, taxes


async def insert_many(
    conn: asyncpg.Connection, items: Sequence[tuple[InvoiceHeader, ComposedInvoice]]
) -> None:
    invoices: list[tuple[Any, ...]] = []
    lines: list[Any] = []
    taxes: list[Any] = []
    for h, c in items:
        inv, ls, ts = rows_of(h, c)
        invoices.append(inv)
        lines += ls
        taxes += ts
    if not invoices:
        return
    await conn.copy_records_to_table("invoices", records=invoices, columns=INVOICE_COLUMNS)
    if lines:
        await conn.copy_records_to_table("invoice_lines", records=lines, columns=LINE_COLUMNS)
    if taxes:
        await conn.copy_records_to_table("invoice_taxes", records=taxes, columns=TAX_COLUMNS)


async def replace_content(conn: asyncpg.Connection, invoice_id: str, c: ComposedInvoice,
                          manual: dict[int, str] | None = None) -> None:
    """A draft's lines and totals recomputed (review corrections, refresh). ``manual`` marks
    the positions an admin added or changed, with the reason."""
    await conn.execute("DELETE FROM invoice_lines WHERE invoice_id = $1", invoice_id)
    await conn.execute("DELETE FROM invoice_taxes WHERE invoice_id = $1", invoice_id)
    header = await conn.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1", invoice_id)
    assert header is not None
    h = InvoiceHeader(invoice_id, header["tenant_id"], header["account_id"], header["currency"],
                      header["issued_on"], header["due_on"], header["review_until"])
    _, lines, taxes = rows_of(h, c)
    marks = manual or {}
    lines = [(*ln[:13], ln[1] in marks, marks.get(ln[1])) for ln in lines]
    if lines:
        await conn.copy_records_to_table("invoice_lines", records=lines, columns=LINE_COLUMNS)
    if taxes:
        await conn.copy_records_to_table("invoice_taxes", records=taxes, columns=TAX_COLUMNS)
    await conn.execute(
        "UPDATE invoices SET subtotal = $2, tax_total = $3, total = $4, credit_applied = $5,"
        " amount_due = $6 WHERE invoice_id = $1 AND status = 'draft'",
        invoice_id, c.subtotal, c.tax_total, c.total, c.credit_applied, c.amount_due,
    )
