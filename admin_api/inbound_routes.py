"""Inbound SMS keyword routes: the number a tenant's customers text (one tenant's only), the
reply to unknown senders and the rate limit, the tenant's own keywords (aliases of BALANCE and
HELP, in a language), and the log of every text received with what was done about it."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import Field, StringConstraints

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import ADMINS, READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import Body, Cursor, Limit, Out, Page
from billing.catalog import lookups
from notifications.inbound import BUILTIN, normalise

router = APIRouter(tags=["notifications"])

Readers = Annotated[Scope, Depends(allow(READERS))]
Admins = Annotated[Scope, Depends(allow(ADMINS))]
T = "/v1/tenants/{tenant_id}"
Text = Annotated[str, StringConstraints(max_length=300, pattern=r"^[^\x00-\x1f\x7f]*$")]
Number = Annotated[str, StringConstraints(min_length=1, max_length=40,
                                          pattern=r"^[0-9+\-() ]+$")]  # fmt: skip
KeywordPath = Annotated[str, Path(pattern=r"^[^\s\x00-\x1f\x7f/]{1,40}$",
                                  description="The word texted (case does not matter)")]
Outcome = Literal["replied", "rate_limited", "no_reply", "unavailable"]


class InboundSettingsIn(Body):
    destination: Number = Field(description="The shortcode or number texted (normalised)")
    unknown_reply: Text | None = Field(None, description="Told to an unknown sender (as the"
                                       " help text's contact); null: no reply")  # fmt: skip
    support_contact: Text = ""
    replies_per_hour: int = Field(10, ge=0, le=1000, description="Per sender number")


class InboundSettingsOut(Out):
    destination: str
    unknown_reply: str | None
    support_contact: str
    replies_per_hour: int
    updated_at: datetime


class KeywordIn(Body):
    meaning: Literal["balance", "help"]
    language: str = Field("en", pattern=r"^[a-z]{2}(_[A-Z]{2})?$")


class KeywordOut(Out):
    keyword: str
    meaning: Literal["balance", "help"]
    language: str


class KeywordPage(Out):
    items: list[KeywordOut]


class InboundMessageOut(Out):
    id: int
    source: str = Field(description="The sender as the SMSC or gateway gave it")
    number: str = Field(description="The sender, normalised")
    destination: str
    text: str
    keyword: Literal["balance", "help"] | None
    account_id: str | None
    outcome: Outcome
    received_at: datetime


class InboundMessagePage(Page):
    items: list[InboundMessageOut]


def _word(keyword: str) -> str:
    """The stored form: one row per word however it is cased (matching ignores case)."""
    word = unicodedata.normalize("NFKC", keyword).upper()
    if not word or any(c.isspace() for c in word) or len(word) > 40:
        raise ApiProblem(422, "invalid_request", "a keyword is one word of at most 40")
    return word


@router.put(T + "/inbound-settings", response_model=InboundSettingsOut,
            responses=responses(401, 403, 404, 409, 422),
            summary="Set the number the tenant's customers text, and how texts are answered")
async def put_inbound_settings(ctx: Ctx, scope: Admins,
                               body: InboundSettingsIn) -> InboundSettingsOut:  # fmt: skip
    destination = normalise(body.destination)
    if destination is None:
        raise ApiProblem(422, "invalid_request", "destination is not a number")
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await lookups.tenant(conn, scope.tenant_id)
            r = await conn.fetchrow(
                "INSERT INTO inbound_settings (tenant_id, destination, unknown_reply,"
                " support_contact, replies_per_hour, updated_at) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (tenant_id) DO UPDATE SET destination = excluded.destination,"
                " unknown_reply = excluded.unknown_reply, support_contact ="
                " excluded.support_contact, replies_per_hour = excluded.replies_per_hour,"
                " updated_at = excluded.updated_at RETURNING *", scope.tenant_id, destination,
                body.unknown_reply, body.support_contact, body.replies_per_hour,
                ctx.now())  # fmt: skip
            await record_change(conn, scope.caller, scope.tenant_id, "notifications.inbound",
                                "inbound-settings", None,
                                body.model_dump() | {"destination": destination})  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise ApiProblem(409, "destination_taken",
                         "another tenant's customers text this number") from None
    return InboundSettingsOut.of(r)


@router.get(T + "/inbound-settings", response_model=InboundSettingsOut,
            responses=responses(401, 403, 404, 422), summary="The inbound SMS settings")
async def get_inbound_settings(ctx: Ctx, scope: Readers) -> InboundSettingsOut:
    r = await ctx.pool.fetchrow("SELECT * FROM inbound_settings WHERE tenant_id = $1",
                                scope.tenant_id)  # fmt: skip
    if r is None:
        raise ApiProblem(404, "not_found", "no inbound settings are set")
    return InboundSettingsOut.of(r)


@router.put(T + "/inbound-keywords/{keyword}", response_model=KeywordOut,
            responses=responses(401, 403, 404, 422),
            summary="Add or change a keyword of the tenant's (an alias of BALANCE or HELP)")
async def put_keyword(ctx: Ctx, scope: Admins, keyword: KeywordPath,
                      body: KeywordIn) -> KeywordOut:  # fmt: skip
    word = _word(keyword)
    if word in BUILTIN:
        raise ApiProblem(422, "invalid_request", f"{word} is built in")
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lookups.tenant(conn, scope.tenant_id)
        r = await conn.fetchrow(
            "INSERT INTO inbound_keywords (tenant_id, keyword, meaning, language) VALUES ($1,"
            " $2, $3, $4) ON CONFLICT (tenant_id, keyword) DO UPDATE SET meaning ="
            " excluded.meaning, language = excluded.language RETURNING *", scope.tenant_id,
            word, body.meaning, body.language)  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "notifications.keyword",
                            f"inbound-keyword:{word}", None, body.model_dump())  # fmt: skip
    return KeywordOut.of(r)


@router.delete(T + "/inbound-keywords/{keyword}", status_code=204, response_class=Response,
               responses=responses(401, 403, 404, 422), summary="Remove a keyword")
async def delete_keyword(ctx: Ctx, scope: Admins, keyword: KeywordPath) -> Response:
    word = _word(keyword)
    async with ctx.pool.acquire() as conn, conn.transaction():
        r = await conn.fetchrow("DELETE FROM inbound_keywords WHERE tenant_id = $1 AND keyword"
                                " = $2 RETURNING meaning, language", scope.tenant_id, word)
        if r is None:
            raise ApiProblem(404, "not_found", f"no keyword {word!r}")
        await record_change(conn, scope.caller, scope.tenant_id, "notifications.keyword",
                            f"inbound-keyword:{word}", dict(r), None)  # fmt: skip
    return Response(status_code=204)


@router.get(T + "/inbound-keywords", response_model=KeywordPage,
            responses=responses(401, 403, 404, 422),
            summary="The tenant's keywords (BALANCE and HELP always apply too)")
async def list_keywords(ctx: Ctx, scope: Readers) -> KeywordPage:
    rows = await ctx.pool.fetch("SELECT * FROM inbound_keywords WHERE tenant_id = $1 ORDER BY"
                                " keyword LIMIT 1000", scope.tenant_id)  # fmt: skip
    return KeywordPage(items=[KeywordOut.of(r)
                              for r in rows])  # fmt: skip


@router.get(T + "/inbound-messages", response_model=InboundMessagePage,
            responses=responses(401, 403, 404, 422),
            summary="Texts received, newest first: search by sender number and outcome")
async def list_messages(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None,
    number: Annotated[str | None, Query(min_length=1, max_length=40, pattern=r"^[0-9+\-() ]+$",
                                        description="The sender, in any format")] = None,
    outcome: Annotated[Outcome | None, Query()] = None,
) -> InboundMessagePage:
    sender = None if number is None else normalise(number)
    if number is not None and sender is None:
        raise ApiProblem(422, "invalid_request", "number is not a number")
    before = pagination.decode(cursor, int)
    rows = await ctx.pool.fetch(
        "SELECT * FROM inbound_messages WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2)"
        " AND ($3::text IS NULL OR number = $3) AND ($4::text IS NULL OR outcome = $4)"
        " ORDER BY id DESC LIMIT $5", scope.tenant_id, before[0] if before else None, sender,
        outcome, limit + 1)  # fmt: skip
    items, more = pagination.page(list(rows), limit)
    return InboundMessagePage(
        items=[InboundMessageOut.of(r)
               for r in items],
        next_cursor=pagination.encode(items[-1]["id"]) if more else None)  # fmt: skip
