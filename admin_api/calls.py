"""Call records (CDRs written by settlement): filtered listing with totals, and CSV export.

Date filters apply to the call's start time. The export pages through the table by its sort
key, one short query per 2,000 rows, so a download of any size holds no database connection
while the client reads.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

import asyncpg
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from admin_api import pagination
from admin_api.auth import READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import responses
from admin_api.schemas import Amount, Cursor, From, Id, Limit, Out, Page, To, check_range
from charging_engine.money import format_amount

router = APIRouter(tags=["calls"])

EXPORT_PAGE: Final = 2000
CSV_COLUMNS: Final = (
    "call_id", "account_id", "destination", "rate_prefix", "plan_id", "started_at",
    "answered_at", "ended_at", "duration", "billed_seconds", "cost", "correction", "currency",
    "disposition", "settled_by",
)
Readers = Annotated[Scope, Depends(allow(READERS))]


@dataclass(frozen=True, slots=True)
class CallFilter:
    tenant_id: str
    account: str | None
    start: datetime | None
    end: datetime | None
    destination: str | None
    disposition: str | None

    def args(self) -> tuple[Any, ...]:
        return (self.tenant_id, self.account, self.start, self.end, self.destination,
                self.disposition)


_WHERE: Final = """
WHERE c.tenant_id = $1 AND ($2::text IS NULL OR c.account_id = $2)
  AND ($3::timestamptz IS NULL OR c.started_at >= $3)
  AND ($4::timestamptz IS NULL OR c.started_at < $4)
  AND ($5::text IS NULL OR c.destination LIKE $5 || '%')
  AND ($6::text IS NULL OR c.disposition = $6)
"""
# Newest first; calls without a start time (malformed CDR) last. $7/$8: the previous page's
# last (started_at, call_id); $9: whether it had no start time.
_PAGE: Final = f"""
SELECT c.call_id, c.account_id, c.destination, c.rate_prefix, c.plan_id, c.started_at,
       c.answered_at, c.ended_at, c.duration, c.billed_seconds, c.cost, c.correction,
       c.disposition, c.settled_by, a.currency
FROM calls c LEFT JOIN accounts a ON a.tenant_id = c.tenant_id AND a.account_id = c.account_id
{_WHERE}
  AND ($8::text IS NULL
       OR (NOT $9 AND (c.started_at < $7 OR (c.started_at = $7 AND c.call_id < $8)
                       OR c.started_at IS NULL))
       OR ($9 AND c.started_at IS NULL AND c.call_id < $8))
ORDER BY c.started_at DESC NULLS LAST, c.call_id DESC
LIMIT $10
"""
_TOTALS: Final = f"""
SELECT coalesce(a.currency, '') AS currency, count(*) AS calls,
       coalesce(sum(c.cost + c.correction), 0)::bigint AS cost,
       coalesce(sum(c.billed_seconds), 0)::bigint AS billed_seconds,
       coalesce(sum(c.duration), 0)::bigint AS duration
