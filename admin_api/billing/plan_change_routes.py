"""Plan change routes for staff: preview a change, request it for a customer, list and decide
requests (approving applies the change: now, prorated by days, or from the next period); and
the customer's self-service token (shown once) with which the customer requests it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from admin_api.audit import record_change
from admin_api.auth import ADMINS, BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import ID_PATTERN, AccountPath, Body, Id, Out
from billing import plan_requests
from billing.amounts import format_minor
from billing.plan_change import Preview
from charging_engine.accounts import record
from charging_engine.money import format_amount

router = APIRouter(tags=["receivables"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
TokenAdmins = Annotated[Scope, Depends(allow(ADMINS))]
ACCOUNT = "/v1/tenants/{tenant_id}/accounts/{account_id}"
REQUESTS = "/v1/tenants/{tenant_id}/plan-change-requests"
REQUEST = REQUESTS + "/{request_id}"
RequestPath = Annotated[str, Path(pattern=r"^pcr_[0-9a-f]{32}$")]
EffectiveQ = Annotated[Literal["now", "boundary"], Query()]
PlanQ = Annotated[str, Query(pattern=ID_PATTERN)]
States = Literal["requested", "approved", "rejected", "cancelled", "applied"]


class PreviewOut(Out):
    plan_id: str
    effective: Literal["now", "boundary"]
    effective_on: date
    period_start: date
    period_end: date
    currency: str
    current_fees: str = Field(description="This period's recurring fees without the change")
    fees_with_change: str = Field(description="This period's recurring fees with it")
    difference: str = Field(description="Added to this period (negative: taken off)")
    next_period_fees: str = Field(description="A whole period on the new plan")
    carried_balance: str = Field(description="Prepaid money moving over with the account")
    carried_credit: str = Field(description="Billing credit moving over with the account")


class RequestIn(Body):
    plan_id: Id
    effective: Literal["now", "boundary"] = "boundary"
    note: str = Field("", max_length=500)


class RequestOut(Out):
    request_id: str
    account_id: str
    from_plan_id: str
    plan_id: str
    effective: Literal["now", "boundary"]
    state: States
    requested_by: str
    note: str
    effective_on: date | None
    decided_by: str | None
    reason: str | None
    created_at: datetime
    decided_at: datetime | None
    preview: dict[str, Any]


class RequestPage(Out):
    items: list[RequestOut]


class RejectIn(Body):
    reason: str = Field(min_length=1, max_length=500)


class TokenOut(Out):
    token_id: str
    token: str = Field(description="Shown once: give it to the customer")
    account_id: str


def preview_out(p: Preview, plan_id: str, effective: Literal["now", "boundary"], cur: str
                ) -> PreviewOut:  # fmt: skip
    return PreviewOut(
        plan_id=plan_id, effective=effective, effective_on=p.effective_on,
        period_start=p.period_start, period_end=p.period_end, currency=cur,
        current_fees=format_minor(p.current_fees, cur),
        fees_with_change=format_minor(p.fees_with_change, cur),
        difference=format_minor(p.difference, cur),
        next_period_fees=format_minor(p.next_period_fees, cur),
        carried_balance=format_amount(p.carried_balance, cur),
        carried_credit=format_minor(p.carried_credit, cur))  # fmt: skip


def request_out(r: Any) -> RequestOut:
    return RequestOut(**{k: r[k] for k in RequestOut.model_fields if k != "preview"},
                      preview=orjson.loads(r["preview"]))  # fmt: skip


async def balance_of(ctx: Ctx, tenant_id: str, account_id: str) -> int:
    state = await ctx.money.store.state(tenant_id, account_id)
    return state.balance if state is not None else 0


async def show_preview(ctx: Ctx, tenant_id: str, account_id: str, plan_id: str,
                       effective: Literal["now", "boundary"]) -> PreviewOut:  # fmt: skip
    acct = await record.require(ctx.pool, tenant_id, account_id)
    p = await plan_requests.preview_for(ctx.pool, tenant_id, account_id, plan_id, effective,
                                        now=ctx.now(),
                                        balance=await balance_of(ctx, tenant_id, account_id))
    return preview_out(p, plan_id, effective, acct.currency)


@router.get(ACCOUNT + "/plan-change-preview", response_model=PreviewOut,
            responses=responses(401, 403, 404, 409, 422),
            summary="What changing the account's bill plan would do, before anyone confirms")
async def get_preview(ctx: Ctx, scope: Readers, account_id: AccountPath, plan_id: PlanQ,
                      effective: EffectiveQ = "boundary") -> PreviewOut:  # fmt: skip
    return await show_preview(ctx, scope.tenant_id, account_id, plan_id, effective)


@router.post(ACCOUNT + "/plan-change-requests", response_model=RequestOut, status_code=201,
             responses=responses(401, 403, 404, 409, 422),
             summary="Request a plan change for the customer (staff approve it)")
async def post_request(ctx: Ctx, scope: Admins, account_id: AccountPath, body: RequestIn
                       ) -> RequestOut:  # fmt: skip
    await record.require(ctx.pool, scope.tenant_id, account_id)
    row = await plan_requests.request(
        ctx.pool, scope.tenant_id, account_id, body.plan_id, body.effective,
        by=scope.caller.key_id, note=body.note, now=ctx.now(),
        balance=await balance_of(ctx, scope.tenant_id, account_id))  # fmt: skip
    return request_out(row)


@router.get(REQUESTS, response_model=RequestPage, responses=responses(401, 403, 404, 422),
            summary="Plan change requests, newest first (at most 200)")
async def list_requests(ctx: Ctx, scope: Readers,
                        state: Annotated[States | None, Query()] = None) -> RequestPage:
    rows = await ctx.pool.fetch(
        "SELECT * FROM plan_change_requests WHERE tenant_id = $1 AND ($2::text IS NULL OR"
        " state = $2) ORDER BY created_at DESC LIMIT 200", scope.tenant_id, state)  # fmt: skip
    return RequestPage(items=[request_out(r) for r in rows])


@router.get(REQUEST, response_model=RequestOut, responses=responses(401, 403, 404, 422),
            summary="One plan change request")
async def get_request(ctx: Ctx, scope: Readers, request_id: RequestPath) -> RequestOut:
    r = await ctx.pool.fetchrow("SELECT * FROM plan_change_requests WHERE tenant_id = $1"
                                " AND request_id = $2", scope.tenant_id, request_id)  # fmt: skip
    if r is None:
        raise ApiProblem(404, "not_found", f"plan change request {request_id!r} not found")
    return request_out(r)


@router.post(REQUEST + "/approve", response_model=RequestOut,
             responses=responses(401, 403, 404, 409, 422),
             summary="Approve: the change is applied (now, prorated, or next period)")
async def approve(ctx: Ctx, scope: Admins, request_id: RequestPath) -> RequestOut:
    row = await plan_requests.decide(ctx.pool, scope.tenant_id, request_id, "approve",
                                     by=scope.caller.key_id, reason=None, now=ctx.now())
    await _audit(ctx, scope, "plan_change.approve", row)
    return request_out(row)


@router.post(REQUEST + "/reject", response_model=RequestOut,
             responses=responses(401, 403, 404, 409, 422), summary="Reject, with a reason")
async def reject(ctx: Ctx, scope: Admins, request_id: RequestPath, body: RejectIn
                 ) -> RequestOut:  # fmt: skip
    row = await plan_requests.decide(ctx.pool, scope.tenant_id, request_id, "reject",
                                     by=scope.caller.key_id, reason=body.reason, now=ctx.now())
    await _audit(ctx, scope, "plan_change.reject", row)
    return request_out(row)


@router.post(ACCOUNT + "/self-service-tokens", response_model=TokenOut, status_code=201,
             responses=responses(401, 403, 404, 422),
             summary="A new self-service token for the customer (earlier ones stop working)")
async def new_token(ctx: Ctx, scope: TokenAdmins, account_id: AccountPath) -> TokenOut:
    await record.require(ctx.pool, scope.tenant_id, account_id)
    token_id, secret = await plan_requests.issue_token(ctx.pool, scope.tenant_id, account_id,
                                                       by=scope.caller.key_id)  # fmt: skip
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record_change(conn, scope.caller, scope.tenant_id, "account.self_service_token",
                            f"account:{account_id}", None, {"token_id": token_id})
    return TokenOut(token_id=token_id, token=secret, account_id=account_id)


async def _audit(ctx: Ctx, scope: Scope, action: str, row: Any) -> None:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record_change(conn, scope.caller, scope.tenant_id, action,
                            f"plan-change:{row['request_id']}", None,
                            {"state": row["state"], "plan_id": row["plan_id"]})  # fmt: skip
