"""Credit note routes: issue one against a finalized invoice (exactly once by Idempotency-Key),
list, read, and its documents (HTML, PDF) from the tenant's template like invoices."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import HTMLResponse
from pydantic import Field

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.catalog_views import dump, minor_in
from admin_api.billing.dunning_routes import reevaluate
from admin_api.billing.invoices_routes import INVOICE, InvoicePath, pdf_renderer
from admin_api.billing.payments_routes import RequiredKey
from admin_api.billing.schemas import Label, MoneyIn
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import Body, Cursor, Limit, Out, Page
from billing import credit_notes
from billing.amounts import format_minor
from billing.catalog import lookups
from billing.credit_notes import CreditNote
from billing.crediting import CreditAsk
from billing.documents.pdf import ChromiumMissing
from billing.documents.templating import render_html
from billing.invoice_document import load_credit_note

router = APIRouter(tags=["receivables"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
NOTES = "/v1/tenants/{tenant_id}/credit-notes"
NOTE = NOTES + "/{credit_note_id}"
NotePath = Annotated[str, Path(pattern=r"^cn_[0-9a-f]{32}$")]


class CreditLineIn(Body):
    position: int = Field(ge=1, le=100_000, description="The invoice line's position")
    amount: MoneyIn = Field(description="As charged on the line (before exclusive taxes)")
    reason: Label


class CreditNoteCreate(Body):
    lines: list[CreditLineIn] = Field(min_length=1, max_length=500)
    settle: Literal["credit", "refund"] = Field(
        "credit", description="What the invoice no longer owes goes to account credit, or is"
        " refunded")  # fmt: skip


class CreditLineOut(Out):
    position: int
    description: str
    amount: str
    net: str
    tax: str
    reason: str


class CreditNoteOut(Out):
    credit_note_id: str
    number: str
    invoice_id: str
    account_id: str
    currency: str
    issued_on: date
    settle: Literal["credit", "refund"]
    subtotal: str
    tax_total: str
    total: str
    applied: str = Field(description="Taken off what the invoice still owed")
    to_credit: str
    refunded: str
    lines: list[CreditLineOut]
    created_at: datetime
    replayed: bool = False


class CreditNotePage(Page):
    items: list[CreditNoteOut]


def note_out(n: CreditNote, replayed: bool = False) -> CreditNoteOut:
    cur = n.currency

    def m(v: int) -> str:
        return format_minor(v, cur)

    return CreditNoteOut(
        credit_note_id=n.credit_note_id, number=n.number, invoice_id=n.invoice_id,
        account_id=n.account_id, currency=cur, issued_on=n.issued_on,
        settle=n.settle,
        subtotal=m(n.subtotal), tax_total=m(n.tax_total), total=m(n.total),
        applied=m(n.applied), to_credit=m(n.to_credit), refunded=m(n.refunded),
        lines=[CreditLineOut(position=p, description=d, amount=m(a), net=m(net), tax=m(tax),
                             reason=why) for p, d, a, net, tax, why in n.lines],
        created_at=n.created_at, replayed=replayed,
    )  # fmt: skip


@router.post(
    INVOICE + "/credit-notes", response_model=CreditNoteOut, status_code=201,
    responses={200: {"model": CreditNoteOut, "description": "Already issued under this"
                     " Idempotency-Key"}, **responses(401, 403, 404, 409, 422)},
    summary="Issue a credit note against a finalized invoice (per line, with reasons)",
)  # fmt: skip
async def issue_credit_note(
    ctx: Ctx, scope: Admins, invoice_id: InvoicePath, body: CreditNoteCreate,
    response: Response, idempotency_key: RequiredKey,
) -> CreditNoteOut:  # fmt: skip
    async with ctx.pool.acquire() as conn, conn.transaction():
        tenant = await lookups.tenant(conn, scope.tenant_id)
        cur = await conn.fetchval("SELECT currency FROM invoices WHERE tenant_id = $1"
                                  " AND invoice_id = $2", scope.tenant_id, invoice_id)  # fmt: skip
        if cur is None:
            raise ApiProblem(404, "not_found", f"invoice {invoice_id!r} not found")
        asks = tuple(CreditAsk(x.position, minor_in(x.amount, cur.strip(), "amount"), x.reason)
                     for x in body.lines)  # fmt: skip
        n, created = await credit_notes.issue(
            conn, scope.tenant_id, invoice_id, asks, settle=body.settle,
            idempotency_key=idempotency_key, today=tenant.today(ctx.now()), at=ctx.now(),
            created_by=scope.caller.key_id,
        )  # fmt: skip
        out = note_out(n, replayed=not created)
        if created:
            await record_change(conn, scope.caller, scope.tenant_id, "credit_note.issue",
                                f"invoice:{invoice_id}:credit_note:{n.credit_note_id}", None,
                                dump(out))  # fmt: skip
    if created:
        await reevaluate(ctx, scope.tenant_id, n.account_id)
    response.status_code = 201 if created else 200
    return out


@router.get(NOTES, response_model=CreditNotePage, responses=responses(401, 403, 404, 422),
            summary="The tenant's credit notes, oldest first")
async def list_credit_notes(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None
) -> CreditNotePage:
    key = pagination.created_key(cursor)
    rows = await credit_notes.page(ctx.pool, scope.tenant_id, None, key, limit + 1)
    items, more = pagination.page(rows, limit)
    return CreditNotePage(
        items=[note_out(n) for n in items],
        next_cursor=(pagination.encode(items[-1].created_at, items[-1].credit_note_id)
                     if more else None),
    )  # fmt: skip


@router.get(NOTE, response_model=CreditNoteOut, responses=responses(401, 403, 404, 422),
            summary="A credit note")
async def get_credit_note(ctx: Ctx, scope: Readers, credit_note_id: NotePath) -> CreditNoteOut:
    return note_out(await credit_notes.get(ctx.pool, scope.tenant_id, credit_note_id))


@router.get(NOTE + "/document.html", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                             "description": "The credit note as a web page"},
                       **responses(401, 403, 404, 422)},
            summary="The credit note as HTML (the tenant's document template)")  # fmt: skip
async def credit_note_html(ctx: Ctx, scope: Readers, credit_note_id: NotePath) -> HTMLResponse:
    r = await load_credit_note(ctx.pool, scope.tenant_id, credit_note_id)
    return HTMLResponse(await asyncio.to_thread(render_html, r.document, r.branding, r.source))


@router.get(NOTE + "/document.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {"schema": {
                "type": "string", "format": "binary"}}}, "description": "The PDF"},
                **responses(401, 403, 404, 422, 503)},
            summary="The credit note as PDF (printed by headless Chromium)")  # fmt: skip
async def credit_note_pdf(ctx: Ctx, scope: Readers, credit_note_id: NotePath) -> Response:
    r = await load_credit_note(ctx.pool, scope.tenant_id, credit_note_id)
    try:
        pdf = await pdf_renderer(ctx).render(r.document, r.branding, r.source)
    except ChromiumMissing as e:
        raise ApiProblem(503, "pdf_unavailable", str(e)) from None
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{r.document.number}.pdf"'})
