"""Credit notes (Postgres adapter): issued once by Idempotency-Key against a finalized invoice.

In one transaction, with the invoice row locked (so two notes never credit the same amount):
the figures (``billing.crediting``) from the invoice's lines, labels and rounding, less what
earlier notes took; a number from the tenant's gapless ``credit_note`` series; the part of the
total the invoice still owed reduces its open amount (``applied``), the rest goes to the
account's credit (consumed by later invoices) or is recorded as refunded; ``credit_note.issued``
goes to the webhook outbox.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

from billing import inputs_codec
from billing.catalog.lookups import Conn
from billing.crediting import Creditable, CreditAsk, CreditError, compute
from billing.errors import (
    BillingNotFound,
    IdempotencyKeyReused,
    InvalidBillingInput,
    InvoiceNotFound,
    InvoiceStateError,
)
from billing.lifecycle import numbering, take_numbers
from billing.minor_units import exponent
from billing.numbering import format_number
from billing.payments import restate
from billing.taxes import label_table
from billing.webhooks.outbox import enqueue

__all__ = ["CreditNote", "Settle", "get", "issue", "page"]

Settle = Literal["credit", "refund"]
CREDITABLE: Final = ("finalized", "partially_paid", "paid")


@dataclass(frozen=True, slots=True)
class CreditNote:
    credit_note_id: str
    invoice_id: str
    account_id: str
    number: str
    currency: str
    issued_on: date
    settle: str
    subtotal: int
    tax_total: int
    total: int
    applied: int
    to_credit: int
    refunded: int
    lines: tuple[tuple[int, str, int, int, int, str], ...]  # position, text, amount, net, tax, why
    taxes: tuple[tuple[str, str, str, bool, int, int], ...]  # code, name, rate, incl, base, tax
    created_at: datetime


def credit_note_id_for(tenant_id: str, idempotency_key: str) -> str:
    return "cn_" + hashlib.sha256(f"{tenant_id}\0{idempotency_key}".encode()).hexdigest()[:32]


def _hash(invoice_id: str, asks: tuple[CreditAsk, ...], settle: str) -> str:
    body = [invoice_id, settle, [[a.position, a.amount, a.reason] for a in asks]]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


async def issue(conn: Conn, tenant_id: str, invoice_id: str, asks: tuple[CreditAsk, ...], *,
                settle: Settle, idempotency_key: str, today: date, at: datetime,
                created_by: str | None = None) -> tuple[CreditNote, bool]:  # fmt: skip
    """Issue a credit note (call inside a transaction); -> (the note, whether new)."""
    if settle not in ("credit", "refund"):
        raise InvalidBillingInput("settle must be credit or refund")
    inv = await conn.fetchrow(
        "SELECT * FROM invoices WHERE tenant_id = $1 AND invoice_id = $2 FOR UPDATE",
        tenant_id, invoice_id,
    )
    if inv is None or inv["kind"] != "invoice":
        raise InvoiceNotFound(invoice_id)
    note_id = credit_note_id_for(tenant_id, idempotency_key)
    digest = _hash(invoice_id, asks, settle)
    found = await conn.fetchval(
        "SELECT request_hash FROM credit_notes WHERE tenant_id = $1 AND idem_key = $2",
        tenant_id, idempotency_key,
    )
    if found is not None:
        if found != digest:
            raise IdempotencyKeyReused()
        return await get(conn, tenant_id, note_id), False
    if inv["status"] not in CREDITABLE:
        raise InvoiceStateError(invoice_id, inv["status"], "credited")
    lines = await conn.fetch(
        "SELECT l.position, l.description, l.amount, l.tax_codes, COALESCE(c.credited, 0)"
        " AS credited FROM invoice_lines l LEFT JOIN (SELECT invoice_position, sum(amount)"
        " AS credited FROM credit_note_lines cl JOIN credit_notes n USING (credit_note_id)"
        " WHERE n.invoice_id = $1 GROUP BY invoice_position) c"
        " ON c.invoice_position = l.position WHERE l.invoice_id = $1 ORDER BY l.position",
        invoice_id,
    )
    credited_total = await conn.fetchval(
        "SELECT COALESCE(sum(total), 0) FROM credit_notes WHERE invoice_id = $1", invoice_id)
    inputs = inputs_codec.loads(inv["inputs"]) if inv["inputs"] else None
    try:
        figures = compute(
            [Creditable(r["position"], r["description"], r["amount"], tuple(r["tax_codes"]),
                        int(r["credited"])) for r in lines], asks,
            label_table(inputs.taxes) if inputs else {},
            inputs.rounding if inputs else "per_line",  # type: ignore[arg-type]
            total_left=inv["total"] - int(credited_total),
        )  # fmt: skip
    except CreditError as e:
        raise InvalidBillingInput(str(e)) from None
    open_now = await conn.fetchval("SELECT open FROM invoice_open WHERE invoice_id = $1",
                                   invoice_id) or 0  # fmt: skip
    applied = min(max(open_now, 0), figures.total)
    rest = figures.total - applied
    to_credit, refunded = (rest, 0) if settle == "credit" else (0, rest)
    prefix, pattern = await numbering(conn, tenant_id, "credit_note")
    seq = await take_numbers(conn, tenant_id, "credit_note", 1)
    number = format_number(pattern, prefix=prefix, seq=seq, issued_on=today)
    cur = inv["currency"].strip()
    await conn.execute(
        "INSERT INTO credit_notes (credit_note_id, tenant_id, account_id, invoice_id, number,"
        " number_seq, currency, issued_on, settle, subtotal, tax_total, total, applied,"
        " to_credit, refunded, idem_key, request_hash, created_by, created_at) VALUES ($1, $2,"
        " $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        note_id, tenant_id, inv["account_id"], invoice_id, number, seq, cur, today, settle,
        figures.subtotal, figures.tax_total, figures.total, applied, to_credit, refunded,
        idempotency_key, digest, created_by, at,
    )
    await conn.executemany(
        "INSERT INTO credit_note_lines (credit_note_id, invoice_position, description, amount,"
        " net, tax_amount, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(note_id, x.position, x.description, x.amount, x.net, x.tax, x.reason)
         for x in figures.lines],
    )  # fmt: skip
    if figures.taxes:
        await conn.executemany(
            "INSERT INTO credit_note_taxes (credit_note_id, code, name, rate, inclusive, base,"
            " amount) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [(note_id, t.code, t.name, t.rate, t.inclusive, t.base, t.amount)
             for t in figures.taxes],
        )  # fmt: skip
    if to_credit:
        await conn.execute(
            "UPDATE billing_accounts SET credit_balance = credit_balance + $3"
            " WHERE tenant_id = $1 AND account_id = $2", tenant_id, inv["account_id"], to_credit,
        )  # fmt: skip
    await restate(conn, [invoice_id], at)
    note = await get(conn, tenant_id, note_id)
    await enqueue(conn, tenant_id, "credit_note.issued", {"credit_note": note_data(note)},
                  dedup_key=f"credit_note.issued:{note_id}", at=at)  # fmt: skip
    return note, True


_SELECT: Final = (
    "SELECT n.*,"
    " COALESCE((SELECT array_agg(ARRAY[l.invoice_position::text, l.description,"
    " l.amount::text, l.net::text, l.tax_amount::text, l.reason] ORDER BY l.invoice_position)"
    " FROM credit_note_lines l WHERE l.credit_note_id = n.credit_note_id), '{}') AS ls,"
    " COALESCE((SELECT array_agg(ARRAY[t.code, t.name, t.rate::text, t.inclusive::text,"
    " t.base::text, t.amount::text] ORDER BY t.code) FROM credit_note_taxes t"
    " WHERE t.credit_note_id = n.credit_note_id), '{}') AS ts FROM credit_notes n"
)


def _note(r: Any) -> CreditNote:
    return CreditNote(
        r["credit_note_id"], r["invoice_id"], r["account_id"], r["number"],
        r["currency"].strip(), r["issued_on"], r["settle"], r["subtotal"], r["tax_total"],
        r["total"], r["applied"], r["to_credit"], r["refunded"],
        tuple((int(x[0]), x[1], int(x[2]), int(x[3]), int(x[4]), x[5]) for x in r["ls"]),
        tuple((x[0], x[1], x[2], x[3] == "true", int(x[4]), int(x[5])) for x in r["ts"]),
        r["created_at"],
    )  # fmt: skip


async def get(conn: Conn, tenant_id: str, credit_note_id: str) -> CreditNote:
    r = await conn.fetchrow(_SELECT + " WHERE n.tenant_id = $1 AND n.credit_note_id = $2",
                            tenant_id, credit_note_id)  # fmt: skip
    if r is None:
        raise BillingNotFound("credit note", credit_note_id)
    return _note(r)


async def page(conn: Conn, tenant_id: str, invoice_id: str | None,
               after: tuple[datetime, str] | None, limit: int) -> list[CreditNote]:  # fmt: skip
    rows = await conn.fetch(
        _SELECT + " WHERE n.tenant_id = $1 AND ($2::text IS NULL OR n.invoice_id = $2)"
        " AND ($3::timestamptz IS NULL OR (n.created_at, n.credit_note_id) > ($3, $4))"
        " ORDER BY n.created_at, n.credit_note_id LIMIT $5",
        tenant_id, invoice_id, after[0] if after else None, after[1] if after else None, limit,
    )
    return [_note(r) for r in rows]


def note_data(n: CreditNote) -> dict[str, Any]:
    """The credit note as accounting receives it (minor units with their exponent)."""
    return {
        "id": n.credit_note_id, "number": n.number, "invoice_id": n.invoice_id,
        "account_id": n.account_id, "currency": n.currency,
        "minor_unit_exponent": exponent(n.currency), "issued_on": n.issued_on.isoformat(),
        "settle": n.settle, "subtotal": n.subtotal, "tax_total": n.tax_total,
        "total": n.total, "applied": n.applied, "to_credit": n.to_credit,
        "refunded": n.refunded,
        "lines": [{"position": p, "description": d, "amount": a, "net": net, "tax": tax,
                   "reason": why} for p, d, a, net, tax, why in n.lines],
    }  # fmt: skip
