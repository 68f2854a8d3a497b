"""Collection task routes: supervisors create pickups and renewals and assign them; agents
(their own tasks only: another's answers 404) record visits and collections. A collection is
recorded once per Idempotency-Key however often the agent's phone retries, and its receipt SMS
follows through the notifications outbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import ACCOUNT_READERS, ADMINS, COLLECTORS, Scope, allow
from admin_api.billing.catalog_views import dump, minor_in
from admin_api.billing.dunning_routes import reevaluate
from admin_api.collections.acting import acting_agent, task_lock, task_out
from admin_api.collections.schemas import (
    AssignIn,
    CollectionIn,
    CollectionOut,
    QuoteOut,
    Status,
    TaskIn,
    TaskOut,
    TaskPage,
    TaskPath,
    VisitIn,
    VisitOut,
)
from admin_api.context import Ctx
from admin_api.problems import responses
from admin_api.schemas import Cursor, Limit
from billing.amounts import format_minor
from billing.catalog import lookups
from billing.collections import agents, collect, rules, tasks
from billing.errors import InvalidBillingInput
from billing.minor_units import minor_to_micros

router = APIRouter(tags=["collections"])

Supervisors = Annotated[Scope, Depends(allow(ADMINS))]
Readers = Annotated[Scope, Depends(allow(ACCOUNT_READERS))]
Collectors = Annotated[Scope, Depends(allow(COLLECTORS))]
TASKS = "/v1/tenants/{tenant_id}/collection-tasks"
TASK = TASKS + "/{task_id}"
RequiredKey = Annotated[
    str,
    Header(alias="Idempotency-Key", pattern=r"^[!-~]{1,128}$",
           description="Required: the phone's retries with the same key record nothing more"),
]  # fmt: skip


def _target(t: tasks.Task) -> str:
    return f"account:{t.account_id}:collection-task:{t.task_id}"


@router.post(TASKS, response_model=TaskOut, status_code=201,
             responses=responses(401, 403, 404, 422),
             summary="A pickup request or a pending renewal, assigned (or by the area rule)")
async def create_task(ctx: Ctx, scope: Supervisors, body: TaskIn) -> TaskOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        acc = await lookups.account(conn, scope.tenant_id, body.account_id, referenced=True)
        t = await tasks.create(conn, scope.tenant_id, tasks.TaskIn(
            account_id=body.account_id, kind=body.kind, area=body.area, address=body.address,
            note=body.note, due_on=body.due_on, agent_id=body.agent_id,
            amount_expected=(minor_in(body.amount_expected, acc.currency, "amount_expected")
                             if body.amount_expected is not None else None),
        ), by=scope.caller.key_id, at=ctx.now())  # fmt: skip
        out = task_out(t)
        await record_change(conn, scope.caller, scope.tenant_id, "collection_task.create",
                            _target(t), None, dump(out))  # fmt: skip
    return out


@router.get(TASKS, response_model=TaskPage, responses=responses(401, 403, 404, 422),
            summary="Tasks, oldest first: an agent's key lists its own only")
async def list_tasks(ctx: Ctx, scope: Readers, status: Annotated[Status | None, Query()] = None,
                     agent_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
                     = None, limit: Limit = 50, cursor: Cursor = None) -> TaskPage:  # fmt: skip
    mine = await acting_agent(ctx, scope)
    if mine is not None and agent_id not in (None, mine):
        return TaskPage(items=[], next_cursor=None)
    rows = await tasks.page(ctx.pool, scope.tenant_id, agent_id=mine or agent_id, status=status,
                            after=pagination.created_key(cursor), limit=limit + 1)
    items, more = pagination.page(rows, limit)
    return TaskPage(items=[task_out(t) for t in items], next_cursor=(
        pagination.encode(items[-1].created_at, items[-1].task_id) if more else None))


@router.get(TASK, response_model=TaskOut, responses=responses(401, 403, 404, 422),
            summary="A task (an agent's own only)")
async def get_task(ctx: Ctx, scope: Readers, task_id: TaskPath) -> TaskOut:
    return task_out(await tasks.get(ctx.pool, scope.tenant_id, task_id,
                                    await acting_agent(ctx, scope)))  # fmt: skip


@router.post(TASK + "/assign", response_model=TaskOut,
             responses=responses(401, 403, 404, 409, 422),
             summary="Assign the task to an agent, or take it back")
async def assign_task(ctx: Ctx, scope: Supervisors, task_id: TaskPath, body: AssignIn) -> TaskOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        before, after = await tasks.assign(conn, scope.tenant_id, task_id, body.agent_id,
                                           ctx.now())  # fmt: skip
        out = task_out(after)
        await record_change(conn, scope.caller, scope.tenant_id, "collection_task.assign",
                            _target(after), dump(task_out(before)), dump(out))  # fmt: skip
    return out


@router.post(TASK + "/cancel", response_model=TaskOut,
             responses=responses(401, 403, 404, 409, 422), summary="Cancel an open task")
async def cancel_task(ctx: Ctx, scope: Supervisors, task_id: TaskPath) -> TaskOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        before, after = await tasks.cancel(conn, scope.tenant_id, task_id, ctx.now())
        out = task_out(after)
        await record_change(conn, scope.caller, scope.tenant_id, "collection_task.cancel",
                            _target(after), dump(task_out(before)), dump(out))  # fmt: skip
    return out


async def _preset(conn: lookups.Conn, tenant_id: str, code: str | None) -> rules.Preset:
    """The tenant's preset ``code``; None: the first whose outcome is a collection."""
    known = await agents.presets(conn, tenant_id)
    for p in known:
        if (code is None and p.outcome == "collected") or p.code == code:
            return p
    raise InvalidBillingInput(f"no visit preset {code!r}" if code else "no 'collected' preset")


