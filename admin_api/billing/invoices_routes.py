"""Invoices: list, detail, corrections and refresh of drafts, finalize, void, documents."""

from __future__ import annotations

import asyncio
import os
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Final

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import HTMLResponse

from admin_api import pagination
from admin_api.audit import actor_of
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.invoices_schemas import (
    CorrectionIn,
    DocumentKind,
    InvoiceDetail,
    InvoicePage,
    InvoiceStatus,
    VoidIn,
)
from admin_api.billing.invoices_views import detail_out, invoice_out
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, invalid, responses
from admin_api.schemas import AccountPath, Cursor, Limit
from billing import invoice_document, lifecycle, review
from billing.amounts import parse_minor
from billing.composition import LineKind
from billing.documents.pdf import ChromiumMissing, PdfRenderer
from billing.documents.templating import render_html
from billing.errors import InvoiceNotFound

router = APIRouter(tags=["invoices"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Finance = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
INVOICES = "/v1/tenants/{tenant_id}/invoices"
INVOICE = INVOICES + "/{invoice_id}"
InvoicePath = Annotated[str, Path(pattern=r"^(inv|rcp)_[0-9a-f]{32}$")]


async def load_detail(pool: asyncpg.Pool, tenant_id: str, invoice_id: str) -> InvoiceDetail:
    row = await pool.fetchrow(
        "SELECT * FROM invoices WHERE tenant_id = $1 AND invoice_id = $2", tenant_id, invoice_id
    )
    if row is None:
        raise InvoiceNotFound(invoice_id)
    lines = await pool.fetch(
        "SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY position", invoice_id
    )
    taxes = await pool.fetch(
        "SELECT * FROM invoice_taxes WHERE invoice_id = $1 ORDER BY code", invoice_id
    )
    return detail_out(row, list(lines), list(taxes))


@router.get(INVOICES, response_model=InvoicePage, responses=responses(401, 403, 404, 422),
            summary="Invoices and receipts, newest first")
async def list_invoices(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None,
    status: Annotated[InvoiceStatus | None, Query()] = None,
    kind: Annotated[DocumentKind | None, Query()] = None,
    account_id: Annotated[AccountPath | None, Query()] = None,
    issued_from: Annotated[date | None, Query(alias="from")] = None,
    issued_to: Annotated[date | None, Query(alias="to")] = None,
) -> InvoicePage:
    after = pagination.decode(cursor, str)
    rows = await ctx.pool.fetch(
        "SELECT * FROM invoices WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)"
        " AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR account_id = $4)"
        " AND ($5::date IS NULL OR issued_on >= $5) AND ($6::date IS NULL OR issued_on < $6)"
        " AND ($7::text IS NULL OR invoice_id < $7)"
        " ORDER BY invoice_id DESC LIMIT $8",
        scope.tenant_id, status, kind, account_id, issued_from, issued_to,
        after[0] if after else None, limit + 1,
    )
    items, more = pagination.page(list(rows), limit)
    return InvoicePage(
        items=[invoice_out(r) for r in items],
        next_cursor=pagination.encode(items[-1]["invoice_id"]) if more else None,
    )


@router.get(INVOICE, response_model=InvoiceDetail, responses=responses(401, 403, 404, 422),
            summary="An invoice with its lines and taxes")
async def get_invoice(ctx: Ctx, scope: Readers, invoice_id: InvoicePath) -> InvoiceDetail:
    return await load_detail(ctx.pool, scope.tenant_id, invoice_id)


def _changes(body: CorrectionIn, currency: str) -> list[review.LineChange]:
    out = []
    for ch in body.changes:
        try:
            amount = (parse_minor(ch.amount, currency, allow_negative=True)
                      if ch.amount is not None else None)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        out.append(review.LineChange(
            op=ch.op, position=ch.position, description=ch.description, amount=amount,
            quantity=Decimal(ch.quantity) if ch.quantity is not None else None,
            tax_codes=tuple(ch.tax_codes) if ch.tax_codes is not None else None,
            kind=LineKind(ch.kind),
        ))
    return out


async def _currency(ctx: Ctx, scope: Scope, invoice_id: str) -> str:
    cur = await ctx.pool.fetchval(
        "SELECT currency FROM invoices WHERE tenant_id = $1 AND invoice_id = $2",
        scope.tenant_id, invoice_id,
    )
    if cur is None:
        raise InvoiceNotFound(invoice_id)
    return str(cur).strip()


@router.post(INVOICE + "/corrections", response_model=InvoiceDetail,
             responses=responses(401, 403, 404, 409, 422),
             summary="Add, change or remove lines of a draft (with a reason); recomputed")
async def correct_invoice(
    ctx: Ctx, scope: Finance, invoice_id: InvoicePath, body: CorrectionIn
) -> InvoiceDetail:
    changes = _changes(body, await _currency(ctx, scope, invoice_id))
    await review.correct(ctx.pool, scope.tenant_id, invoice_id, changes, body.reason,
                         ctx.now(), actor_of(scope.caller))
    return await load_detail(ctx.pool, scope.tenant_id, invoice_id)


@router.post(INVOICE + "/refresh", response_model=InvoiceDetail,
             responses=responses(401, 403, 404, 409, 422),
             summary="Recompute a draft with the current tax labels and discounts")
async def refresh_invoice(ctx: Ctx, scope: Finance, invoice_id: InvoicePath) -> InvoiceDetail:
    await review.refresh(ctx.pool, scope.tenant_id, invoice_id, ctx.now(),
                         actor_of(scope.caller))
    return await load_detail(ctx.pool, scope.tenant_id, invoice_id)


@router.post(INVOICE + "/finalize", response_model=InvoiceDetail,
             responses=responses(401, 403, 404, 409, 422),
             summary="Finalize a draft now: it gets its number and becomes immutable")
async def finalize_invoice(ctx: Ctx, scope: Finance, invoice_id: InvoicePath) -> InvoiceDetail:
    await lifecycle.finalize(ctx.pool, scope.tenant_id, invoice_id, ctx.now(),
                             actor_of(scope.caller))
    return await load_detail(ctx.pool, scope.tenant_id, invoice_id)


@router.post(INVOICE + "/void", response_model=InvoiceDetail,
             responses=responses(401, 403, 404, 409, 422),
             summary="Void a finalized, unpaid invoice (with a reason)")
async def void_invoice(
    ctx: Ctx, scope: Finance, invoice_id: InvoicePath, body: VoidIn
) -> InvoiceDetail:
    await lifecycle.void(ctx.pool, scope.tenant_id, invoice_id, body.reason, ctx.now(),
                         actor_of(scope.caller))
    return await load_detail(ctx.pool, scope.tenant_id, invoice_id)


def pdf_renderer(ctx: Ctx) -> PdfRenderer:
    """One PDF renderer per app (a template worker and a browser with a few tabs), started on
    the first PDF asked for; the browser ends with the process (its command pipe closes)."""
    renderer: PdfRenderer | None = getattr(ctx, "_pdf", None)
    if renderer is None:
        renderer = PdfRenderer(tabs=max(1, min(4, os.cpu_count() or 1)))
        ctx._pdf = renderer  # type: ignore[attr-defined]
    return renderer


DOC_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **responses(401, 403, 404, 422),
}


@router.get(INVOICE + "/document.html", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                             "description": "The document as a web page"}, **DOC_RESPONSES},
            summary="The invoice or receipt as HTML (the same template as the PDF)")
