"""Payment routes: record (exactly once by Idempotency-Key) and allocate, list, reverse or
refund; an account's receivables (its open invoices and credit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.catalog_views import dump, minor_in
from admin_api.billing.dunning_routes import reevaluate
from admin_api.billing.payments_schemas import (
    AllocationOut,
    OpenInvoiceOut,
    PaymentCreate,
    PaymentOut,
    PaymentPage,
    PaymentPath,
    PaymentUndo,
    ReceivablesOut,
)
from admin_api.context import Ctx
from admin_api.problems import responses
from admin_api.schemas import AccountPath, Cursor, Limit
from billing import payments
from billing.amounts import format_minor
from billing.catalog import lookups
from billing.payments import Payment, PaymentIn

router = APIRouter(tags=["receivables"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
ACCOUNT_PAYMENTS = "/v1/tenants/{tenant_id}/accounts/{account_id}/payments"
RECEIVABLES = "/v1/tenants/{tenant_id}/accounts/{account_id}/receivables"
PAYMENTS = "/v1/tenants/{tenant_id}/payments"
PAYMENT = PAYMENTS + "/{payment_id}"
RequiredKey = Annotated[
    str,
    Header(alias="Idempotency-Key", pattern=r"^[!-~]{1,128}$",
           description="Required: a retry with the same key and body records nothing more"),
]  # fmt: skip


def payment_out(p: Payment, replayed: bool = False) -> PaymentOut:
    cur = p.currency
    return PaymentOut(
        payment_id=p.payment_id, account_id=p.account_id, method=p.method,
        amount=format_minor(p.amount, cur), currency=cur, received_on=p.received_on,
        reference=p.reference, collected_by=p.collected_by,
        status=p.status,
        allocations=[AllocationOut(invoice_id=inv, amount=format_minor(amount, cur), live=live)
                     for inv, amount, live in p.allocations],
        credited=format_minor(p.credited, cur), shortfall=format_minor(p.shortfall, cur),
        undo_reason=p.undo_reason, created_at=p.created_at, replayed=replayed,
        topped_up=p.topup_key is not None,
    )  # fmt: skip


@router.post(
    ACCOUNT_PAYMENTS, response_model=PaymentOut, status_code=201,
    responses={200: {"model": PaymentOut, "description": "Already recorded under this"
                     " Idempotency-Key"}, **responses(401, 403, 404, 409, 422)},
    summary="Record a payment and allocate it (oldest due first, or as given); a prepaid"
    " account's payment tops its balance up",
)  # fmt: skip
async def record_payment(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: PaymentCreate, response: Response,
    idempotency_key: RequiredKey,
) -> PaymentOut:  # fmt: skip
    async with ctx.pool.acquire() as conn, conn.transaction():
        tenant = await lookups.tenant(conn, scope.tenant_id)
        cur = body.currency
        allocations = (tuple((a.invoice_id, minor_in(a.amount, cur, "allocation amount"))
                             for a in body.allocations)
                       if body.allocations is not None else None)  # fmt: skip
        p = PaymentIn(
            account_id=account_id, method=body.method, amount=minor_in(body.amount, cur, "amount"),
            currency=cur, received_on=body.received_on or tenant.today(ctx.now()),
            reference=body.reference, collected_by=scope.caller.key_id, allocations=allocations,
        )  # fmt: skip
        payment, created = await payments.record(conn, scope.tenant_id, p,
                                                 idempotency_key=idempotency_key, at=ctx.now(),
                                                 money=ctx.money)  # fmt: skip
        out = payment_out(payment, replayed=not created)
        if created:
            await record_change(conn, scope.caller, scope.tenant_id, "payment.record",
                                f"account:{account_id}:payment:{payment.payment_id}", None,
                                dump(out))  # fmt: skip
    if created:
        await reevaluate(ctx, scope.tenant_id, account_id)
    response.status_code = 201 if created else 200
    return out


async def _page(ctx: Ctx, tenant_id: str, account_id: str | None, limit: int,
                cursor: str | None) -> PaymentPage:  # fmt: skip
    key = pagination.created_key(cursor)
    rows = await payments.page(ctx.pool, tenant_id, account_id, key, limit + 1)
    items, more = pagination.page(rows, limit)
    return PaymentPage(
        items=[payment_out(p) for p in items],
        next_cursor=(pagination.encode(items[-1].created_at, items[-1].payment_id) if more
                     else None),
    )  # fmt: skip


@router.get(ACCOUNT_PAYMENTS, response_model=PaymentPage,
            responses=responses(401, 403, 404, 422), summary="The account's payments")
async def list_account_payments(
    ctx: Ctx, scope: Readers, account_id: AccountPath, limit: Limit = 50, cursor: Cursor = None
) -> PaymentPage:
    await lookups.account(ctx.pool, scope.tenant_id, account_id)
    return await _page(ctx, scope.tenant_id, account_id, limit, cursor)


@router.get(PAYMENTS, response_model=PaymentPage, responses=responses(401, 403, 404, 422),
            summary="The tenant's payments, oldest first")
async def list_payments(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None
) -> PaymentPage:
    return await _page(ctx, scope.tenant_id, None, limit, cursor)


@router.get(PAYMENT, response_model=PaymentOut, responses=responses(401, 403, 404, 422),
            summary="A payment with its allocations")
async def get_payment(ctx: Ctx, scope: Readers, payment_id: PaymentPath) -> PaymentOut:
    return payment_out(await payments.get(ctx.pool, scope.tenant_id, payment_id))


async def _undo(ctx: Ctx, scope: Scope, payment_id: str, body: PaymentUndo,
                refund: bool) -> PaymentOut:  # fmt: skip
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = payment_out(await payments.get(conn, scope.tenant_id, payment_id))
        after = payment_out(await payments.undo(conn, scope.tenant_id, payment_id,
                                                refund=refund, reason=body.reason,
                                                at=ctx.now()))  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id,
                            "payment.refund" if refund else "payment.reverse",
                            f"account:{after.account_id}:payment:{payment_id}", dump(before),
                            dump(after))  # fmt: skip
    await reevaluate(ctx, scope.tenant_id, after.account_id)
    return after


@router.post(PAYMENT + "/reverse", response_model=PaymentOut,
             responses=responses(401, 403, 404, 409, 422),
             summary="Reverse a payment (a bounced cheque): its invoices reopen")
async def reverse_payment(
    ctx: Ctx, scope: Admins, payment_id: PaymentPath, body: PaymentUndo
) -> PaymentOut:
    return await _undo(ctx, scope, payment_id, body, refund=False)


@router.post(PAYMENT + "/refund", response_model=PaymentOut,
             responses=responses(401, 403, 404, 409, 422),
             summary="Refund a payment whole: its invoices reopen, its credit is taken back")
async def refund_payment(
    ctx: Ctx, scope: Admins, payment_id: PaymentPath, body: PaymentUndo
) -> PaymentOut:
    return await _undo(ctx, scope, payment_id, body, refund=True)


@router.get(RECEIVABLES, response_model=ReceivablesOut,
            responses=responses(401, 403, 404, 422),
            summary="What the account owes: its open invoices, oldest due first, and credit")
async def receivables(ctx: Ctx, scope: Readers, account_id: AccountPath) -> ReceivablesOut:
    async with ctx.pool.acquire() as conn:
        tenant = await lookups.tenant(conn, scope.tenant_id)
        acc = await lookups.account(conn, scope.tenant_id, account_id)
        today = tenant.today(ctx.now())
        rows = await conn.fetch(
            "SELECT o.*, i.number FROM invoice_open o JOIN invoices i USING (invoice_id)"
            " WHERE o.tenant_id = $1 AND o.account_id = $2 AND o.open > 0"
            " ORDER BY COALESCE(o.due_on, o.issued_on), o.issued_on, o.invoice_id",
            scope.tenant_id, account_id,
        )
        credit = await conn.fetchval(
            "SELECT credit_balance FROM billing_accounts WHERE tenant_id = $1"
            " AND account_id = $2", scope.tenant_id, account_id,
        ) or 0  # fmt: skip
    cur = acc.currency
    return ReceivablesOut(
        account_id=account_id, currency=cur,
        open_total=format_minor(sum(r["open"] for r in rows), cur),
        credit=format_minor(credit, cur),
        invoices=[OpenInvoiceOut(
            invoice_id=r["invoice_id"], number=r["number"], issued_on=r["issued_on"],
            due_on=r["due_on"], amount_due=format_minor(r["amount_due"], cur),
            allocated=format_minor(r["allocated"], cur), open=format_minor(r["open"], cur),
            days_past_due=max(0, (today - (r["due_on"] or r["issued_on"])).days),
        ) for r in rows],
    )  # fmt: skip