@router.post(TASK + "/visits", response_model=VisitOut, status_code=201,
             responses=responses(401, 403, 404, 409, 422),
             summary="Record a visit with a preset (absent, promised to pay on a day, ...)")
async def record_visit(ctx: Ctx, scope: Collectors, task_id: TaskPath, body: VisitIn) -> VisitOut:
    mine = await acting_agent(ctx, scope)
    async with ctx.pool.acquire() as conn, conn.transaction():
        tenant = await lookups.tenant(conn, scope.tenant_id)
        preset = await _preset(conn, scope.tenant_id, body.preset)
        visit_id, after = await tasks.visit(
            conn, scope.tenant_id, task_id, agent_id=mine, preset=preset,
            promised_on=body.promised_on, comment=body.comment, by=scope.caller.key_id,
            today=tenant.today(ctx.now()), at=ctx.now())  # fmt: skip
        out = VisitOut(visit_id=visit_id, task=task_out(after))
        await record_change(conn, scope.caller, scope.tenant_id, "collection_task.visit",
                            _target(after), None, {**dump(out), "preset": preset.code,
                            "comment": body.comment})  # fmt: skip
    return out


@router.post(
    TASK + "/collections", response_model=CollectionOut, status_code=201,
    responses={200: {"model": CollectionOut, "description": "Already recorded under this"
                     " Idempotency-Key"}, **responses(401, 403, 404, 409, 422)},
    summary="Record a collection: the payment applied at once, the receipt SMS sent",
)  # fmt: skip
async def record_collection(ctx: Ctx, scope: Collectors, task_id: TaskPath, body: CollectionIn,
                            response: Response, idempotency_key: RequiredKey,
                            ) -> CollectionOut:  # fmt: skip
    mine = await acting_agent(ctx, scope)
    async with task_lock(scope.tenant_id, task_id), ctx.pool.acquire() as conn, \
            conn.transaction():
        tenant = await lookups.tenant(conn, scope.tenant_id)
        task = await tasks.get(conn, scope.tenant_id, task_id, mine)
        cur = body.currency or task.currency
        done, created = await collect.collect(conn, scope.tenant_id, task_id, collect.CollectionIn(
            amount=minor_in(body.amount, cur, "amount"), method=body.method, currency=cur,
            preset=await _preset(conn, scope.tenant_id, body.preset),
            reference=body.reference, comment=body.comment,
        ), agent_id=mine, by=scope.caller.key_id, idempotency_key=idempotency_key,
            today=tenant.today(ctx.now()), at=ctx.now(), money=ctx.money)  # fmt: skip
        p = done.payment
        out = CollectionOut(
            visit_id=done.visit_id, payment_id=p.payment_id, receipt_number=done.receipt_number,
            amount=format_minor(p.amount, p.currency), currency=p.currency, method=p.method,
            agent_name=done.agent_name, task=task_out(done.task), replayed=not created)
        if created:
            await record_change(conn, scope.caller, scope.tenant_id, "collection_task.collect",
                                _target(done.task), None, dump(out))  # fmt: skip
    if created:
        await reevaluate(ctx, scope.tenant_id, task.account_id)
    response.status_code = 201 if created else 200
    return out


@router.get(TASK + "/quote", response_model=QuoteOut, responses=responses(401, 403, 404, 422),
            summary="What to collect: open invoices and a renewal's price, less what the"
            " account's own money (prepaid balance or credit) pays of the price")
async def quote(ctx: Ctx, scope: Readers, task_id: TaskPath) -> QuoteOut:
    mine = await acting_agent(ctx, scope)
    async with ctx.pool.acquire() as conn:
        t = await tasks.get(conn, scope.tenant_id, task_id, mine)
        owed = await conn.fetchval("SELECT COALESCE(sum(open), 0)::bigint FROM invoice_open"
                                   " WHERE tenant_id = $1 AND account_id = $2 AND open > 0",
                                   scope.tenant_id, t.account_id) or 0  # fmt: skip
        credit = await conn.fetchval("SELECT credit_balance FROM billing_accounts WHERE"
                                     " tenant_id = $1 AND account_id = $2", scope.tenant_id,
                                     t.account_id)  # fmt: skip
    if credit is None:  # no billing: a prepaid account's balance (whole minor units only)
        state = await ctx.store.state(scope.tenant_id, t.account_id)
        credit = (state.balance // minor_to_micros(1, t.currency)) if state else 0
    q = rules.quote(owed, t.amount_expected or 0, credit)

    def m(v: int) -> str:
        return format_minor(v, t.currency)

    return QuoteOut(task_id=t.task_id, currency=t.currency, owed=m(q.owed), price=m(q.price),
                    available=m(q.available), transferred=m(q.transferred),
                    to_collect=m(q.to_collect), left_over=m(q.left_over))  # fmt: skip
