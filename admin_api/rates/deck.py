"""CSV rate decks: import (all or nothing, every bad line named) and export (streamed).

An import parses the whole deck first (``rating.deck.parse_deck``, off the event loop) and
only then replaces the plan's rates in one transaction with COPY, so a deck with any bad line
changes nothing and a good one is seen whole or not at all by every reader.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Final

import asyncpg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from admin_api.audit import record_change
from admin_api.auth import ADMINS, READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import DeckProblem, ExtendedProblem, invalid, responses
from admin_api.rates import repo
from admin_api.rates.routes import PLAN, get_plan
from admin_api.rates.schemas import DeckImported
from admin_api.schemas import PlanPath
from charging_engine.ledger.catalog_repo import rate_of, replace_rate_plan
from charging_engine.rating.deck import COLUMNS, DeckError, format_deck, parse_deck
from charging_engine.rating.model import RatePlan

router = APIRouter(tags=["rates"])

MAX_LISTED_LINES: Final = 200
EXPORT_CHUNK: Final = 2000
CSV_MEDIA: Final = "text/csv"

_DECK_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": f"CSV with a header line; columns: {', '.join(COLUMNS)}"
        " (prefix and price_per_minute required)",
        "content": {CSV_MEDIA: {"schema": {"type": "string"}}},
    }
}


def _rejected(exc: DeckError) -> ExtendedProblem:
    lines = sorted({n for n, _ in exc.errors})
    shown = ", ".join(map(str, lines[:20])) + (" ..." if len(lines) > 20 else "")
    return ExtendedProblem(
        422, "deck_rejected", f"rate deck rejected, nothing changed; bad line(s): {shown}",
        lines=[{"line": n, "message": m} for n, m in exc.errors[:MAX_LISTED_LINES]],
        bad_lines=len(lines),
    )


@router.put(
    PLAN + "/deck", response_model=DeckImported, openapi_extra=_DECK_BODY,
    responses=responses(401, 403, 404, 413, 415, 422, overrides={422: DeckProblem}),
    summary="Replace all rates of a plan from a CSV deck (created if missing), atomically",
)
async def import_deck(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(ADMINS))], plan_id: PlanPath,
    request: Request,
) -> DeckImported:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in (CSV_MEDIA, "text/plain", "application/csv"):
        raise ExtendedProblem(415, "unsupported_media_type", "send the deck as text/csv")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(f"the deck is not UTF-8 text (byte {exc.start})") from None
    try:
        rates = await asyncio.to_thread(parse_deck, text)
    except DeckError as exc:
        raise _rejected(exc) from None
    digest = hashlib.sha256(raw).hexdigest()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO rate_plans (tenant_id, plan_id, name, currency)"
            " SELECT tenant_id, $2, $2, currency FROM tenants WHERE tenant_id = $1"
            " ON CONFLICT DO NOTHING", scope.tenant_id, plan_id,
        )
        plan = await get_plan(conn, scope, plan_id, lock=True)
        currency = plan["currency"].strip()
        await replace_rate_plan(
            conn, scope.tenant_id, RatePlan(plan_id, currency, tuple(rates)), plan["name"]
        )
        await record_change(
            conn, scope.caller, scope.tenant_id, "rate_plan.import", f"rate_plan:{plan_id}",
            {"rates": plan["rates"]}, {"rates": len(rates), "sha256": digest},
        )
    await ctx.refresher.refresh()
    return DeckImported(plan_id=plan_id, currency=currency, rates=len(rates),
                        replaced=plan["rates"])


async def _csv(rows: Sequence[asyncpg.Record]) -> AsyncIterator[bytes]:
    """The deck in chunks, yielding to the event loop between them."""
    yield format_deck([]).encode()
    for start in range(0, len(rows), EXPORT_CHUNK):
        chunk = [rate_of(r) for r in rows[start : start + EXPORT_CHUNK]]
        body = format_deck(chunk)
        yield body[body.index("\r\n") + 2 :].encode()


@router.get(
    PLAN + "/deck", response_class=StreamingResponse,
    responses={200: {"description": "The plan's rates as a CSV deck (imports back unchanged)",
                     "content": {CSV_MEDIA: {"schema": {"type": "string"}}}},
               **responses(401, 403, 404, 422)},
    summary="Export a plan's rates as a CSV deck",
)
async def export_deck(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(READERS))], plan_id: PlanPath
) -> StreamingResponse:
    # One snapshot read (an import meanwhile cannot mix two decks), then no connection is
    # held while a slow client downloads.
    async with ctx.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await get_plan(conn, scope, plan_id)
        rows = await repo.rates(conn, scope.tenant_id, plan_id)
    return StreamingResponse(
        _csv(rows), media_type=CSV_MEDIA,
        headers={"Content-Disposition": f'attachment; filename="{plan_id}.csv"'},
    )
