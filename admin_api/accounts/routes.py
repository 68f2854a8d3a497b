"""Account routes: create, read, update, status (with history), close, auto top-up."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from admin_api import pagination
from admin_api.accounts import repo, service
from admin_api.accounts.schemas import (
    AccountCreate,
    AccountOut,
    AccountPage,
    AccountUpdate,
    AutoTopup,
    AutoTopupOut,
    BalanceOut,
    CloseRequest,
    Kind,
    Status,
    StatusChange,
    StatusChangeOut,
    StatusHistoryPage,
)
from admin_api.auth import ACCOUNT_READERS, ADMINS, Scope, allow
from admin_api.context import AdminContext, Ctx
from admin_api.problems import not_found, responses
from admin_api.schemas import AccountPath, Cursor, Limit

router = APIRouter(tags=["accounts"])

Readers = Annotated[Scope, Depends(allow(ACCOUNT_READERS))]
Admins = Annotated[Scope, Depends(allow(ADMINS))]
ACCOUNT = "/v1/tenants/{tenant_id}/accounts/{account_id}"


async def _out(ctx: AdminContext, row: repo.AccountRow) -> AccountOut:
    return repo.account_out(row, await ctx.store.state(row.tenant_id, row.account_id))


@router.post(
    "/v1/tenants/{tenant_id}/accounts", response_model=AccountOut, status_code=201,
    responses={200: {"model": AccountOut, "description": "Already created by an identical"
                     " earlier request"}, **responses(401, 403, 404, 409, 422, 503)},
    summary="Create an account (a balance record at 0 comes with it)",
)
async def create_account(
    ctx: Ctx, scope: Admins, body: AccountCreate, response: Response
) -> AccountOut:
    row, created = await service.create(ctx, scope, body)
    if not created:
        response.status_code = 200
    return await _out(ctx, row)


@router.get(
    "/v1/tenants/{tenant_id}/accounts", response_model=AccountPage,
    responses=responses(401, 403, 404, 422), summary="Accounts by id, with live balances",
)
async def list_accounts(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None,
    status: Annotated[Status | None, Query()] = None,
    kind: Annotated[Kind | None, Query()] = None,
) -> AccountPage:
    after = pagination.decode(cursor, str)
    rows = await repo.page(ctx.pool, scope.tenant_id, status=status, kind=kind,
                           after=after[0] if after else None, limit=limit + 1)
    items, more = pagination.page(rows, limit)
    states = await asyncio.gather(*(ctx.store.state(r.tenant_id, r.account_id) for r in items))
    return AccountPage(
        items=[repo.account_out(r, s) for r, s in zip(items, states, strict=True)],
        next_cursor=pagination.encode(items[-1].account_id) if more else None,
    )


async def _row(ctx: AdminContext, scope: Scope, account_id: str) -> repo.AccountRow:
    row = await repo.get(ctx.pool, scope.tenant_id, account_id)
    if row is None:
        raise not_found(f"account {account_id!r}")
    return row


@router.get(ACCOUNT, response_model=AccountOut, responses=responses(401, 403, 404, 422),
            summary="An account with its live balance")
async def get_account(ctx: Ctx, scope: Readers, account_id: AccountPath) -> AccountOut:
    return await _out(ctx, await _row(ctx, scope, account_id))


@router.patch(ACCOUNT, response_model=AccountOut,
              responses=responses(401, 403, 404, 409, 422, 503),
              summary="Change an account (kind, limits, plan, contacts, alert lines)")
async def update_account(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: AccountUpdate
) -> AccountOut:
    return await _out(ctx, await service.update(ctx, scope, account_id, body))


@router.post(f"{ACCOUNT}/status", response_model=AccountOut,
             responses=responses(401, 403, 404, 409, 422, 503),
             summary="Change the status (recorded in the history with its reason)")
async def change_status(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: StatusChange
) -> AccountOut:
    row = await service.change_status(ctx, scope, account_id, body.status, body.reason)
    return await _out(ctx, row)


@router.post(f"{ACCOUNT}/close", response_model=AccountOut,
             responses=responses(401, 403, 404, 409, 422, 503),
             summary="Close (terminate) an account whose balance is zero; final")
async def close_account(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: CloseRequest
) -> AccountOut:
    return await _out(ctx, await service.close(ctx, scope, account_id, body.reason))


@router.get(f"{ACCOUNT}/status-history", response_model=StatusHistoryPage,
            responses=responses(401, 403, 404, 422), summary="Status changes, newest first")
async def status_history(
    ctx: Ctx, scope: Readers, account_id: AccountPath, limit: Limit = 50, cursor: Cursor = None
) -> StatusHistoryPage:
    await _row(ctx, scope, account_id)
    before = pagination.decode(cursor, int)
    rows = await repo.status_history(ctx.pool, scope.tenant_id, account_id,
                                     before[0] if before else None, limit + 1)
    items, more = pagination.page(rows, limit)
    return StatusHistoryPage(
        items=[StatusChangeOut(**dict(r)) for r in items],
        next_cursor=pagination.encode(items[-1]["id"]) if more else None,
    )


@router.get(f"{ACCOUNT}/balance", response_model=BalanceOut,
            responses=responses(401, 403, 404, 409, 422), summary="Live balance")
async def balance(ctx: Ctx, scope: Readers, account_id: AccountPath) -> BalanceOut:
    row = await _row(ctx, scope, account_id)
    out = repo.balance_out(await ctx.store.state(scope.tenant_id, account_id), row.currency)
    if out is None:
        from admin_api.problems import conflict

        raise conflict("no_balance_record",
                       "the account has no balance record in Redis; save it again to repair")
    return out


@router.get(f"{ACCOUNT}/auto-topup", response_model=AutoTopupOut,
            responses=responses(401, 403, 404, 422), summary="Auto top-up settings")
async def get_auto_topup(ctx: Ctx, scope: Readers, account_id: AccountPath) -> AutoTopupOut:
    row = await _row(ctx, scope, account_id)
    return repo.account_out(row, None).auto_topup


@router.put(f"{ACCOUNT}/auto-topup", response_model=AccountOut,
            responses=responses(401, 403, 404, 409, 422, 503),
            summary="Store auto top-up settings (applied by the billing work)")
async def put_auto_topup(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: AutoTopup
) -> AccountOut:
    return await _out(ctx, await service.set_auto_topup(ctx, scope, account_id, body))
