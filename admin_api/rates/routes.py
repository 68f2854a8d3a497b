"""Rate plan and single-rate routes (bulk CSV decks are in ``deck``)."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Query, Response

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import ADMINS, READERS, Scope, allow
from admin_api.context import AdminContext, Ctx
from admin_api.problems import conflict, invalid, not_found, responses
from admin_api.rates import repo
from admin_api.rates.schemas import (
    PlanCreate,
    PlanOut,
    PlanPage,
    PlanUpdate,
    RateIn,
    RateOut,
    RatePage,
    rate_out,
)
from admin_api.schemas import Cursor, Limit, PlanPath, RowIdPath
from charging_engine.ledger.catalog_repo import rate_of
from charging_engine.rating.model import Rate, RateError

router = APIRouter(tags=["rates"])

Readers = Annotated[Scope, Depends(allow(READERS))]
Admins = Annotated[Scope, Depends(allow(ADMINS))]
PLANS = "/v1/tenants/{tenant_id}/rate-plans"
PLAN = PLANS + "/{plan_id}"


def plan_out(r: asyncpg.Record) -> PlanOut:
    return PlanOut(plan_id=r["plan_id"], name=r["name"], currency=r["currency"].strip(),
                   rates=r["rates"], accounts=r["accounts"])


async def get_plan(
    conn: asyncpg.Connection | asyncpg.Pool, scope: Scope, plan_id: str, *, lock: bool = False
) -> asyncpg.Record:
    row = await repo.plan(conn, scope.tenant_id, plan_id, lock=lock)
    if row is None:
        raise not_found(f"rate plan {plan_id!r}")
    return row


@router.post(PLANS, response_model=PlanOut, status_code=201,
             responses=responses(401, 403, 404, 409, 422), summary="Create an empty rate plan")
async def create_plan(ctx: Ctx, scope: Admins, body: PlanCreate) -> PlanOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        currency = body.currency or str(await conn.fetchval(
            "SELECT currency FROM tenants WHERE tenant_id = $1", scope.tenant_id
        )).strip()
        done = await conn.fetchval(
            "INSERT INTO rate_plans (tenant_id, plan_id, name, currency) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            scope.tenant_id, body.plan_id, body.name, currency,
        )
        if done is None:
            raise conflict("plan_exists", f"rate plan {body.plan_id!r} already exists")
        await record_change(conn, scope.caller, scope.tenant_id, "rate_plan.create",
                            f"rate_plan:{body.plan_id}", None,
                            {"name": body.name, "currency": currency})
        row = await get_plan(conn, scope, body.plan_id)
    await ctx.refresher.refresh()
    return plan_out(row)


@router.get(PLANS, response_model=PlanPage, responses=responses(401, 403, 404, 422),
            summary="Rate plans")
async def list_plans(ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None
                     ) -> PlanPage:
    after = pagination.decode(cursor, str)
    rows = await repo.plans(ctx.pool, scope.tenant_id, after[0] if after else None, limit + 1)
    items, more = pagination.page(rows, limit)
    return PlanPage(items=[plan_out(r) for r in items],
                    next_cursor=pagination.encode(items[-1]["plan_id"]) if more else None)


@router.get(PLAN, response_model=PlanOut, responses=responses(401, 403, 404, 422),
            summary="A rate plan")
async def get_plan_route(ctx: Ctx, scope: Readers, plan_id: PlanPath) -> PlanOut:
    return plan_out(await get_plan(ctx.pool, scope, plan_id))


@router.patch(PLAN, response_model=PlanOut, responses=responses(401, 403, 404, 422),
              summary="Rename a rate plan")
async def update_plan(ctx: Ctx, scope: Admins, plan_id: PlanPath, body: PlanUpdate) -> PlanOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await get_plan(conn, scope, plan_id, lock=True)
        if old["name"] != body.name:
            await conn.execute(
                "UPDATE rate_plans SET name = $3 WHERE tenant_id = $1 AND plan_id = $2",
                scope.tenant_id, plan_id, body.name,
            )
            await record_change(conn, scope.caller, scope.tenant_id, "rate_plan.update",
                                f"rate_plan:{plan_id}", {"name": old["name"]},
                                {"name": body.name})
        row = await get_plan(conn, scope, plan_id)
    return plan_out(row)


@router.delete(PLAN, status_code=204, response_class=Response,
               responses=responses(401, 403, 404, 409, 422),
               summary="Delete a plan no account uses, with its rates")
async def delete_plan(ctx: Ctx, scope: Admins, plan_id: PlanPath) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await get_plan(conn, scope, plan_id, lock=True)
        if old["accounts"]:
            raise conflict("plan_in_use",
                           f"{old['accounts']} account(s) use rate plan {plan_id!r}")
        await conn.execute("DELETE FROM rate_plans WHERE tenant_id = $1 AND plan_id = $2",
                           scope.tenant_id, plan_id)
        await record_change(conn, scope.caller, scope.tenant_id, "rate_plan.delete",
                            f"rate_plan:{plan_id}",
                            {"name": old["name"], "currency": old["currency"].strip(),
                             "rates": old["rates"]}, None)
    await ctx.refresher.refresh()
    return Response(status_code=204)


@router.get(PLAN + "/rates", response_model=RatePage, responses=responses(401, 403, 404, 422),
            summary="Rates of a plan, in deck order")
async def list_rates(
    ctx: Ctx, scope: Readers, plan_id: PlanPath, limit: Limit = 50, cursor: Cursor = None,
    prefix: Annotated[str | None, Query(pattern=r"^[0-9]{1,15}$",
                                        description="Prefixes starting with")] = None,
) -> RatePage:
    plan = await get_plan(ctx.pool, scope, plan_id)
    after = pagination.decode(cursor, int)
    rows = await repo.rates(ctx.pool, scope.tenant_id, plan_id, prefix=prefix,
                            after_id=after[0] if after else None, limit=limit + 1)
    items, more = pagination.page(rows, limit)
    cur = plan["currency"].strip()
    return RatePage(items=[rate_out(r["id"], rate_of(r), cur) for r in items],
                    next_cursor=pagination.encode(items[-1]["id"]) if more else None)


def _rate(body: RateIn) -> Rate:
    try:
        return body.rate()
    except RateError as exc:
        raise invalid(str(exc)) from None


async def _save_rate(
    ctx: AdminContext, scope: Scope, plan_id: str, body: RateIn, rate_id: int | None
) -> RateOut:
    new = _rate(body)
    async with ctx.pool.acquire() as conn, conn.transaction():
        plan = await get_plan(conn, scope, plan_id, lock=True)  # serialises rate edits
        before = None
        if rate_id is not None:
            old = await repo.rate(conn, scope.tenant_id, plan_id, rate_id)
            if old is None:
                raise not_found(f"rate {rate_id}")
            before = rate_out(rate_id, rate_of(old), None).model_dump()
        other = await repo.clashing(conn, scope.tenant_id, plan_id, new, rate_id)
        if other is not None:
            raise conflict("duplicate_rate",
                           f"rate {other} has the same prefix, band and activation time")
        if rate_id is None:
            rate_id = await repo.insert_rate(conn, scope.tenant_id, plan_id, new)
        else:
            await repo.update_rate(conn, scope.tenant_id, plan_id, rate_id, new)
        out = rate_out(rate_id, new, plan["currency"].strip())
        await record_change(conn, scope.caller, scope.tenant_id,
                            "rate.create" if before is None else "rate.update",
                            f"rate_plan:{plan_id}:rate:{rate_id}", before,
                            rate_out(rate_id, new, None).model_dump())
    await ctx.refresher.refresh()
    return out


@router.post(PLAN + "/rates", response_model=RateOut, status_code=201,
             responses=responses(401, 403, 404, 409, 422), summary="Add a rate to a plan")
async def create_rate(ctx: Ctx, scope: Admins, plan_id: PlanPath, body: RateIn) -> RateOut:
    return await _save_rate(ctx, scope, plan_id, body, None)


@router.get(PLAN + "/rates/{rate_id}", response_model=RateOut,
            responses=responses(401, 403, 404, 422), summary="One rate")
async def get_rate(ctx: Ctx, scope: Readers, plan_id: PlanPath, rate_id: RowIdPath) -> RateOut:
    plan = await get_plan(ctx.pool, scope, plan_id)
    row = await repo.rate(ctx.pool, scope.tenant_id, plan_id, rate_id)
    if row is None:
        raise not_found(f"rate {rate_id}")
    return rate_out(rate_id, rate_of(row), plan["currency"].strip())


@router.put(PLAN + "/rates/{rate_id}", response_model=RateOut,
            responses=responses(401, 403, 404, 409, 422), summary="Replace one rate")
async def put_rate(
    ctx: Ctx, scope: Admins, plan_id: PlanPath, rate_id: RowIdPath, body: RateIn
) -> RateOut:
    return await _save_rate(ctx, scope, plan_id, body, rate_id)


@router.delete(PLAN + "/rates/{rate_id}", status_code=204, response_class=Response,
               responses=responses(401, 403, 404, 422), summary="Remove one rate")
async def delete_rate(
    ctx: Ctx, scope: Admins, plan_id: PlanPath, rate_id: RowIdPath
) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await get_plan(conn, scope, plan_id, lock=True)
        old = await repo.rate(conn, scope.tenant_id, plan_id, rate_id)
        if old is None:
            raise not_found(f"rate {rate_id}")
        await conn.execute("DELETE FROM rates WHERE tenant_id = $1 AND plan_id = $2 AND id = $3",
                           scope.tenant_id, plan_id, rate_id)
        await record_change(conn, scope.caller, scope.tenant_id, "rate.delete",
                            f"rate_plan:{plan_id}:rate:{rate_id}",
                            rate_out(rate_id, rate_of(old), None).model_dump(), None)
    await ctx.refresher.refresh()
    return Response(status_code=204)
