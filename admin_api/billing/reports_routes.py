"""Receivables reports, as JSON or CSV: aging as of a day (per account and per currency), and
payments by method and day."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from admin_api.auth import BILLING_READERS, Scope, allow
from admin_api.billing.exports_routes import Format
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import ID_PATTERN
from billing import receivables
from billing.aging import BUCKETS, AgingRow, age
from billing.amounts import format_minor
from billing.catalog import lookups

router = APIRouter(tags=["receivables"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
AGING = "/v1/tenants/{tenant_id}/reports/aging"
COLUMNS: Final = ("account_id", "currency", "invoiced", "paid", "credited", "outstanding",
                  *(label for label, _, _ in BUCKETS))  # fmt: skip

_ROW: Final = {"type": "object", "properties": {c: {"type": "string"} for c in COLUMNS}}
AGING_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "as_of": {"type": "string", "format": "date"},
            "buckets": {"type": "array", "items": {"type": "string"}},
            "accounts": {"type": "array", "items": _ROW},
            "totals": {"type": "array", "items": _ROW}}}},
        "text/csv": {"schema": {"type": "string"}}},
        "description": "Per account and currency, then the totals per currency"},
}  # fmt: skip


def _row(r: AgingRow) -> dict[str, str]:
    cur = r.currency
    out = {"account_id": r.account_id or "", "currency": cur,
           "invoiced": format_minor(r.invoiced, cur), "paid": format_minor(r.paid, cur),
           "credited": format_minor(r.credited, cur),
           "outstanding": format_minor(r.outstanding, cur)}  # fmt: skip
    for (label, _, _), amount in zip(BUCKETS, r.buckets, strict=True):
        out[label] = format_minor(amount, cur)
    return out


@router.get(AGING, response_class=Response,
            responses={**AGING_RESPONSE, **responses(401, 403, 404, 422)},
            summary="Receivables aging by due date: current, 1-30 ... 121+ days past due")
async def aging(
    ctx: Ctx, scope: Readers,
    as_of: Annotated[date | None, Query(description="Default: today in the tenant's zone")]
    = None,
    account_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    format: Annotated[Format, Query()] = "json",
) -> Response:  # fmt: skip
    async with ctx.pool.acquire() as conn:
        tenant = await lookups.tenant(conn, scope.tenant_id)
        if account_id is not None:
            await lookups.account(conn, scope.tenant_id, account_id)
        day = as_of or tenant.today(ctx.now())
        rows, totals = age(await receivables.as_of(conn, scope.tenant_id, day, account_id), day)
    if format == "json":
        body = {"as_of": day.isoformat(), "buckets": [label for label, _, _ in BUCKETS],
                "accounts": [_row(r) for r in rows], "totals": [_row(r) for r in totals]}
        return Response(orjson.dumps(body), media_type="application/json")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows([_row(r) for r in rows])
    w.writerows([{**_row(r), "account_id": "TOTAL"} for r in totals])
    return Response(buf.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="aging-{day.isoformat()}.csv"'})


PAYMENTS = "/v1/tenants/{tenant_id}/reports/payments"
PAYMENT_COLUMNS: Final = ("day", "method", "currency", "payments", "received", "reversed",
                          "refunded", "net")  # fmt: skip
PAYMENTS_SQL: Final = """
SELECT received_on AS day, method, currency, count(*)::int AS payments,
       sum(amount)::bigint AS received,
       COALESCE(sum(amount) FILTER (WHERE status = 'reversed'), 0)::bigint AS reversed,
       COALESCE(sum(amount) FILTER (WHERE status = 'refunded'), 0)::bigint AS refunded
FROM payments
WHERE tenant_id = $1 AND received_on >= $2 AND received_on < $3
GROUP BY received_on, method, currency
ORDER BY received_on, method, currency
"""
MAX_DAYS: Final = 366
_PAYMENT_ROW: Final = {"type": "object",
                       "properties": {c: {"type": "string"} for c in PAYMENT_COLUMNS}}
PAYMENTS_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "rows": {"type": "array", "items": _PAYMENT_ROW}}}},
        "text/csv": {"schema": {"type": "string"}}},
        "description": "Per day (received on), method and currency"},
}  # fmt: skip


@router.get(PAYMENTS, response_class=Response,
            responses={**PAYMENTS_RESPONSE, **responses(401, 403, 404, 422)},
            summary="Payments by method and day: received, reversed, refunded, net")
async def payments_report(
    ctx: Ctx, scope: Readers,
    start: Annotated[date, Query(alias="from", description="First day (received on)")],
    end: Annotated[date, Query(alias="to", description="Day after the last")],
    format: Annotated[Format, Query()] = "json",
) -> Response:  # fmt: skip
    if not start < end or (end - start).days > MAX_DAYS:
        raise ApiProblem(422, "invalid_range", f"from must be before to, at most {MAX_DAYS}"
                         " days apart")  # fmt: skip
    async with ctx.pool.acquire() as conn:
        await lookups.tenant(conn, scope.tenant_id)
        found = await conn.fetch(PAYMENTS_SQL, scope.tenant_id, start, end)
    rows = []
    for r in found:
        cur = r["currency"].strip()
        net = r["received"] - r["reversed"] - r["refunded"]
        rows.append({"day": r["day"].isoformat(), "method": r["method"], "currency": cur,
                     "payments": str(r["payments"]),
                     **{k: format_minor(r[k], cur) for k in ("received", "reversed",
                                                             "refunded")},
                     "net": format_minor(net, cur)})  # fmt: skip
    if format == "json":
        body = {"from": start.isoformat(), "to": end.isoformat(), "rows": rows}
        return Response(orjson.dumps(body), media_type="application/json")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PAYMENT_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return Response(buf.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="payments-{start}-{end}.csv"'})
