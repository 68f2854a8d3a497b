"""Pricing a hypothetical call for support staff, with the engine's own rating functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends

from admin_api.auth import ACCOUNT_READERS, Scope, allow
from admin_api.context import AdminContext, Ctx
from admin_api.problems import invalid, not_found, responses
from admin_api.rates.schemas import PriceOut, PriceRequest, matched_rate
from charging_engine.accounts import record
from charging_engine.money import format_amount
from charging_engine.rating.numbers import NumberError, normalize
from charging_engine.rating.pricing import billed_seconds, cost, max_duration
from charging_engine.rating.tariff import Tariff

router = APIRouter(tags=["rates"])


async def _tariff(ctx: AdminContext, tenant_id: str, plan_id: str) -> Tariff:
    tariff = ctx.catalog.tariff(tenant_id, plan_id)
    if tariff is None:  # maybe created a moment ago by another engine process
        await ctx.refresher.refresh()
        tariff = ctx.catalog.tariff(tenant_id, plan_id)
    if tariff is None:
        raise not_found(f"rate plan {plan_id!r}")
    return tariff


@router.post(
    "/v1/tenants/{tenant_id}/pricing", response_model=PriceOut,
    responses=responses(401, 403, 404, 422),
    summary="Which rate a call would get, what it would cost, how long the money lasts",
)
async def price(
    ctx: Ctx, scope: Annotated[Scope, Depends(allow(ACCOUNT_READERS))], body: PriceRequest
) -> PriceOut:
    if (body.plan_id is None) == (body.account_id is None):
        raise invalid("give exactly one of plan_id and account_id")
    try:
        number = normalize(body.destination)
    except NumberError as exc:
        raise invalid(str(exc)) from None
    amount = body.amount
    if body.account_id is not None:
        account = await record.require(ctx.pool, scope.tenant_id, body.account_id)
        if account.rate_plan_id is None:
            raise invalid(f"account {body.account_id!r} has no rate plan")
        plan_id = account.rate_plan_id
        if amount is None:
            state = await ctx.store.state(scope.tenant_id, body.account_id)
            amount = max(state.available, 0) if state is not None else None
    else:
        assert body.plan_id is not None
        plan_id = body.plan_id
    tariff = await _tariff(ctx, scope.tenant_id, plan_id)
    tenant = ctx.catalog.tenant(scope.tenant_id)
    at = body.at or datetime.now(UTC)
    rate = tariff.find(number, at, tenant.tz if tenant else ZoneInfo("UTC"))
    cur = tariff.currency
    limit = ctx.engine.settings.max_call_seconds
    return PriceOut(
        destination=number, plan_id=plan_id, currency=cur, at=at,
        rate=None if rate is None else matched_rate(rate, cur),
        duration_seconds=body.duration_seconds,
        billed_seconds=0 if rate is None else billed_seconds(rate, body.duration_seconds),
        cost=format_amount(0 if rate is None else cost(rate, body.duration_seconds), cur),
        amount=None if amount is None else format_amount(amount, cur),
        max_duration_seconds=None if rate is None or amount is None
        else max_duration(rate, amount, limit),
    )
