"""An account's billing: plan and cycle, kind switches, unbilled usage, the next invoice."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from admin_api.audit import actor_of
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.invoices_schemas import (
    BillingIn,
    BillingOut,
    BillingPatch,
    CycleDayIn,
    KindSwitchIn,
    PreviewOut,
    UnbilledOut,
    UsageGroupOut,
)
from admin_api.billing.invoices_views import line_out, tax_out
from admin_api.context import AdminContext, Ctx
from admin_api.problems import responses
from admin_api.schemas import AccountPath
from billing import enrollment, kind_switch
from billing.amounts import format_minor
from billing.enrollment import Enrollment
from billing.errors import BillingNotFound
from billing.invoice_run import InvoiceRun
from billing.kind_switch import KindSwitches
from billing.preview import preview
from charging_engine.audit import record_change
from charging_engine.money import format_amount

router = APIRouter(tags=["account billing"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Finance = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
ACCOUNT = "/v1/tenants/{tenant_id}/accounts/{account_id}"
BILLING = ACCOUNT + "/billing"


async def billing_out(ctx: AdminContext, tenant_id: str, account_id: str) -> BillingOut:
    r = await ctx.pool.fetchrow(
        "SELECT ba.*, a.kind, a.currency FROM billing_accounts ba JOIN accounts a USING"
        " (tenant_id, account_id) WHERE ba.tenant_id = $1 AND ba.account_id = $2",
        tenant_id, account_id,
    )
    if r is None:
        raise BillingNotFound("billing account", account_id)
    return BillingOut(
        account_id=r["account_id"], plan_id=r["plan_id"], bcd=r["bcd"],
        extensions=r["extensions"], seats=r["seats"],
        tax_codes=list(r["tax_codes"]) if r["tax_codes"] is not None else None,
        credit_balance=format_minor(r["credit_balance"], r["currency"].strip()),
        open_period_start=r["open_start_date"], open_period_end=r["open_end_date"],
        open_starts_at=r["open_starts_at"], open_ends_at=r["open_ends_at"],
        pending_kind=r["pending_kind"], kind=r["kind"],
    )


async def _audit(ctx: AdminContext, scope: Scope, action: str, account_id: str, before: Any,
                 after: BillingOut) -> None:
    async with ctx.pool.acquire() as conn:
        await record_change(conn, actor_of(scope.caller), scope.tenant_id, action,
                            f"account:{account_id}", before, after.model_dump(mode="json"))


@router.get(BILLING, response_model=BillingOut, responses=responses(401, 403, 404, 422),
            summary="The account's bill plan, cycle day and open period")
async def get_billing(ctx: Ctx, scope: Readers, account_id: AccountPath) -> BillingOut:
    return await billing_out(ctx, scope.tenant_id, account_id)


@router.post(BILLING, response_model=BillingOut, status_code=201,
             responses=responses(401, 403, 404, 409, 422),
             summary="Put the account on a bill plan (the period containing now opens)")
async def enroll_account(
    ctx: Ctx, scope: Finance, account_id: AccountPath, body: BillingIn
) -> BillingOut:
    e = Enrollment(body.plan_id, body.bcd, body.extensions, body.seats,
                   tuple(body.tax_codes) if body.tax_codes is not None else None)
    await enrollment.enroll(ctx.pool, scope.tenant_id, account_id, e, ctx.now())
    out = await billing_out(ctx, scope.tenant_id, account_id)
    await _audit(ctx, scope, "billing.enroll", account_id, None, out)
    return out


@router.patch(BILLING, response_model=BillingOut, responses=responses(401, 403, 404, 409, 422),
              summary="Change plan or counts, now (prorated by days) or from the next period")
async def change_billing(
    ctx: Ctx, scope: Finance, account_id: AccountPath, body: BillingPatch
) -> BillingOut:
    before = (await billing_out(ctx, scope.tenant_id, account_id)).model_dump(mode="json")
    await enrollment.change_plan(
        ctx.pool, scope.tenant_id, account_id, plan_id=body.plan_id,
        extensions=body.extensions, seats=body.seats, effective=body.effective, now=ctx.now(),
    )
    out = await billing_out(ctx, scope.tenant_id, account_id)
    await _audit(ctx, scope, "billing.change_plan", account_id, before, out)
    return out


@router.post(BILLING + "/cycle-day", response_model=BillingOut,
             responses=responses(401, 403, 404, 409, 422),
             summary="Move to another bill cycle day (the open period bridges to it)")
async def change_cycle_day(
    ctx: Ctx, scope: Finance, account_id: AccountPath, body: CycleDayIn
) -> BillingOut:
    before = (await billing_out(ctx, scope.tenant_id, account_id)).model_dump(mode="json")
    await enrollment.change_cycle_day(ctx.pool, scope.tenant_id, account_id, body.bcd,
                                      ctx.now())
    out = await billing_out(ctx, scope.tenant_id, account_id)
    await _audit(ctx, scope, "billing.cycle_day", account_id, before, out)
    return out


@router.post(BILLING + "/kind", response_model=BillingOut, status_code=202,
             responses={200: {"model": BillingOut, "description": "Switched at once"},
                        **responses(401, 403, 404, 409, 422)},
             summary="Switch prepaid <-> postpaid, now or at the period boundary")
async def switch_kind(
    ctx: Ctx, scope: Finance, account_id: AccountPath, body: KindSwitchIn,
    response: Response,
) -> BillingOut:
    effective = body.effective or await ctx.pool.fetchval(
        "SELECT coalesce((SELECT kind_switch FROM billing_settings WHERE tenant_id = $1),"
        " 'boundary')", scope.tenant_id,
    )
    now = ctx.now()
    await kind_switch.request(ctx.pool, scope.tenant_id, account_id, body.kind,
                              "now" if effective == "now" else "boundary", now)
    if effective == "now":
        only = (scope.tenant_id, account_id)
        switches = KindSwitches(ctx.pool, ctx.store, ctx.accounts)
        await switches.apply_due(now, only)
        if body.kind == "prepaid":
            assert ctx.clock is not None
            await InvoiceRun(ctx.pool, clock=ctx.clock).run_due(only)
        await switches.apply_due(now, only)
    out = await billing_out(ctx, scope.tenant_id, account_id)
    if out.pending_kind is None:
        response.status_code = 200
    return out


def _groups(groups: Any, cur: str) -> list[UsageGroupOut]:
    return [UsageGroupOut(description=g.description, late=g.late, calls=g.calls,
                          seconds=g.seconds, amount=format_amount(g.amount_micros, cur))
            for g in groups]


@router.get(ACCOUNT + "/unbilled", response_model=UnbilledOut,
            responses=responses(401, 403, 404, 422),
            summary="Usage of the open period not yet invoiced, live")
async def unbilled(ctx: Ctx, scope: Readers, account_id: AccountPath) -> UnbilledOut:
    p = await preview(ctx.pool, scope.tenant_id, account_id)
    a, cur = p.account, p.account.currency
    state = await ctx.store.state(scope.tenant_id, account_id)
    groups = p.usage
    return UnbilledOut(
        account_id=account_id, currency=cur, period_start=a.start_date, period_end=a.end_date,
        usage=_groups(groups, cur),
        usage_total=format_amount(sum(g.amount_micros for g in groups), cur),
        balance=format_amount(state.balance, cur) if state else None,
        reserved=format_amount(state.reserved, cur) if state else None,
        available=format_amount(state.available, cur) if state else None,
    )


@router.get(ACCOUNT + "/invoice-preview", response_model=PreviewOut,
            responses=responses(401, 403, 404, 422),
            summary="The next invoice as the run would make it from the ledger now")
async def invoice_preview(ctx: Ctx, scope: Readers, account_id: AccountPath) -> PreviewOut:
    p = await preview(ctx.pool, scope.tenant_id, account_id)
    a, c, cur = p.account, p.built.composed, p.account.currency
    lines = [{
        "position": ln.position, "kind": ln.kind.value, "description": ln.description,
        "quantity": ln.quantity, "unit": ln.unit, "amount": ln.amount, "net": ln.net,
        "tax_amount": ln.tax_amount, "tax_codes": list(ln.tax_codes), "calls": ln.calls,
        "seconds": ln.seconds, "ref": ln.ref, "manual": False, "reason": None,
    } for ln in c.lines]
    taxes = [{"code": t.code, "name": t.name, "rate": t.rate, "inclusive": t.inclusive,
              "base": t.base, "amount": t.amount} for t in c.tax_totals]
    return PreviewOut(
        account_id=account_id, currency=cur, period_start=a.start_date, period_end=a.end_date,
        starts_at=a.starts_at, ends_at=a.ends_at, total=format_minor(c.total, cur),
        subtotal=format_minor(c.subtotal, cur), tax_total=format_minor(c.tax_total, cur),
        credit_applied=format_minor(c.credit_applied, cur),
        amount_due=format_minor(c.amount_due, cur), due_on=p.built.due_on,
        lines=[line_out(x, cur) for x in lines], taxes=[tax_out(x, cur) for x in taxes],
    )
