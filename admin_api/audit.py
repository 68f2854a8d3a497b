"""The audit log: every change, with who, when, what, before/after; read here, written by
``charging_engine.audit`` inside the transaction of the change it describes.

``record_change`` is that writer for an admin ``Caller`` (the key id and role the log records),
``actor_of`` the same translation for the engine's use cases.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from admin_api import pagination
from admin_api.auth import ADMINS, Platform, Scope, allow
from admin_api.context import Ctx
from admin_api.keys import Caller
from admin_api.problems import responses
from admin_api.schemas import Cursor, From, Id, Limit, Out, Page, To, check_range
from charging_engine import audit
from charging_engine.audit import Actor
from charging_engine.ledger.catalog_repo import Conn

router = APIRouter(tags=["audit"])


def actor_of(who: Caller) -> Actor:
    """The engine's name for the key a request authenticated with."""
    return Actor(who.key_id, who.role.value)


async def record_change(
    conn: Conn, who: Caller, tenant_id: str | None, action: str, target: str,
    before: Any, after: Any,
) -> None:
    await audit.record_change(conn, actor_of(who), tenant_id, action, target, before, after)


class AuditOut(Out):
    id: int
    at: datetime
    tenant_id: str | None
    key_id: str
    role: str
    action: str
    target: str
    before: Any
    after: Any


class AuditPage(Page):
    items: list[AuditOut]


async def _list(
    ctx: Ctx, tenant_id: str | None, all_tenants: bool, action: str | None,
    start: datetime | None, end: datetime | None, limit: int, cursor: str | None,
) -> AuditPage:
    check_range(start, end)
    after = pagination.decode(cursor, int)
    rows = await ctx.pool.fetch(
        "SELECT id, at, tenant_id, key_id, role, action, target, before::text, after::text"
        " FROM audit_log WHERE ($1 OR tenant_id IS NOT DISTINCT FROM $2)"
        " AND ($3::text IS NULL OR action = $3)"
        " AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5)"
        " AND ($6::bigint IS NULL OR id < $6)"
        " ORDER BY id DESC LIMIT $7",
        all_tenants, tenant_id, action, start, end, after[0] if after else None, limit + 1,
    )
    items, more = pagination.page(list(rows), limit)
    return AuditPage(
        items=[
            AuditOut(
                id=r["id"], at=r["at"], tenant_id=r["tenant_id"], key_id=r["key_id"],
                role=r["role"], action=r["action"], target=r["target"],
                before=json.loads(r["before"]) if r["before"] is not None else None,
                after=json.loads(r["after"]) if r["after"] is not None else None,
            )
            for r in items
        ],
        next_cursor=pagination.encode(items[-1]["id"]) if more else None,
    )


Action = Annotated[
    str | None, Query(pattern=r"^[a-z_.]{1,64}$", description="e.g. `account.update`")
]


@router.get(
    "/v1/tenants/{tenant_id}/audit", response_model=AuditPage,
    responses=responses(401, 403, 404, 422), summary="A tenant's audit log, newest first",
)
async def tenant_audit(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(ADMINS))], limit: Limit = 50,
    cursor: Cursor = None, start: From = None, end: To = None, action: Action = None,
) -> AuditPage:
    return await _list(ctx, scope.tenant_id, False, action, start, end, limit, cursor)


@router.get(
    "/v1/audit", response_model=AuditPage, responses=responses(401, 403, 422),
    summary="The whole audit log, or one tenant's (platform keys only)",
)
async def platform_audit(
    ctx: Ctx, who: Platform, limit: Limit = 50, cursor: Cursor = None, start: From = None,
    end: To = None, action: Action = None,
    tenant: Annotated[Id | None, Query(description="Only this tenant")] = None,
) -> AuditPage:
    return await _list(ctx, tenant, tenant is None, action, start, end, limit, cursor)
