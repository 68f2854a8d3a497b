"""DID routes: numbers with setup and monthly fees (tenant currency), assigned and released."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Body as BodyParam

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.catalog_views import did_out, dump, given, minor_in
from admin_api.billing.schemas import (
    DidAssign,
    DidCreate,
    DidOut,
    DidPage,
    DidPath,
    DidRelease,
    DidUpdate,
)
from admin_api.context import Ctx
from admin_api.problems import responses
from admin_api.schemas import Cursor, Id, Limit
from billing.catalog import dids, lookups
from billing.catalog.dids import Did, DidSpec

router = APIRouter(tags=["billing catalogue"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
DIDS = "/v1/tenants/{tenant_id}/dids"
DID = DIDS + "/{did_number}"
WRITE = responses(401, 403, 404, 409, 422)
READ = responses(401, 403, 404, 422)
FEES = ("setup_fee", "monthly_fee")


async def _audit(
    conn: lookups.Conn, scope: Scope, action: str, number: str, before: Did | None,
    after: DidOut | None, currency: str,
) -> None:
    await record_change(conn, scope.caller, scope.tenant_id, action, f"did:{number}",
                        dump(did_out(before, currency)) if before else None,
                        dump(after) if after else None)


@router.post(DIDS, response_model=DidOut, status_code=201, responses=WRITE,
             summary="Add a DID with its prices")
async def create_did(ctx: Ctx, scope: Admins, body: DidCreate) -> DidOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        cur = (await lookups.tenant(conn, scope.tenant_id)).currency
        spec = DidSpec(body.description, minor_in(body.setup_fee, cur, "setup_fee"),
                       minor_in(body.monthly_fee, cur, "monthly_fee"),
                       body.inbound_per_minute or 0)
        out = did_out(await dids.create(conn, scope.tenant_id, body.number, spec), cur)
        await _audit(conn, scope, "did.create", body.number, None, out, cur)
    return out


@router.get(DIDS, response_model=DidPage, responses=READ, summary="DIDs by number")
async def list_dids(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None,
    account_id: Annotated[Id | None, Query(description="Only this account's")] = None,
) -> DidPage:
    after = pagination.decode(cursor, str)
    cur = (await lookups.tenant(ctx.pool, scope.tenant_id)).currency
    rows = await dids.page(ctx.pool, scope.tenant_id, after[0] if after else None, limit + 1,
                           account_id=account_id)
    items, more = pagination.page(rows, limit)
    return DidPage(items=[did_out(d, cur) for d in items],
                   next_cursor=pagination.encode(items[-1].number) if more else None)


@router.get(DID, response_model=DidOut, responses=READ, summary="A DID")
async def get_did(ctx: Ctx, scope: Readers, did_number: DidPath) -> DidOut:
    cur = (await lookups.tenant(ctx.pool, scope.tenant_id)).currency
    return did_out(await dids.get(ctx.pool, scope.tenant_id, did_number), cur)


@router.patch(DID, response_model=DidOut, responses=WRITE,
              summary="Change a DID's description or prices (from the next invoice)")
async def update_did(
    ctx: Ctx, scope: Admins, did_number: DidPath, body: DidUpdate
) -> DidOut:
    changes = given(body)
    async with ctx.pool.acquire() as conn, conn.transaction():
        cur = (await lookups.tenant(conn, scope.tenant_id)).currency
        for name in FEES:
            if name in changes:
                changes[name] = minor_in(changes[name], cur, name)
        before, after = await dids.update(conn, scope.tenant_id, did_number, changes)
        out = did_out(after, cur)
        if before != after:
            await _audit(conn, scope, "did.update", did_number, before, out, cur)
    return out


@router.post(DID + "/assign", response_model=DidOut, responses=WRITE,
             summary="Assign the DID to an account (from a date, default today)")
async def assign_did(
    ctx: Ctx, scope: Admins, did_number: DidPath, body: DidAssign
) -> DidOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        tenant = await lookups.tenant(conn, scope.tenant_id)
        on = body.assigned_on or tenant.today(ctx.now())
        before, after = await dids.assign(conn, scope.tenant_id, did_number, body.account_id,
                                          on)
        out = did_out(after, tenant.currency)
        await _audit(conn, scope, "did.assign", did_number, before, out, tenant.currency)
    return out


@router.post(DID + "/release", response_model=DidOut, responses=WRITE,
             summary="Release the DID (charged up to the day before the release date)")
async def release_did(
    ctx: Ctx, scope: Admins, did_number: DidPath,
    body: Annotated[DidRelease | None, BodyParam()] = None,
) -> DidOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        tenant = await lookups.tenant(conn, scope.tenant_id)
        on = (body.released_on if body else None) or tenant.today(ctx.now())
        before, after = await dids.release(conn, scope.tenant_id, did_number, on)
        out = did_out(after, tenant.currency)
        await _audit(conn, scope, "did.release", did_number, before, out, tenant.currency)
    return out


@router.delete(DID, status_code=204, response_class=Response, responses=WRITE,
               summary="Delete a DID that was never assigned")
async def delete_did(ctx: Ctx, scope: Admins, did_number: DidPath) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        cur = (await lookups.tenant(conn, scope.tenant_id)).currency
        old = await dids.delete(conn, scope.tenant_id, did_number)
        await _audit(conn, scope, "did.delete", did_number, old, None, cur)
    return Response(status_code=204)
