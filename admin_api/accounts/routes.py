"""Account routes: create, read, update, status (with history), close, auto top-up."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from admin_api import pagination
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
from admin_api.accounts.views import account_out, auto_topup_out, balance_out
from admin_api.audit import actor_of
from admin_api.auth import ACCOUNT_READERS, ADMINS, Scope, allow
from admin_api.context import AdminContext, Ctx
from admin_api.problems import responses
from admin_api.schemas import AccountPath, Cursor, Limit
from charging_engine.account_status import AccountStatus
from charging_engine.accounts import record
from charging_engine.accounts.changes import (
    UNSET,
    AccountPatch,
    AutoTopupSettings,
    NewAccount,
)
from charging_engine.accounts.errors import NoBalanceRecord
from charging_engine.accounts.record import AccountKind, AccountRow

router = APIRouter(tags=["accounts"])

Readers = Annotated[Scope, Depends(allow(ACCOUNT_READERS))]
Admins = Annotated[Scope, Depends(allow(ADMINS))]
ACCOUNT = "/v1/tenants/{tenant_id}/accounts/{account_id}"


async def _out(ctx: AdminContext, row: AccountRow) -> AccountOut:
    return account_out(row, await ctx.store.state(row.tenant_id, row.account_id))


def _new_account(body: AccountCreate) -> NewAccount:
    return NewAccount(
        account_id=body.account_id, kind=AccountKind(body.kind), currency=body.currency,
        credit_limit=body.credit_limit or 0, min_balance=body.min_balance or 0,
        rate_plan_id=body.rate_plan_id, status=AccountStatus(body.status), name=body.name,
        primary_mobile=body.primary_mobile, alternate_mobile=body.alternate_mobile,
        email=body.email, low_balance_thresholds=tuple(body.low_balance_thresholds),
        low_balance_hysteresis=body.low_balance_hysteresis,
    )


def _patch(body: AccountUpdate) -> AccountPatch:
    """Only the fields the request carried (``null`` among them) change."""
    given = {name: getattr(body, name) for name in body.model_fields_set}
    if given.get("low_balance_thresholds") is not None:
        given["low_balance_thresholds"] = tuple(given["low_balance_thresholds"])
    return AccountPatch(**{name: given.get(name, UNSET) for name in AccountUpdate.model_fields})


@router.post(
    "/v1/tenants/{tenant_id}/accounts", response_model=AccountOut, status_code=201,
    responses={200: {"model": AccountOut, "description": "Already created by an identical"
                     " earlier request"}, **responses(401, 403, 404, 409, 422, 503)},
    summary="Create an account (a balance record at 0 comes with it)",
)
async def create_account(
    ctx: Ctx, scope: Admins, body: AccountCreate, response: Response
) -> AccountOut:
    row, created = await ctx.accounts.create(
        actor_of(scope.caller), scope.tenant_id, _new_account(body)
    )
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
    rows = await record.page(ctx.pool, scope.tenant_id, status=status, kind=kind,
                           after=after[0] if after else None, limit=limit + 1)
    items, more = pagination.page(rows, limit)
    states = await asyncio.gather(*(ctx.store.state(r.tenant_id, r.account_id) for r in items))
    return AccountPage(
        items=[account_out(r, s) for r, s in zip(items, states, strict=True)],
        next_cursor=pagination.encode(items[-1].account_id) if more else None,
    )


async def _row(ctx: AdminContext, scope: Scope, account_id: str) -> AccountRow:
    return await record.require(ctx.pool, scope.tenant_id, account_id)


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
    row = await ctx.accounts.update(
        actor_of(scope.caller), scope.tenant_id, account_id, _patch(body)
    )
    return await _out(ctx, row)


@router.post(f"{ACCOUNT}/status", response_model=AccountOut,
             responses=responses(401, 403, 404, 409, 422, 503),
             summary="Change the status (recorded in the history with its reason)")
async def change_status(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: StatusChange
) -> AccountOut:
    row = await ctx.accounts.change_status(
        actor_of(scope.caller), scope.tenant_id, account_id, AccountStatus(body.status),
        body.reason,
    )
    return await _out(ctx, row)


@router.post(f"{ACCOUNT}/close", response_model=AccountOut,
             responses=responses(401, 403, 404, 409, 422, 503),
             summary="Close (terminate) an account whose balance is zero; final")
async def close_account(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: CloseRequest
) -> AccountOut:
    row = await ctx.accounts.close(
        actor_of(scope.caller), scope.tenant_id, account_id, body.reason
    )
    return await _out(ctx, row)


@router.get(f"{ACCOUNT}/status-history", response_model=StatusHistoryPage,
            responses=responses(401, 403, 404, 422), summary="Status changes, newest first")
async def status_history(
    ctx: Ctx, scope: Readers, account_id: AccountPath, limit: Limit = 50, cursor: Cursor = None
) -> StatusHistoryPage:
    await _row(ctx, scope, account_id)
    before = pagination.decode(cursor, int)
    rows = await record.status_history(ctx.pool, scope.tenant_id, account_id,
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
    out = balance_out(await ctx.store.state(scope.tenant_id, account_id), row.currency)
    if out is None:
        raise NoBalanceRecord()
    return out


@router.get(f"{ACCOUNT}/auto-topup", response_model=AutoTopupOut,
            responses=responses(401, 403, 404, 422), summary="Auto top-up settings")
async def get_auto_topup(ctx: Ctx, scope: Readers, account_id: AccountPath) -> AutoTopupOut:
    row = await _row(ctx, scope, account_id)
    return auto_topup_out(row)


@router.put(f"{ACCOUNT}/auto-topup", response_model=AccountOut,
            responses=responses(401, 403, 404, 409, 422, 503),
            summary="Store auto top-up settings (applied by the billing work)")
async def put_auto_topup(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: AutoTopup
) -> AccountOut:
    settings = AutoTopupSettings(body.enabled, body.threshold, body.amount)
    row = await ctx.accounts.set_auto_topup(
        actor_of(scope.caller), scope.tenant_id, account_id, settings
    )
    return await _out(ctx, row)
