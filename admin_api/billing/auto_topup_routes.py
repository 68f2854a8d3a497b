"""Auto top-up routes: the account's saved payment method at a gateway (what an auto top-up
charges; the account's threshold and amount are ``/auto-topup``), and the attempts made,
one per low-balance alert on the line, with why each was or was not charged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import Field, StringConstraints

from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import AccountPath, Body, Micros, Out
from charging_engine.accounts import record
from charging_engine.money import format_amount

router = APIRouter(tags=["receivables"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
METHOD = "/v1/tenants/{tenant_id}/accounts/{account_id}/payment-method"
ATTEMPTS = "/v1/tenants/{tenant_id}/accounts/{account_id}/auto-topup/attempts"
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,100}$")]


class PaymentMethodIn(Body):
    gateway: Literal["stripe"] = "stripe"
    customer_ref: Ref = Field(description="The gateway's customer (Stripe: cus_...)")
    method_ref: Ref = Field(description="The saved card (Stripe: pm_...)")
    top_up_to: Micros | None = Field(None, description="Charge what brings the balance up to"
                                     " this, instead of the auto top-up amount")  # fmt: skip


class PaymentMethodOut(Out):
    account_id: str
    gateway: str
    customer_ref: str
    method_ref: str
    top_up_to: str | None
    updated_at: datetime


class AttemptOut(Out):
    attempt_id: int
    alert_id: int
    at: datetime
    status: Literal["skipped", "pending", "succeeded", "declined", "failed", "invoiced"]
    reason: str
    amount: str | None
    payment_id: str | None
    invoice_id: str | None


class AttemptsOut(Out):
    items: list[AttemptOut] = Field(description="Newest first, at most 100")


async def _out(ctx: Ctx, tenant_id: str, account_id: str) -> PaymentMethodOut:
    acct = await record.require(ctx.pool, tenant_id, account_id)
    r = await ctx.pool.fetchrow("SELECT * FROM payment_methods WHERE tenant_id = $1 AND"
                                " account_id = $2", tenant_id, account_id)  # fmt: skip
    if r is None:
        raise ApiProblem(404, "not_found", "no saved payment method")
    top = r["top_up_to"]
    return PaymentMethodOut(
        account_id=account_id, gateway=r["gateway"], customer_ref=r["customer_ref"],
        method_ref=r["method_ref"], updated_at=r["updated_at"],
        top_up_to=format_amount(top, acct.currency) if top is not None else None)  # fmt: skip


@router.put(METHOD, response_model=PaymentMethodOut, responses=responses(401, 403, 404, 422),
            summary="Save the card an auto top-up charges (the gateway's customer and method)")
async def put_method(ctx: Ctx, scope: Admins, account_id: AccountPath, body: PaymentMethodIn
                     ) -> PaymentMethodOut:  # fmt: skip
    await record.require(ctx.pool, scope.tenant_id, account_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO payment_methods (tenant_id, account_id, gateway, customer_ref,"
            " method_ref, top_up_to, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (tenant_id, account_id) DO UPDATE SET gateway = excluded.gateway,"
            " customer_ref = excluded.customer_ref, method_ref = excluded.method_ref,"
            " top_up_to = excluded.top_up_to, updated_at = excluded.updated_at",
            scope.tenant_id, account_id, body.gateway, body.customer_ref, body.method_ref,
            body.top_up_to, ctx.now())  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "account.payment_method",
                            f"account:{account_id}", None, body.model_dump())  # fmt: skip
    return await _out(ctx, scope.tenant_id, account_id)


@router.get(METHOD, response_model=PaymentMethodOut, responses=responses(401, 403, 404, 422),
            summary="The account's saved payment method")
async def get_method(ctx: Ctx, scope: Readers, account_id: AccountPath) -> PaymentMethodOut:
    return await _out(ctx, scope.tenant_id, account_id)


@router.delete(METHOD, status_code=204, response_class=Response,
               responses=responses(401, 403, 404, 422),
               summary="Forget the saved payment method (auto top-ups then fail, recorded)")
async def delete_method(ctx: Ctx, scope: Admins, account_id: AccountPath) -> Response:
    await record.require(ctx.pool, scope.tenant_id, account_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        done = await conn.execute("DELETE FROM payment_methods WHERE tenant_id = $1 AND"
                                  " account_id = $2", scope.tenant_id, account_id)  # fmt: skip
        if done.endswith(" 0"):
            raise ApiProblem(404, "not_found", "no saved payment method")
        await record_change(conn, scope.caller, scope.tenant_id, "account.payment_method",
                            f"account:{account_id}", None, None)  # fmt: skip
    return Response(status_code=204)


@router.get(ATTEMPTS, response_model=AttemptsOut, responses=responses(401, 403, 404, 422),
            summary="The account's auto top-up attempts: one per alert on its line")
async def attempts(ctx: Ctx, scope: Readers, account_id: AccountPath) -> AttemptsOut:
    acct = await record.require(ctx.pool, scope.tenant_id, account_id)
    rows = await ctx.pool.fetch(
        "SELECT * FROM auto_topup_attempts WHERE tenant_id = $1 AND account_id = $2"
        " ORDER BY attempt_id DESC LIMIT 100", scope.tenant_id, account_id)  # fmt: skip
    return AttemptsOut(items=[AttemptOut(
        attempt_id=r["attempt_id"], alert_id=r["alert_id"], at=r["at"], status=r["status"],
        reason=r["reason"], payment_id=r["payment_id"], invoice_id=r["invoice_id"],
        amount=format_amount(r["amount"], acct.currency) if r["amount"] is not None else None,
    ) for r in rows])  # fmt: skip
