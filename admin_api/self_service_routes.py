"""Customer self-service routes, behind the account's self-service token (``cst_...``, from
staff): preview a bill plan change, request it, see and cancel the account's requests. The
token names one account: nothing else is reachable with it, and staff keys are not accepted
here (nor the token anywhere else)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from admin_api.billing.plan_change_routes import (
    EffectiveQ,
    PlanQ,
    PreviewOut,
    RequestIn,
    RequestOut,
    RequestPage,
    RequestPath,
    balance_of,
    request_out,
    show_preview,
)
from admin_api.collections.acting import task_out
from admin_api.collections.schemas import PickupIn, TaskOut
from admin_api.context import AdminContext, Ctx, get_context
from admin_api.problems import ApiProblem, responses
from billing import plan_requests
from billing.collections import tasks
from charging_engine.web.api_key import invalid_key, key_extractor

router = APIRouter(tags=["self-service"])
presented_token = key_extractor("customer self-service token")
SELF = "/v1/self"


async def customer(secret: Annotated[str, Depends(presented_token)],
                   ctx: Annotated[AdminContext, Depends(get_context)]) -> tuple[str, str]:
    """(tenant, account) of the token, or 401."""
    found = await plan_requests.account_of_token(ctx.pool, secret)
    if found is None:
        raise invalid_key("the self-service token is not valid")
    return found


Customer = Annotated[tuple[str, str], Depends(customer)]


@router.get(SELF + "/plan-change-preview", response_model=PreviewOut,
            responses=responses(401, 404, 409, 422),
            summary="What changing my bill plan would do")
async def my_preview(ctx: Ctx, who: Customer, plan_id: PlanQ,
                     effective: EffectiveQ = "boundary") -> PreviewOut:  # fmt: skip
    return await show_preview(ctx, who[0], who[1], plan_id, effective)


@router.post(SELF + "/plan-change-requests", response_model=RequestOut, status_code=201,
             responses=responses(401, 404, 409, 422), summary="Ask for a plan change")
async def my_request(ctx: Ctx, who: Customer, body: RequestIn) -> RequestOut:
    row = await plan_requests.request(
        ctx.pool, who[0], who[1], body.plan_id, body.effective, by="customer",
        note=body.note, now=ctx.now(), balance=await balance_of(ctx, *who))  # fmt: skip
    return request_out(row)


@router.get(SELF + "/plan-change-requests", response_model=RequestPage,
            responses=responses(401, 422), summary="My plan change requests, newest first")
async def my_requests(ctx: Ctx, who: Customer) -> RequestPage:
    rows = await ctx.pool.fetch(
        "SELECT * FROM plan_change_requests WHERE tenant_id = $1 AND account_id = $2"
        " ORDER BY created_at DESC LIMIT 50", *who)  # fmt: skip
    return RequestPage(items=[request_out(r) for r in rows])


@router.post(SELF + "/plan-change-requests/{request_id}/cancel", response_model=RequestOut,
             responses=responses(401, 404, 409, 422), summary="Withdraw my request")
async def my_cancel(ctx: Ctx, who: Customer, request_id: RequestPath) -> RequestOut:
    row = await plan_requests.decide(ctx.pool, who[0], request_id, "cancel", by="customer",
                                     reason=None, now=ctx.now(), account_id=who[1])
    return request_out(row)


MAX_OPEN_PICKUPS = 3


@router.post(SELF + "/pickup-requests", response_model=TaskOut, status_code=201,
             responses=responses(401, 409, 422),
             summary="Ask for an agent to come and collect a payment")
async def my_pickup(ctx: Ctx, who: Customer, body: PickupIn) -> TaskOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM accounts WHERE tenant_id = $1 AND account_id = $2"
                           " FOR UPDATE", *who)  # fmt: skip
        open_now = await conn.fetchval(
            "SELECT count(*) FROM collection_tasks WHERE tenant_id = $1 AND account_id = $2"
            " AND kind = 'pickup' AND status NOT IN ('collected', 'cancelled')", *who)
        if open_now >= MAX_OPEN_PICKUPS:
            raise ApiProblem(409, "too_many_pickups",
                             f"{open_now} pickup requests are open already")
        t = await tasks.create(conn, who[0], tasks.TaskIn(
            account_id=who[1], kind="pickup", address=body.address, note=body.note),
            by="customer", at=ctx.now())  # fmt: skip
    return task_out(t)
