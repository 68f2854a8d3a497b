"""An invoice or receipt as a document: its rows, the tenant's seller details and the calls it
billed, mapped into ``billing.documents``' model (Postgres adapter)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import asyncpg

from billing.documents.model import (
    Branding,
    CallRow,
    DocLine,
    DocTax,
    Document,
    DocumentKind,
    Party,
)
from billing.errors import BillingNotFound, InvoiceNotFound

APPENDIX_ROWS: Final = 200

# The calls an invoice billed: its rectangle of the ledger minus the previous invoice's.
CALLS_SQL: Final = """
WITH prev AS (
    SELECT coalesce(max(p.cut_seq), 0) AS cut, coalesce(max(p.ends_at), '-infinity') AS ends
    FROM invoices p WHERE p.tenant_id = $1 AND p.account_id = $2 AND p.kind = 'invoice'
      AND p.period_start < $5
)
SELECT c.started_at, c.ended_at, c.destination, coalesce(c.billed_seconds, 0) AS seconds,
       -e.amount AS micros, count(*) OVER () AS total
FROM ledger_entries e CROSS JOIN prev
JOIN calls c ON c.tenant_id = e.tenant_id AND c.call_id = e.call_id
WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.seq <= $3 AND e.ts < $4
  AND e.kind IN ('commit', 'expire') AND NOT (e.seq <= prev.cut AND e.ts < prev.ends)
ORDER BY e.ts
LIMIT $6
"""


@dataclass(frozen=True, slots=True)
class Rendering:
    document: Document
    branding: Branding
    source: str | None  # the tenant's own template, if any


def _lines(rows: list[Any]) -> tuple[DocLine, ...]:
    out = []
    for r in rows:
        detail = ""
        if r["calls"]:
            minutes = Decimal(r["seconds"]) / 60
            detail = f"{r['calls']} calls, {minutes.quantize(Decimal('0.1'))} min"
        if r["manual"] and r["reason"]:
            detail = (detail + "; " if detail else "") + f"corrected: {r['reason']}"
        qty = Decimal(r["quantity"])
        out.append(DocLine(
            description=r["description"], amount=r["amount"],
            quantity=None if qty == 1 and not r["unit"] else qty, unit=r["unit"], detail=detail,
        ))
    return tuple(out)


async def load(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, invoice_id: str,
               csv_url: str | None = None) -> Rendering:
    inv = await conn.fetchrow(
        "SELECT * FROM invoices WHERE tenant_id = $1 AND invoice_id = $2", tenant_id, invoice_id
    )
    if inv is None:
        raise InvoiceNotFound(invoice_id)
    lines = await conn.fetch(
        "SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY position", invoice_id)
    taxes = await conn.fetch(
        "SELECT * FROM invoice_taxes WHERE invoice_id = $1 ORDER BY code", invoice_id)
    who = await _who(conn, tenant_id, inv["account_id"])
    calls: list[Any] = []
    if inv["kind"] == "invoice" and inv["cut_seq"] is not None:
        calls = list(await conn.fetch(CALLS_SQL, tenant_id, inv["account_id"], inv["cut_seq"],
                                      inv["ends_at"], inv["period_start"], APPENDIX_ROWS))
    seller, buyer = parties(who, tenant_id, inv["account_id"])
    doc = Document(
        kind=DocumentKind.RECEIPT if inv["kind"] == "receipt" else DocumentKind.INVOICE,
        number=inv["number"], issued_on=inv["issued_on"], currency=inv["currency"].strip(),
        locale=locale_of(who)[0], timezone=locale_of(who)[1], seller=seller, buyer=buyer,
        account_id=inv["account_id"], lines=_lines(list(lines)),
        taxes=tuple(DocTax(name=t["name"], rate=Decimal(t["rate"]) / 100, base=t["base"],
                           amount=t["amount"], inclusive=t["inclusive"]) for t in taxes),
        subtotal=inv["subtotal"], tax_total=inv["tax_total"], total=inv["total"],
        credit_applied=inv["credit_applied"], amount_due=inv["amount_due"],
        period_start=inv["period_start"], period_end=inv["period_end"], due_on=inv["due_on"],
        payment_text=inv["payment_text"],
        calls=tuple(CallRow(started_at=c["started_at"] or c["ended_at"],
                            destination=c["destination"] or "", seconds=c["seconds"],
                            amount_micros=c["micros"]) for c in calls),
        calls_total=int(calls[0]["total"]) if calls else 0, calls_csv_url=csv_url,
        status=inv["status"],
    )
    return rendering(doc, who)


async def _who(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, account_id: str) -> Any:
    return await conn.fetchrow(
        "SELECT t.name AS tenant_name, t.timezone, s.*, d.name AS buyer_name, d.email"
        " FROM tenants t LEFT JOIN billing_settings s USING (tenant_id)"
        " LEFT JOIN account_details d ON d.tenant_id = t.tenant_id AND d.account_id = $2"
        " WHERE t.tenant_id = $1", tenant_id, account_id,
    )


def parties(who: Any, tenant_id: str, account_id: str) -> tuple[Party, Party]:
    """(seller, buyer) from the tenant's billing settings and the account's details."""
    seller = Party(
        name=(who["seller_name"] if who and who["seller_name"] else None)
        or (who["tenant_name"] if who else "") or tenant_id,
        address_lines=tuple(who["seller_address"] or ()) if who else (),
        tax_ids=tuple(who["seller_tax_ids"] or ()) if who else (),
    )
    buyer = Party(name=(who["buyer_name"] if who else None) or account_id,
                  email=who["email"] if who else None)
    return seller, buyer


def locale_of(who: Any) -> tuple[str, str]:
    """(locale, timezone) of the tenant's documents."""
    return ((who["locale"] if who and who["locale"] else "en_US"),
            who["timezone"] if who else "UTC")  # fmt: skip


