"""Suspension ladder routes: the tenant's (or a bill plan's) ladder, an account's place on it
(and its termination, if the ladder's last step started one), handing an account back to the
ladder; and ``reevaluate``, which the payment and credit note routes call so that a payment
restores service (and cancels a termination not yet closed) at once."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import Field, StringConstraints

from admin_api.audit import actor_of, record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import ID_PATTERN, AccountPath, Body, Out
from billing import dunning_run, termination
from billing.catalog import lookups
from billing.dunning import LadderError, ladder_doc, parse_ladder

router = APIRouter(tags=["receivables"])
log = logging.getLogger(__name__)

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
LADDER = "/v1/tenants/{tenant_id}/dunning-ladder"
ACCOUNT = "/v1/tenants/{tenant_id}/accounts/{account_id}/dunning"
PlanQuery = Annotated[str | None, Query(pattern=ID_PATTERN,
                                        description="A bill plan's own ladder; default: the"
                                        " tenant's")]  # fmt: skip
StepName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,40}$")]
Status = Literal["outgoing_suspended", "suspended", "inactive", "terminated"]


class LateFeeIn(Body):
    fixed: int = Field(0, ge=0, le=10**12, description="Minor units of the account currency")
    percent: str = Field("0", pattern=r"^[0-9]{1,3}(\.[0-9]{1,4})?$",
                         description="Percent of the overdue amount")  # fmt: skip


class StepIn(Body):
    name: StepName
    min_days: int = Field(ge=1, le=3650, description="Days past the oldest unpaid due date")
    min_amount: int = Field(0, ge=0, le=10**12, description="Overdue amount at least (minor)")
    min_invoices: int = Field(1, ge=1, le=1000)
    status: Status | None = Field(None, description=(
        "The account status this step sets. terminated: the last step only; bars all service"
        " at once, charges the plan's cancellation fee inside its minimum term, ends billing"
        " with a final invoice through that day and closes the account once its balance is"
        " settled (a payment first cancels it)"))
    late_fee: LateFeeIn | None = None
    notify: bool = True


class LadderIn(Body):
    steps: list[StepIn] = Field(min_length=1, max_length=10,
                                description="Mildest first")  # fmt: skip


class LadderOut(Out):
    plan_id: str | None
    steps: list[dict[str, object]]


class EntryOut(Out):
    episode: int
    step: str
    entered_at: datetime
    overdue_amount: int
    late_fee: int


class TerminationOut(Out):
    episode: int
    state: Literal["pending", "closed", "cancelled"]
    ends_on: date = Field(description="The last day billed: the final invoice runs through it")
    cancellation_fee: int = Field(description="Minor units; 0: outside the minimum term")
    started_at: datetime
    waiting_for: str | None = Field(description="Pending: what the close waits for")
    closed_at: datetime | None
    cancelled_at: datetime | None


class PlacementOut(Out):
    account_id: str
    step: str | None
    episode: int
    entered_at: datetime | None
    evaluated_at: datetime | None
    entries: list[EntryOut]
    termination: TerminationOut | None = Field(None, description="The latest termination")


@router.put(LADDER, response_model=LadderOut, responses=responses(401, 403, 404, 422),
            summary="Set the tenant's (or a bill plan's) suspension ladder")
async def put_ladder(ctx: Ctx, scope: Admins, body: LadderIn,
                     plan_id: PlanQuery = None) -> LadderOut:  # fmt: skip
    try:
        ladder = parse_ladder([s.model_dump() for s in body.steps])
    except LadderError as e:
        raise ApiProblem(422, "invalid_ladder", str(e)) from None
    doc = ladder_doc(ladder)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lookups.tenant(conn, scope.tenant_id)
        if plan_id is not None and not await conn.fetchval(
                "SELECT 1 FROM bill_plans WHERE tenant_id = $1 AND plan_id = $2",
                scope.tenant_id, plan_id):  # fmt: skip
            raise ApiProblem(404, "not_found", f"bill plan {plan_id!r} not found")
        old = await conn.fetchval("SELECT steps FROM dunning_ladders WHERE tenant_id = $1"
                                  " AND plan_id = $2", scope.tenant_id, plan_id or "")  # fmt: skip
        await conn.execute(
            "INSERT INTO dunning_ladders (tenant_id, plan_id, steps, updated_at) VALUES ($1, $2,"
            " $3, $4) ON CONFLICT (tenant_id, plan_id) DO UPDATE SET steps = excluded.steps,"
            " updated_at = excluded.updated_at", scope.tenant_id, plan_id or "",
            orjson.dumps(doc).decode(), ctx.now(),
        )  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "dunning.ladder",
                            f"dunning-ladder:{plan_id or ''}",
                            orjson.loads(old) if old else None, {"steps": doc})  # fmt: skip
    return LadderOut(plan_id=plan_id, steps=doc)


@router.get(LADDER, response_model=LadderOut, responses=responses(401, 403, 404, 422),
            summary="The tenant's (or a bill plan's) suspension ladder")
async def get_ladder(ctx: Ctx, scope: Readers, plan_id: PlanQuery = None) -> LadderOut:
    steps = await ctx.pool.fetchval(
        "SELECT steps FROM dunning_ladders WHERE tenant_id = $1 AND plan_id = $2",
        scope.tenant_id, plan_id or "",
    )
    if steps is None:
        raise ApiProblem(404, "not_found", "no ladder is set")
    return LadderOut(plan_id=plan_id, steps=orjson.loads(steps))


async def _placement(ctx: Ctx, tenant_id: str, account_id: str) -> PlacementOut:
    r = await ctx.pool.fetchrow("SELECT * FROM account_dunning WHERE tenant_id = $1"
                                " AND account_id = $2", tenant_id, account_id)  # fmt: skip
    entries = await ctx.pool.fetch(
        "SELECT * FROM dunning_entries WHERE tenant_id = $1 AND account_id = $2"
        " ORDER BY episode, step", tenant_id, account_id)  # fmt: skip
    t = await termination.current(ctx.pool, tenant_id, account_id)
    return PlacementOut(
        account_id=account_id, step=r["step_name"] if r else None,
        episode=r["episode"] if r else 1, entered_at=r["entered_at"] if r else None,
        evaluated_at=r["evaluated_at"] if r else None,
        entries=[EntryOut(episode=e["episode"], step=e["step_name"],
                          entered_at=e["entered_at"], overdue_amount=e["overdue_amount"],
                          late_fee=e["late_fee"]) for e in entries],
        termination=TerminationOut(
            episode=t["episode"], state=t["state"], ends_on=t["ends_on"],
            cancellation_fee=t["cancellation_fee"], started_at=t["started_at"],
            waiting_for=t["waiting_for"], closed_at=t["closed_at"],
            cancelled_at=t["cancelled_at"]) if t is not None else None,
    )  # fmt: skip


@router.get(ACCOUNT, response_model=PlacementOut, responses=responses(401, 403, 404, 422),
            summary="The account's place on its suspension ladder, and the steps it entered")
async def get_placement(ctx: Ctx, scope: Readers, account_id: AccountPath) -> PlacementOut:
    await lookups.account(ctx.pool, scope.tenant_id, account_id)
    return await _placement(ctx, scope.tenant_id, account_id)


@router.post(ACCOUNT + "/resume", response_model=PlacementOut,
             responses=responses(401, 403, 404, 422),
             summary="Hand the account back to the ladder (its manual status may change)")
async def resume(ctx: Ctx, scope: Admins, account_id: AccountPath) -> PlacementOut:
    async with ctx.pool.acquire() as conn:
        tenant = await lookups.tenant(conn, scope.tenant_id)
        await lookups.account(conn, scope.tenant_id, account_id)
        await dunning_run.resume(conn, ctx.accounts, scope.tenant_id, account_id,
                                 actor_of(scope.caller), today=tenant.today(ctx.now()),
                                 at=ctx.now())  # fmt: skip
    return await _placement(ctx, scope.tenant_id, account_id)


async def reevaluate(ctx: Ctx, tenant_id: str, account_id: str) -> None:
    """After a payment, reversal or credit note: the account's step now (its money is
    recorded whatever happens here; the next billing tick retries a failure)."""
    try:
        async with ctx.pool.acquire() as conn:
            tenant = await lookups.tenant(conn, tenant_id)
            await dunning_run.evaluate(conn, ctx.accounts, tenant_id, account_id,
                                       today=tenant.today(ctx.now()), at=ctx.now())  # fmt: skip
    except Exception:
        log.exception("dunning of %s/%s after a payment failed", tenant_id, account_id)