FROM calls c LEFT JOIN accounts a ON a.tenant_id = c.tenant_id AND a.account_id = c.account_id
{_WHERE}
GROUP BY 1 ORDER BY 1
"""


class CallOut(Out):
    call_id: str
    account_id: str
    destination: str | None
    rate_prefix: str | None
    plan_id: str | None
    started_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime
    duration: int | None
    billed_seconds: int | None
    cost: Amount
    correction: Amount
    currency: str | None
    disposition: str | None
    settled_by: str


class Totals(Out):
    currency: str | None
    calls: int
    cost: Amount
    billed_seconds: int
    duration: int


class CallPage(Page):
    items: list[CallOut]
    totals: list[Totals]


def _currency(r: asyncpg.Record) -> str | None:
    cur = r["currency"]
    return cur.strip() if cur else None


def _out(r: asyncpg.Record) -> CallOut:
    cur = _currency(r)
    values = {k: r[k] for k in CallOut.model_fields if k not in ("cost", "correction", "currency")}
    return CallOut(**values, cost=format_amount(r["cost"], cur),
                   correction=format_amount(r["correction"], cur), currency=cur)


async def _page(
    conn: asyncpg.Pool | asyncpg.Connection, f: CallFilter,
    after: tuple[Any, ...] | None, limit: int,
) -> list[asyncpg.Record]:
    started, call_id = after if after else (None, None)
    return list(await conn.fetch(
        _PAGE, *f.args(), started, call_id, after is not None and started is None, limit,
    ))


def _cursor(r: asyncpg.Record) -> str:
    return pagination.encode(r["started_at"], r["call_id"])


Account = Annotated[Id | None, Query(description="Only this account")]
Destination = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,15}$", description="Destinations starting with")
]
Disposition = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z0-9_.\-]{1,32}$",
          description="e.g. answered, not_answered, expired_answered"),
]


def _filter(
    scope: Scope, account: str | None, start: datetime | None, end: datetime | None,
    destination: str | None, disposition: str | None,
) -> CallFilter:
    check_range(start, end)
    return CallFilter(scope.tenant_id, account, start, end, destination, disposition)


@router.get(
    "/v1/tenants/{tenant_id}/calls", response_model=CallPage,
    responses=responses(401, 403, 404, 422),
    summary="Call records, newest first, with totals per currency over the whole filter",
)
async def calls(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None,
    account: Account = None, start: From = None, end: To = None,
    destination: Destination = None, disposition: Disposition = None,
) -> CallPage:
    f = _filter(scope, account, start, end, destination, disposition)
    after = pagination.decode(cursor, datetime, str)
    if after is not None and after[1] is None:
        after = None
    rows = await _page(ctx.pool, f, after, limit + 1)
    items, more = pagination.page(rows, limit)
    totals = await ctx.pool.fetch(_TOTALS, *f.args())
    return CallPage(
        items=[_out(r) for r in items],
        next_cursor=_cursor(items[-1]) if more else None,
        totals=[
            Totals(currency=t["currency"].strip() or None, calls=t["calls"],
                   cost=format_amount(t["cost"], t["currency"].strip() or None),
                   billed_seconds=t["billed_seconds"], duration=t["duration"])
            for t in totals
        ],
    )


def _csv_line(values: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode()


async def _export(pool: asyncpg.Pool, f: CallFilter) -> AsyncIterator[bytes]:
    yield _csv_line(list(CSV_COLUMNS))
    after: tuple[Any, ...] | None = None
    while True:
        rows = await _page(pool, f, after, EXPORT_PAGE)
        if not rows:
            return
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        for r in rows:
            c = _out(r)
            writer.writerow([
                c.call_id, c.account_id, c.destination or "", c.rate_prefix or "",
                c.plan_id or "", _iso(c.started_at), _iso(c.answered_at), _iso(c.ended_at),
                _num(c.duration), _num(c.billed_seconds), c.cost, c.correction,
                c.currency or "", c.disposition or "", c.settled_by,
            ])
        yield out.getvalue().encode()
        if len(rows) < EXPORT_PAGE:
            return
        after = (rows[-1]["started_at"], rows[-1]["call_id"])


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at else ""


def _num(n: int | None) -> str:
    return "" if n is None else str(n)


@router.get(
    "/v1/tenants/{tenant_id}/calls/export", response_class=StreamingResponse,
    responses={200: {"description": f"CSV: {', '.join(CSV_COLUMNS)}",
                     "content": {"text/csv": {"schema": {"type": "string"}}}},
               **responses(401, 403, 404, 422)},
    summary="Call records as CSV, streamed (same filters as the listing)",
)
async def export(
    ctx: Ctx, scope: Readers, account: Account = None, start: From = None, end: To = None,
    destination: Destination = None, disposition: Disposition = None,
) -> StreamingResponse:
    f = _filter(scope, account, start, end, destination, disposition)
    return StreamingResponse(
        _export(ctx.pool, f), media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="calls-{scope.tenant_id}.csv"'},
    )
