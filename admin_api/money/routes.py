"""Top-ups, withdrawals and adjustments (each under an Idempotency-Key), and ledger history."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import Field

from admin_api import pagination
from admin_api.audit import actor_of
from admin_api.auth import ACCOUNT_READERS, ADMINS, COLLECTORS, Scope, allow
from admin_api.context import AdminContext, Ctx
from admin_api.problems import responses
from admin_api.schemas import (
    AccountPath,
    Amount,
    Body,
    Cursor,
    From,
    Limit,
    Micros,
    Note,
    Out,
    Page,
    Reason,
    Reference,
    SignedMicros,
    To,
    check_range,
)
from billing.validity_run import validity_of
from charging_engine.accounts import record
from charging_engine.accounts.money import Operation, Outcome
from charging_engine.money import format_amount

router = APIRouter(tags=["money"])

ACCOUNT = "/v1/tenants/{tenant_id}/accounts/{account_id}"
Method = Literal["cash", "cheque", "card", "bank_transfer", "online"]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key", pattern=r"^[!-~]{1,128}$",
        description="Unique per operation (a UUID): a retry with the same key changes nothing",
    ),
]


class Topup(Body):
    amount: Micros
    method: Method
    reference: Reference | None = None
    note: Note | None = None
    validity_days: int | None = Field(None, ge=1, le=3650, description="Days until this"
                                      " money expires; default: the tenant's prepaid policy")


class Withdrawal(Body):
    amount: Micros
    reason: Reason
    method: Method | None = None
    reference: Reference | None = None


class Adjustment(Body):
    amount: SignedMicros = Field(description="Signed: positive credits, negative debits")
    reason: Reason


class OperationOut(Out):
    idempotency_key: str
    account_id: str
    kind: Literal["topup", "withdraw", "adjust", "expiry"]
    amount: Amount
    method: str | None
    reference: str | None
    reason: str | None
    balance_after: Amount | None
    created_at: datetime
    completed_at: datetime | None
    replayed: bool = Field(description="True when answered from an earlier request with the key")


class LedgerEntryOut(Out):
    seq: int
    kind: str
    amount: Amount
    reserved: Amount
    balance_after: Amount
    at: datetime
    call_id: str | None
    idempotency_key: str
    extra: dict[str, Any]


class LedgerPage(Page):
    items: list[LedgerEntryOut]


def _out(outcome: Outcome, response: Response) -> OperationOut:
    r, cur = outcome.operation, outcome.currency
    after = r.balance_after
    response.status_code = 200 if outcome.replayed else 201
    return OperationOut(
        idempotency_key=r.idem_key, account_id=r.account_id, kind=r.kind.value,
        amount=format_amount(r.amount, cur), method=r.method, reference=r.reference,
        reason=r.reason, balance_after=None if after is None else format_amount(after, cur),
        created_at=r.created_at, completed_at=r.completed_at, replayed=outcome.replayed,
    )


async def _perform(
    ctx: AdminContext, scope: Scope, account_id: str, op: Operation, idem_key: str,
    response: Response,
) -> OperationOut:
    outcome = await ctx.money.perform(
        actor_of(scope.caller), scope.tenant_id, account_id, op, idem_key
    )
    return _out(outcome, response)


_OPERATION_RESPONSES = {
    200: {"model": OperationOut, "description": "A repeat of an operation already done"},
    **responses(401, 403, 404, 409, 422, 503),
}


@router.post(f"{ACCOUNT}/topups", response_model=OperationOut, status_code=201,
             responses=_OPERATION_RESPONSES, summary="Record a payment: credit the balance")
async def topup(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(COLLECTORS))], account_id: AccountPath,
    body: Topup, idempotency_key: IdempotencyKey, response: Response,
) -> OperationOut:
    valid_until = await validity_of(ctx.pool, scope.tenant_id, ctx.now(), body.validity_days)
    op = Operation.topup(body.amount, body.method, body.reference, body.note, valid_until)
    return await _perform(ctx, scope, account_id, op, idempotency_key, response)


@router.post(f"{ACCOUNT}/withdrawals", response_model=OperationOut, status_code=201,
             responses=_OPERATION_RESPONSES,
             summary="Withdraw credit (refused beyond the available funds)")
async def withdraw(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(ADMINS))], account_id: AccountPath,
    body: Withdrawal, idempotency_key: IdempotencyKey, response: Response,
) -> OperationOut:
    op = Operation.withdrawal(body.amount, body.reason, body.method, body.reference)
    return await _perform(ctx, scope, account_id, op, idempotency_key, response)


@router.post(f"{ACCOUNT}/adjustments", response_model=OperationOut, status_code=201,
             responses=_OPERATION_RESPONSES, summary="Correct the balance, with a reason")
async def adjust(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(ADMINS))], account_id: AccountPath,
    body: Adjustment, idempotency_key: IdempotencyKey, response: Response,
) -> OperationOut:
    op = Operation.adjustment(body.amount, body.reason)
    return await _perform(ctx, scope, account_id, op, idempotency_key, response)


LedgerKind = Literal[
    "reserve", "extend", "commit", "release", "expire", "topup", "adjust", "withdraw",
    "provision", "correction", "billed", "expiry",
]


def _entry(r: asyncpg.Record, cur: str) -> LedgerEntryOut:
    return LedgerEntryOut(
        seq=r["seq"], kind=r["kind"], amount=format_amount(r["amount"], cur),
        reserved=format_amount(r["reserved"], cur),
        balance_after=format_amount(r["balance_after"], cur), at=r["ts"], call_id=r["call_id"],
        idempotency_key=r["idem_key"], extra=json.loads(r["extra"]),
    )


@router.get(f"{ACCOUNT}/ledger", response_model=LedgerPage,
            responses=responses(401, 403, 404, 422),
            summary="Settled ledger entries, newest first (a few ms behind Redis)")
async def ledger(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(ACCOUNT_READERS))],
    account_id: AccountPath, limit: Limit = 50, cursor: Cursor = None, start: From = None,
    end: To = None, kind: Annotated[LedgerKind | None, Query()] = None,
) -> LedgerPage:
    check_range(start, end)
    account = await record.require(ctx.pool, scope.tenant_id, account_id)
    before = pagination.decode(cursor, int)
    rows = await ctx.pool.fetch(
        "SELECT seq, kind, amount, reserved, balance_after, ts, call_id, idem_key, extra::text"
        " FROM ledger_entries WHERE tenant_id = $1 AND account_id = $2"
        " AND ($3::text IS NULL OR kind = $3) AND ($4::timestamptz IS NULL OR ts >= $4)"
        " AND ($5::timestamptz IS NULL OR ts < $5) AND ($6::bigint IS NULL OR seq < $6)"
        " ORDER BY seq DESC LIMIT $7",
        scope.tenant_id, account_id, kind, start, end, before[0] if before else None, limit + 1,
    )
    items, more = pagination.page(list(rows), limit)
    return LedgerPage(
        items=[_entry(r, account.currency) for r in items],
        next_cursor=pagination.encode(items[-1]["seq"]) if more else None,
    )
