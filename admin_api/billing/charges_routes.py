"""One-time charge routes: amounts added to an account's next invoice, listed with the invoice
that billed them, deleted while no invoice has."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.catalog_views import charge_out, dump, minor_in
from admin_api.billing.schemas import ChargeCreate, ChargeOut, ChargePage, ChargePath
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import AccountPath, Cursor, Limit
from billing.catalog import lookups, one_time
from billing.catalog.one_time import ChargeSpec

router = APIRouter(tags=["billing catalogue"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
CHARGES = "/v1/tenants/{tenant_id}/accounts/{account_id}/charges"
CHARGE = CHARGES + "/{charge_id}"
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", pattern=r"^[!-~]{1,128}$",
           description="Optional: a retry with the same key adds nothing and answers 200"),
]


@router.post(
    CHARGES, response_model=ChargeOut, status_code=201,
    responses={200: {"model": ChargeOut, "description": "Already added under this"
                     " Idempotency-Key"}, **responses(401, 403, 404, 409, 422)},
    summary="Add a one-time charge to the account's next invoice",
)
async def add_charge(
    ctx: Ctx, scope: Admins, account_id: AccountPath, body: ChargeCreate, response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ChargeOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        tenant = await lookups.tenant(conn, scope.tenant_id)
        acc = await lookups.account(conn, scope.tenant_id, account_id)
        spec = ChargeSpec(
            description=body.description, amount=minor_in(body.amount, acc.currency, "amount"),
            kind=body.kind, quantity=Decimal(body.quantity),
            tax_codes=tuple(body.tax_codes) if body.tax_codes is not None else None,
            charge_on=body.charge_on,
        )
        charge, created = await one_time.add(
            conn, scope.tenant_id, account_id, spec, today=tenant.today(ctx.now()),
            created_by=scope.caller.key_id, idempotency_key=idempotency_key,
        )
        out = charge_out(charge, replayed=not created)
        if created:
            await record_change(conn, scope.caller, scope.tenant_id, "charge.create",
                                f"account:{account_id}:charge:{charge.charge_id}", None,
                                dump(out))
    response.status_code = 201 if created else 200
    return out


@router.get(CHARGES, response_model=ChargePage, responses=responses(401, 403, 404, 422),
            summary="The account's one-time charges, oldest first")
async def list_charges(
    ctx: Ctx, scope: Readers, account_id: AccountPath, limit: Limit = 50,
    cursor: Cursor = None,
) -> ChargePage:
    after = pagination.decode(cursor, datetime, str)
    key = None
    if after is not None:
        if after[0] is None or after[1] is None:
            raise ApiProblem(422, pagination.INVALID_CURSOR, "cursor is not one this API returned")
        key = (after[0], after[1])
    rows = await one_time.page(ctx.pool, scope.tenant_id, account_id, key, limit + 1)
    items, more = pagination.page(rows, limit)
    return ChargePage(
        items=[charge_out(c) for c in items],
        next_cursor=(pagination.encode(items[-1].created_at, items[-1].charge_id) if more
                     else None),
    )


@router.get(CHARGE, response_model=ChargeOut, responses=responses(401, 403, 404, 422),
            summary="A one-time charge")
async def get_charge(
    ctx: Ctx, scope: Readers, account_id: AccountPath, charge_id: ChargePath
) -> ChargeOut:
    return charge_out(await one_time.get(ctx.pool, scope.tenant_id, account_id, charge_id))


@router.delete(CHARGE, status_code=204, response_class=Response,
               responses=responses(401, 403, 404, 409, 422),
               summary="Delete a charge no invoice has taken")
async def delete_charge(
    ctx: Ctx, scope: Admins, account_id: AccountPath, charge_id: ChargePath
) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await one_time.delete(conn, scope.tenant_id, account_id, charge_id)
        await record_change(conn, scope.caller, scope.tenant_id, "charge.delete",
                            f"account:{account_id}:charge:{charge_id}", dump(charge_out(old)),
                            None)
    return Response(status_code=204)
