"""Bill plan, tax label and discount routes (DIDs, charges and settings have their own)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.catalog_views import (
    discount_out,
    discount_value_in,
    dump,
    given,
    minor_in,
    plan_out,
    tax_out,
)
from admin_api.billing.schemas import (
    BillPlanCreate,
    BillPlanId,
    BillPlanOut,
    BillPlanPage,
    BillPlanPath,
    BillPlanUpdate,
    DiscountCreate,
    DiscountOut,
    DiscountPage,
    DiscountPath,
    DiscountUpdate,
    TaxCodePath,
    TaxLabelCreate,
    TaxLabelOut,
    TaxLabelPage,
    TaxLabelUpdate,
)
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import Cursor, Id, Limit
from billing.catalog import discounts, lookups, plans, taxes
from billing.catalog.discounts import DiscountSpec
from billing.catalog.plans import FEES, PlanSpec
from billing.catalog.taxes import TaxSpec
from billing.errors import InvalidBillingInput

router = APIRouter(tags=["billing catalogue"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
TENANT = "/v1/tenants/{tenant_id}"
BILL_PLANS = TENANT + "/bill-plans"
BILL_PLAN = BILL_PLANS + "/{bill_plan_id}"
TAX_LABELS = TENANT + "/tax-labels"
TAX_LABEL = TAX_LABELS + "/{tax_code}"
DISCOUNTS = TENANT + "/discounts"
DISCOUNT = DISCOUNTS + "/{discount_id}"
WRITE = responses(401, 403, 404, 409, 422)
READ = responses(401, 403, 404, 422)


# Bill plans


@router.post(BILL_PLANS, response_model=BillPlanOut, status_code=201, responses=WRITE,
             summary="Create a bill plan (fees in minor-unit precision of its currency)")
async def create_bill_plan(ctx: Ctx, scope: Admins, body: BillPlanCreate) -> BillPlanOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        currency = lookups.check_currency(
            body.currency or (await lookups.tenant(conn, scope.tenant_id)).currency
        )
        fees = {name: minor_in(getattr(body, name), currency, name) for name in FEES}
        spec = PlanSpec(
            name=body.name, period=body.period, anchor_month=body.anchor_month,
            payment_terms_days=body.payment_terms_days, fees_in_advance=body.fees_in_advance,
            usage_in_arrears=body.usage_in_arrears, rate_plan_id=body.rate_plan_id,
            invoice_when_empty=body.invoice_when_empty, tax_codes=tuple(body.tax_codes),
            payment_text=body.payment_text, minimum_term_days=body.minimum_term_days, **fees,
        )
        out = plan_out(await plans.create(conn, scope.tenant_id, body.plan_id, currency, spec))
        await record_change(conn, scope.caller, scope.tenant_id, "bill_plan.create",
                            f"bill_plan:{body.plan_id}", None, dump(out))
    return out


@router.get(BILL_PLANS, response_model=BillPlanPage, responses=READ, summary="Bill plans")
async def list_bill_plans(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None
) -> BillPlanPage:
    after = pagination.decode(cursor, str)
    rows = await plans.page(ctx.pool, scope.tenant_id, after[0] if after else None, limit + 1)
    items, more = pagination.page(rows, limit)
    return BillPlanPage(items=[plan_out(p) for p in items],
                        next_cursor=pagination.encode(items[-1].plan_id) if more else None)


@router.get(BILL_PLAN, response_model=BillPlanOut, responses=READ, summary="A bill plan")
async def get_bill_plan(ctx: Ctx, scope: Readers, bill_plan_id: BillPlanPath) -> BillPlanOut:
    return plan_out(await plans.get(ctx.pool, scope.tenant_id, bill_plan_id))


@router.patch(BILL_PLAN, response_model=BillPlanOut, responses=WRITE,
              summary="Change a bill plan (fees apply from the next invoice)")
async def update_bill_plan(
    ctx: Ctx, scope: Admins, bill_plan_id: BillPlanPath, body: BillPlanUpdate
) -> BillPlanOut:
    changes = given(body, nullable={"rate_plan_id"})
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await plans.get(conn, scope.tenant_id, bill_plan_id, lock=True)
        for name in FEES:
            if name in changes:
                changes[name] = minor_in(changes[name], current.currency, name)
        if "tax_codes" in changes:
            changes["tax_codes"] = tuple(changes["tax_codes"])
        before, after = await plans.update(conn, scope.tenant_id, bill_plan_id, changes)
        out = plan_out(after)
        if before.spec != after.spec:
            await record_change(conn, scope.caller, scope.tenant_id, "bill_plan.update",
                                f"bill_plan:{bill_plan_id}", dump(plan_out(before)), dump(out))
    return out


@router.delete(BILL_PLAN, status_code=204, response_class=Response, responses=WRITE,
               summary="Delete a bill plan nothing bills with")
async def delete_bill_plan(ctx: Ctx, scope: Admins, bill_plan_id: BillPlanPath) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await plans.delete(conn, scope.tenant_id, bill_plan_id)
        await record_change(conn, scope.caller, scope.tenant_id, "bill_plan.delete",
                            f"bill_plan:{bill_plan_id}", dump(plan_out(old)), None)
    return Response(status_code=204)


# Tax labels


@router.post(TAX_LABELS, response_model=TaxLabelOut, status_code=201, responses=WRITE,
             summary="Create a tax label (a percent rate, at most 4 decimals)")
async def create_tax_label(ctx: Ctx, scope: Admins, body: TaxLabelCreate) -> TaxLabelOut:
    spec = TaxSpec(body.name, lookups.percent(body.rate, "rate"), body.inclusive, body.compound,
                   body.ord)
    async with ctx.pool.acquire() as conn, conn.transaction():
        out = tax_out(await taxes.create(conn, scope.tenant_id, body.code, spec))
        await record_change(conn, scope.caller, scope.tenant_id, "tax_label.create",
                            f"tax_label:{body.code}", None, dump(out))
    return out


@router.get(TAX_LABELS, response_model=TaxLabelPage, responses=READ,
            summary="Tax labels, in the order they apply")
async def list_tax_labels(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None
) -> TaxLabelPage:
    after = pagination.decode(cursor, int, str)
    rows = await taxes.page(ctx.pool, scope.tenant_id, _key(after), limit + 1)
    items, more = pagination.page(rows, limit)
    return TaxLabelPage(
        items=[tax_out(t) for t in items],
        next_cursor=pagination.encode(items[-1].spec.ord, items[-1].code) if more else None,
    )


def _key(after: tuple[Any, ...] | None) -> tuple[int, str] | None:
    """An (ord, id) cursor; both parts are needed."""
    if after is None:
        return None
    if after[0] is None or after[1] is None:
        raise ApiProblem(422, pagination.INVALID_CURSOR, "cursor is not one this API returned")
    return int(after[0]), str(after[1])


@router.get(TAX_LABEL, response_model=TaxLabelOut, responses=READ, summary="A tax label")
async def get_tax_label(ctx: Ctx, scope: Readers, tax_code: TaxCodePath) -> TaxLabelOut:
    return tax_out(await taxes.get(ctx.pool, scope.tenant_id, tax_code))


@router.patch(TAX_LABEL, response_model=TaxLabelOut, responses=WRITE,
              summary="Change a tax label (invoices already made keep their rates)")
async def update_tax_label(
    ctx: Ctx, scope: Admins, tax_code: TaxCodePath, body: TaxLabelUpdate
) -> TaxLabelOut:
    changes = given(body)
    if "rate" in changes:
        changes["rate"] = lookups.percent(changes["rate"], "rate")
    async with ctx.pool.acquire() as conn, conn.transaction():
        before, after = await taxes.update(conn, scope.tenant_id, tax_code, changes)
        out = tax_out(after)
        if before != after:
            await record_change(conn, scope.caller, scope.tenant_id, "tax_label.update",
                                f"tax_label:{tax_code}", dump(tax_out(before)), dump(out))
    return out


@router.delete(TAX_LABEL, status_code=204, response_class=Response, responses=WRITE,
               summary="Delete a tax label no plan, account or open charge names")
async def delete_tax_label(ctx: Ctx, scope: Admins, tax_code: TaxCodePath) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await taxes.delete(conn, scope.tenant_id, tax_code)
        await record_change(conn, scope.caller, scope.tenant_id, "tax_label.delete",
                            f"tax_label:{tax_code}", dump(tax_out(old)), None)
    return Response(status_code=204)


# Discounts


@router.post(DISCOUNTS, response_model=DiscountOut, status_code=201, responses=WRITE,
             summary="Create a discount for one account or for a bill plan's accounts")
async def create_discount(ctx: Ctx, scope: Admins, body: DiscountCreate) -> DiscountOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        currency = await discounts.target_currency(conn, scope.tenant_id, body.account_id,
                                                   body.plan_id)
        spec = DiscountSpec(body.name, body.kind,
                            discount_value_in(body.kind, body.value, currency), body.scope,
                            body.starts_on, body.ends_on, body.ord)
        row = await discounts.create(conn, scope.tenant_id, body.discount_id, spec,
                                     account_id=body.account_id, plan_id=body.plan_id)
        out = discount_out(row)
        await record_change(conn, scope.caller, scope.tenant_id, "discount.create",
                            f"discount:{body.discount_id}", None, dump(out))
    return out


@router.get(DISCOUNTS, response_model=DiscountPage, responses=READ,
            summary="Discounts, in the order they apply")
async def list_discounts(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None,
    account_id: Annotated[Id | None, Query(description="Only this account's")] = None,
    plan_id: Annotated[BillPlanId | None, Query(description="Only this bill plan's")] = None,
) -> DiscountPage:
    after = pagination.decode(cursor, int, str)
    rows = await discounts.page(ctx.pool, scope.tenant_id, _key(after), limit + 1,
                                account_id=account_id, plan_id=plan_id)
    items, more = pagination.page(rows, limit)
    return DiscountPage(
        items=[discount_out(d) for d in items],
        next_cursor=(pagination.encode(items[-1].spec.ord, items[-1].discount_id) if more
                     else None),
    )


@router.get(DISCOUNT, response_model=DiscountOut, responses=READ, summary="A discount")
async def get_discount(ctx: Ctx, scope: Readers, discount_id: DiscountPath) -> DiscountOut:
    return discount_out(await discounts.get(ctx.pool, scope.tenant_id, discount_id))


@router.patch(DISCOUNT, response_model=DiscountOut, responses=WRITE,
              summary="Change a discount (its account or plan stays)")
async def update_discount(
    ctx: Ctx, scope: Admins, discount_id: DiscountPath, body: DiscountUpdate
) -> DiscountOut:
    changes = given(body, nullable={"starts_on", "ends_on"})
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await discounts.get(conn, scope.tenant_id, discount_id, lock=True)
        kind = changes.get("kind", current.spec.kind)
        if kind != current.spec.kind and "value" not in changes:
            raise InvalidBillingInput(f"a {kind} discount needs its value: send value too")
        if "value" in changes:
            changes["value"] = discount_value_in(kind, changes["value"], current.currency)
        before, after = await discounts.update(conn, scope.tenant_id, discount_id, changes)
        out = discount_out(after)
        if before != after:
            await record_change(conn, scope.caller, scope.tenant_id, "discount.update",
                                f"discount:{discount_id}", dump(discount_out(before)),
                                dump(out))
    return out


@router.delete(DISCOUNT, status_code=204, response_class=Response, responses=WRITE,
               summary="Delete a discount (invoices already made keep it)")
async def delete_discount(ctx: Ctx, scope: Admins, discount_id: DiscountPath) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await discounts.delete(conn, scope.tenant_id, discount_id)
        await record_change(conn, scope.caller, scope.tenant_id, "discount.delete",
                            f"discount:{discount_id}", dump(discount_out(old)), None)
    return Response(status_code=204)