async def document_html(ctx: Ctx, scope: Readers, invoice_id: InvoicePath) -> HTMLResponse:
    r = await invoice_document.load(ctx.pool, scope.tenant_id, invoice_id,
                                    _csv_url(scope, invoice_id))
    html = await asyncio.to_thread(render_html, r.document, r.branding, r.source)
    return HTMLResponse(html)


@router.get(INVOICE + "/document.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {"schema": {
                "type": "string", "format": "binary"}}}, "description": "The PDF"},
                **responses(401, 403, 404, 422, 503)},
            summary="The invoice or receipt as PDF (printed by headless Chromium)")
async def document_pdf(ctx: Ctx, scope: Readers, invoice_id: InvoicePath) -> Response:
    r = await invoice_document.load(ctx.pool, scope.tenant_id, invoice_id,
                                    _csv_url(scope, invoice_id))
    try:
        pdf = await pdf_renderer(ctx).render(r.document, r.branding, r.source)
    except ChromiumMissing as e:
        raise ApiProblem(503, "pdf_unavailable", str(e)) from None
    name = r.document.number or f"draft-{invoice_id}"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}.pdf"'})


@router.get(INVOICE + "/calls.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "Every call the invoice billed"}, **DOC_RESPONSES},
            summary="The calls an invoice billed, as CSV")
async def calls_csv(ctx: Ctx, scope: Readers, invoice_id: InvoicePath) -> Response:
    text = await invoice_document.calls_csv(ctx.pool, scope.tenant_id, invoice_id)
    return Response(text, media_type="text/csv")


def _csv_url(scope: Scope, invoice_id: str) -> str:
    return f"/v1/tenants/{scope.tenant_id}/invoices/{invoice_id}/calls.csv"
