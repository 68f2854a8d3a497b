"""Exports for accounting: a period's invoices and their lines, as CSV or JSON.

Amounts are decimal strings in each invoice's currency (the CSV carries the currency on every
row); the period is of issue dates, half-open ``[from, to)``.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from admin_api.auth import BILLING_READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import invalid, responses
from billing.amounts import format_minor

router = APIRouter(tags=["exports"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
EXPORTS = "/v1/tenants/{tenant_id}/exports"
MAX_DAYS: Final = 400
Format = Literal["csv", "json"]

INVOICE_FIELDS: Final = (
    "invoice_id", "kind", "number", "account_id", "status", "currency", "issued_on", "due_on",
    "period_start", "period_end", "subtotal", "tax_total", "total", "credit_applied",
    "amount_due", "finalized_at", "voided_at",
)
LINE_FIELDS: Final = (
    "invoice_id", "number", "position", "kind", "description", "quantity", "unit", "currency",
    "amount", "net", "tax_amount", "tax_codes", "calls", "seconds", "ref",
)
_MONEY: Final = frozenset({"subtotal", "tax_total", "total", "credit_applied", "amount_due",
                           "amount", "net", "tax_amount"})

CSV_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}},
                      "application/json": {"schema": {"type": "array",
                                                      "items": {"type": "object"}}}},
          "description": "The rows, in the asked format"},
}


def _period(start: date, end: date) -> None:
    if end <= start:
        raise invalid("to must be after from")
    if (end - start).days > MAX_DAYS:
        raise invalid(f"an export covers at most {MAX_DAYS} days")


def _value(name: str, r: Any, cur: str) -> Any:
    v = r[name]
    if name in _MONEY:
        return format_minor(v, cur)
    if name == "tax_codes":
        return " ".join(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if name == "quantity":
        return str(v)
    return v


def _render(rows: list[Any], fields: tuple[str, ...], fmt: Format, name: str) -> Response:
    items = [{f: _value(f, r, r["currency"].strip()) for f in fields} for r in rows]
    for item in items:
        item["currency"] = str(item["currency"]).strip()
    if fmt == "json":
        return JSONResponse(items)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(items)
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.get(EXPORTS + "/invoices", response_class=Response, responses={
    **CSV_RESPONSE, **responses(401, 403, 404, 422)}, summary="Invoices issued in a period")
async def export_invoices(
    ctx: Ctx, scope: Readers, start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")], format: Format = "csv",
) -> Response:
    _period(start, end)
    rows = await ctx.pool.fetch(
        "SELECT * FROM invoices WHERE tenant_id = $1 AND issued_on >= $2 AND issued_on < $3"
        " AND status <> 'draft' ORDER BY kind, number_seq", scope.tenant_id, start, end,
    )
    return _render(list(rows), INVOICE_FIELDS, format, f"invoices-{start}-{end}")


@router.get(EXPORTS + "/invoice-lines", response_class=Response, responses={
    **CSV_RESPONSE, **responses(401, 403, 404, 422)},
    summary="Lines of the invoices issued in a period")
async def export_lines(
    ctx: Ctx, scope: Readers, start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")], format: Format = "csv",
) -> Response:
    _period(start, end)
    rows = await ctx.pool.fetch(
        "SELECT l.*, i.number, i.currency FROM invoice_lines l JOIN invoices i USING"
        " (invoice_id) WHERE i.tenant_id = $1 AND i.issued_on >= $2 AND i.issued_on < $3"
        " AND i.status <> 'draft' ORDER BY i.kind, i.number_seq, l.position",
        scope.tenant_id, start, end,
    )
    return _render(list(rows), LINE_FIELDS, format, f"invoice-lines-{start}-{end}")
