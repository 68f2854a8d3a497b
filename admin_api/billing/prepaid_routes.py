"""Prepaid period routes: the tenant's policy (top-up validity, dormancy days) and an account's
money by validity (what is left of each top-up, when it expires, what expired)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends
from pydantic import Field

from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import AccountPath, Body, Out
from billing.catalog import lookups
from billing.validity import Inflow, PolicyInvalid, parse_policy, policy_doc, remaining
from billing.validity_run import INFLOWS_SQL
from charging_engine.accounts import record
from charging_engine.money import format_amount

router = APIRouter(tags=["receivables"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
POLICY = "/v1/tenants/{tenant_id}/prepaid-policy"
VALIDITY = "/v1/tenants/{tenant_id}/accounts/{account_id}/validity"
Days = Annotated[int, Field(ge=1, le=3650)]


class PolicyIn(Body):
    validity_days: Days | None = Field(None, description="A top-up's default validity; none:"
                                       " money never expires")  # fmt: skip
    warn_days: int = Field(7, ge=0, le=3650, description="Warnings this many days before an"
                           " expiry and before each dormancy step")  # fmt: skip
    inactivate_after: Days | None = Field(None, description="Days at a zero balance before the"
                                          " account is inactivated; none: never")  # fmt: skip
    terminate_after: Days | None = Field(None, description="Days after inactivation (still at"
                                         " zero) before the account is closed")  # fmt: skip


class PolicyOut(Out):
    validity_days: int | None
    warn_days: int
    inactivate_after: int | None
    terminate_after: int | None
    updated_at: datetime


class TopupValidityOut(Out):
    seq: int
    amount: str
    left: str
    valid_until: datetime | None
    expired: str | None = Field(description="What left the balance when it expired")
    expired_at: datetime | None


class ValidityOut(Out):
    account_id: str
    currency: str
    balance: str
    topups: list[TopupValidityOut] = Field(description="Newest first")


@router.put(POLICY, response_model=PolicyOut, responses=responses(401, 403, 404, 422),
            summary="Set the tenant's prepaid policy: top-up validity, dormancy periods")
async def put_policy(ctx: Ctx, scope: Admins, body: PolicyIn) -> PolicyOut:
    try:
        policy = parse_policy(body.model_dump())
    except PolicyInvalid as e:
        raise ApiProblem(422, "invalid_policy", str(e)) from None
    doc = policy_doc(policy)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lookups.tenant(conn, scope.tenant_id)
        old = await conn.fetchval("SELECT policy FROM prepaid_policies WHERE tenant_id = $1",
                                  scope.tenant_id)  # fmt: skip
        at = await conn.fetchval(
            "INSERT INTO prepaid_policies (tenant_id, policy, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy, updated_at ="
            " excluded.updated_at RETURNING updated_at", scope.tenant_id,
            orjson.dumps(doc).decode(), ctx.now())  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "prepaid.policy",
                            "prepaid-policy", orjson.loads(old) if old else None, doc)
    return PolicyOut(**doc, updated_at=at)


@router.get(POLICY, response_model=PolicyOut, responses=responses(401, 403, 404, 422),
            summary="The tenant's prepaid policy")
async def get_policy(ctx: Ctx, scope: Readers) -> PolicyOut:
    r = await ctx.pool.fetchrow("SELECT policy, updated_at FROM prepaid_policies WHERE"
                                " tenant_id = $1", scope.tenant_id)  # fmt: skip
    if r is None:
        raise ApiProblem(404, "not_found", "no prepaid policy is set")
    return PolicyOut(**policy_doc(parse_policy(orjson.loads(r["policy"]))),
                     updated_at=r["updated_at"])  # fmt: skip


@router.get(VALIDITY, response_model=ValidityOut, responses=responses(401, 403, 404, 422),
            summary="The account's top-ups by validity: what is left of each, and expiries")
async def get_validity(ctx: Ctx, scope: Readers, account_id: AccountPath) -> ValidityOut:
    acct = await record.require(ctx.pool, scope.tenant_id, account_id)
    cur = acct.currency
    state = await ctx.money.store.state(scope.tenant_id, account_id)
    balance = state.balance if state is not None else 0
    spendable = balance - (state.reserved if state is not None else 0)
    rows = await ctx.pool.fetch(INFLOWS_SQL, scope.tenant_id, account_id)
    left = remaining([Inflow(r["seq"], r["amount"], r["valid_until"], bool(r["expired"]))
                      for r in rows], spendable)  # fmt: skip
    done = {r["ref"]: r for r in await ctx.pool.fetch(
        "SELECT ref, amount, expired_at FROM prepaid_expiries WHERE tenant_id = $1 AND"
        " account_id = $2 AND status = 'done'", scope.tenant_id, account_id)}  # fmt: skip
    topups = [TopupValidityOut(
        seq=r["seq"], amount=format_amount(r["amount"], cur),
        left=format_amount(left[r["seq"]], cur), valid_until=r["valid_until"],
        expired=format_amount(done[r["seq"]]["amount"], cur) if r["seq"] in done else None,
        expired_at=done[r["seq"]]["expired_at"] if r["seq"] in done else None,
    ) for r in rows if r["valid_until"] is not None][:100]  # fmt: skip
    return ValidityOut(account_id=account_id, currency=cur, balance=format_amount(balance, cur),
                       topups=topups)  # fmt: skip