def rendering(doc: Document, who: Any) -> Rendering:
    branding = Branding(footer=who["footer"] if who and who["footer"] else "")
    return Rendering(doc, branding, who["template_source"] if who else None)


async def load_credit_note(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                           credit_note_id: str) -> Rendering:  # fmt: skip
    """A credit note as a document: its lines (negative amounts, each with its reason)."""
    n = await conn.fetchrow(
        "SELECT n.*, i.number AS invoice_number FROM credit_notes n JOIN invoices i"
        " USING (invoice_id) WHERE n.tenant_id = $1 AND n.credit_note_id = $2",
        tenant_id, credit_note_id,
    )
    if n is None:
        raise BillingNotFound("credit note", credit_note_id)
    lines = await conn.fetch("SELECT * FROM credit_note_lines WHERE credit_note_id = $1"
                             " ORDER BY invoice_position", credit_note_id)  # fmt: skip
    taxes = await conn.fetch("SELECT * FROM credit_note_taxes WHERE credit_note_id = $1"
                             " ORDER BY code", credit_note_id)  # fmt: skip
    who = await _who(conn, tenant_id, n["account_id"])
    seller, buyer = parties(who, tenant_id, n["account_id"])
    locale, zone = locale_of(who)
    settled = {"credit": "credited to the account", "refund": "refunded"}[n["settle"]]
    doc = Document(
        kind=DocumentKind.CREDIT_NOTE, number=n["number"], issued_on=n["issued_on"],
        currency=n["currency"].strip(), locale=locale, timezone=zone, seller=seller,
        buyer=buyer, account_id=n["account_id"],
        lines=tuple(DocLine(description=r["description"], amount=-r["amount"],
                            detail=r["reason"]) for r in lines),
        taxes=tuple(DocTax(name=t["name"], rate=Decimal(t["rate"]) / 100, base=-t["base"],
                           amount=-t["amount"], inclusive=t["inclusive"]) for t in taxes),
        subtotal=-n["subtotal"], tax_total=-n["tax_total"], total=-n["total"],
        amount_due=-n["total"], status=n["settle"],
        notes=f"Credit note for invoice {n['invoice_number']}: {settled}.",
    )  # fmt: skip
    return rendering(doc, who)


async def calls_csv(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, invoice_id: str
                    ) -> str:
    """Every call an invoice billed, as CSV (the appendix shows the first few hundred)."""
    import csv
    import io

    inv = await conn.fetchrow(
        "SELECT * FROM invoices WHERE tenant_id = $1 AND invoice_id = $2", tenant_id, invoice_id
    )
    if inv is None:
        raise InvoiceNotFound(invoice_id)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["started_at", "ended_at", "destination", "billed_seconds", "amount",
                "currency"])
    if inv["kind"] == "invoice" and inv["cut_seq"] is not None:
        for c in await conn.fetch(CALLS_SQL, tenant_id, inv["account_id"], inv["cut_seq"],
                                  inv["ends_at"], inv["period_start"], None):
            w.writerow([(c["started_at"] or c["ended_at"]).isoformat(), c["ended_at"].isoformat(),
                        c["destination"] or "", c["seconds"],
                        str(Decimal(c["micros"]) / 1_000_000), inv["currency"].strip()])
    return buf.getvalue()
