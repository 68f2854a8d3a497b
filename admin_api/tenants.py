"""Tenants: created by the platform operator; each sees and edits only itself."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from fastapi import APIRouter, Depends, Response
from pydantic import StringConstraints

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import ADMINS, ALL, Authenticated, Platform, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import conflict, invalid, not_found, responses
from admin_api.schemas import Body, Cursor, Id, Limit, Name, Out, Page

router = APIRouter(tags=["tenants"])

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Timezone = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$")]
Policy = Literal["fail_closed", "fail_open"]
_COLUMNS: Final = "tenant_id, name, currency, timezone, failure_policy, created_at"


class TenantCreate(Body):
    tenant_id: Id
    name: Name = ""
    currency: Currency
    timezone: Timezone = "UTC"
    failure_policy: Policy = "fail_closed"


class TenantUpdate(Body):
    name: Name | None = None
    timezone: Timezone | None = None
    failure_policy: Policy | None = None


class TenantOut(Out):
    tenant_id: str
    name: str
    currency: str
    timezone: str
    failure_policy: Policy
    created_at: datetime


class TenantPage(Page):
    items: list[TenantOut]


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise invalid(f"unknown timezone {name!r} (an IANA name such as Europe/London)") from None


def _out(r: asyncpg.Record) -> TenantOut:
    values: dict[str, Any] = dict(r)
    values["currency"] = values["currency"].strip()
    return TenantOut(**values)


@router.post(
    "/v1/tenants", response_model=TenantOut, status_code=201,
    responses={200: {"model": TenantOut, "description": "Already created identically"},
               **responses(401, 403, 409, 422)},
    summary="Create a tenant (platform keys only)",
)
async def create_tenant(
    ctx: Ctx, who: Platform, body: TenantCreate, response: Response
) -> TenantOut:
    _check_timezone(body.timezone)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO tenants (tenant_id, name, currency, timezone, failure_policy)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO NOTHING"
            f" RETURNING {_COLUMNS}",
            body.tenant_id, body.name, body.currency, body.timezone, body.failure_policy,
        )
        if row is None:
            existing = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM tenants WHERE tenant_id = $1", body.tenant_id
            )
            if existing is not None and _out(existing).model_dump(exclude={"created_at"}) == (
                body.model_dump()
            ):
                response.status_code = 200
                return _out(existing)
            raise conflict("tenant_exists", f"tenant {body.tenant_id!r} already exists")
        await record_change(conn, who, body.tenant_id, "tenant.create",
                            f"tenant:{body.tenant_id}", None, body.model_dump())
    await ctx.refresher.refresh()
    return _out(row)


@router.get("/v1/tenants", response_model=TenantPage, responses=responses(401, 422),
            summary="Tenants the key may see (all for platform keys, else its own)")
async def list_tenants(
    ctx: Ctx, who: Authenticated, limit: Limit = 50, cursor: Cursor = None
) -> TenantPage:
    after = pagination.decode(cursor, str)
    rows = await ctx.pool.fetch(
        f"SELECT {_COLUMNS} FROM tenants WHERE ($1::text IS NULL OR tenant_id = $1)"
        " AND ($2::text IS NULL OR tenant_id > $2) ORDER BY tenant_id LIMIT $3",
        who.tenant_id, after[0] if after else None, limit + 1,
    )
    items, more = pagination.page(list(rows), limit)
    return TenantPage(
        items=[_out(r) for r in items],
        next_cursor=pagination.encode(items[-1]["tenant_id"]) if more else None,
    )


@router.get("/v1/tenants/{tenant_id}", response_model=TenantOut,
            responses=responses(401, 404, 422), summary="A tenant")
async def get_tenant(ctx: Ctx, scope: Annotated[Scope, Depends(allow(ALL))]) -> TenantOut:
    row = await ctx.pool.fetchrow(
        f"SELECT {_COLUMNS} FROM tenants WHERE tenant_id = $1", scope.tenant_id
    )
    if row is None:
        raise not_found(f"tenant {scope.tenant_id!r}")
    return _out(row)


@router.patch("/v1/tenants/{tenant_id}", response_model=TenantOut,
              responses=responses(401, 403, 404, 422),
              summary="Change a tenant's name, timezone or failure policy")
async def update_tenant(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(ADMINS))], body: TenantUpdate
) -> TenantOut:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "timezone" in changes:
        _check_timezone(changes["timezone"])
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM tenants WHERE tenant_id = $1 FOR UPDATE", scope.tenant_id
        )
        if old is None:
            raise not_found(f"tenant {scope.tenant_id!r}")
        before = _out(old)
        after = before.model_copy(update=changes)
        if after == before:
            return before
        row = await conn.fetchrow(
            "UPDATE tenants SET name = $2, timezone = $3, failure_policy = $4"
            f" WHERE tenant_id = $1 RETURNING {_COLUMNS}",
            scope.tenant_id, after.name, after.timezone, after.failure_policy,
        )
        assert row is not None
        await record_change(conn, scope.caller, scope.tenant_id, "tenant.update",
                            f"tenant:{scope.tenant_id}",
                            before.model_dump(exclude={"created_at"}),
                            after.model_dump(exclude={"created_at"}))
    await ctx.refresher.refresh()
    return _out(row)
