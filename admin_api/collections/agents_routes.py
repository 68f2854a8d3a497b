"""Collection agent routes for supervisors: the agents (each with its agent key), the tenant's
visit presets, every agent action, and the report per agent and day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from admin_api import pagination
from admin_api.audit import record_change
from admin_api.auth import ACCOUNT_READERS, ADMINS, BILLING_READERS, READERS, Scope, allow
from admin_api.billing.catalog_views import dump
from admin_api.collections.acting import acting_agent
from admin_api.collections.schemas import (
    ActionOut,
    ActionPage,
    AgentDayOut,
    AgentIn,
    AgentList,
    AgentOut,
    AgentPath,
    CollectionsReport,
    MoneyByMethod,
    PresetIO,
    PresetsIn,
    PresetsOut,
)
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import Cursor, Limit
from billing.amounts import format_minor
from billing.collections import agents, report
from billing.collections.rules import DEFAULT_PRESETS, Preset

router = APIRouter(tags=["collections"])

Supervisors = Annotated[Scope, Depends(allow(ADMINS))]
Readers = Annotated[Scope, Depends(allow(READERS))]
AgentReaders = Annotated[Scope, Depends(allow(ACCOUNT_READERS))]
ReportReaders = Annotated[Scope, Depends(allow(BILLING_READERS))]
T = "/v1/tenants/{tenant_id}"
AGENTS = T + "/collection-agents"
AGENT = AGENTS + "/{agent_id}"
MAX_REPORT_DAYS = 366


def agent_out(a: agents.Agent) -> AgentOut:
    return AgentOut(agent_id=a.agent_id, name=a.name, area=a.area, mobile=a.mobile,
                    key_id=a.key_id, active=a.active, created_at=a.created_at,
                    updated_at=a.updated_at)  # fmt: skip


@router.put(AGENT, response_model=AgentOut, responses=responses(401, 403, 404, 422),
            summary="Create or replace a collection agent (with its agent key)")
async def put_agent(ctx: Ctx, scope: Supervisors, agent_id: AgentPath, body: AgentIn) -> AgentOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        before, after = await agents.put(
            conn, scope.tenant_id, agent_id, name=body.name, area=body.area, mobile=body.mobile,
            key_id=body.key_id, active=body.active, at=ctx.now())  # fmt: skip
        out = agent_out(after)
        await record_change(conn, scope.caller, scope.tenant_id, "collection_agent.put",
                            f"collection-agent:{agent_id}",
                            dump(agent_out(before)) if before else None, dump(out))
    return out


@router.get(AGENTS, response_model=AgentList, responses=responses(401, 403, 404, 422),
            summary="The tenant's collection agents")
async def list_agents(ctx: Ctx, scope: Readers) -> AgentList:
    return AgentList(items=[agent_out(a) for a in await agents.list_agents(ctx.pool,
                                                                          scope.tenant_id)])


@router.get(AGENT, response_model=AgentOut, responses=responses(401, 403, 404, 422),
            summary="A collection agent")
async def get_agent(ctx: Ctx, scope: Readers, agent_id: AgentPath) -> AgentOut:
    return agent_out(await agents.get(ctx.pool, scope.tenant_id, agent_id))


def _presets_out(found: tuple[Preset, ...]) -> PresetsOut:
    return PresetsOut(presets=[PresetIO(code=p.code, label=p.label, outcome=p.outcome)
                               for p in found], built_in=found == DEFAULT_PRESETS)


@router.put(T + "/collection-presets", response_model=PresetsOut,
            responses=responses(401, 403, 404, 422),
            summary="Replace the tenant's visit presets (one 'collected' at least)")
async def put_presets(ctx: Ctx, scope: Supervisors, body: PresetsIn) -> PresetsOut:
    new = tuple(Preset(p.code, p.label, p.outcome) for p in body.presets)
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = _presets_out(await agents.presets(conn, scope.tenant_id))
        await agents.put_presets(conn, scope.tenant_id, new)
        out = _presets_out(await agents.presets(conn, scope.tenant_id))
        await record_change(conn, scope.caller, scope.tenant_id, "collection_presets.put",
                            "collection-presets", dump(before), dump(out))  # fmt: skip
    return out


@router.get(T + "/collection-presets", response_model=PresetsOut,
            responses=responses(401, 403, 404, 422), summary="The visit presets agents pick")
async def get_presets(ctx: Ctx, scope: AgentReaders) -> PresetsOut:
    return _presets_out(await agents.presets(ctx.pool, scope.tenant_id))


def _action_out(a: report.Action) -> ActionOut:
    return ActionOut(
        visit_id=a.visit_id, task_id=a.task_id, account_id=a.account_id, preset=a.preset,
        outcome=a.outcome, comment=a.comment, promised_on=a.promised_on,
        payment_id=a.payment_id, method=a.method, recorded_by=a.recorded_by, at=a.at,
        amount=format_minor(a.amount, a.currency) if a.amount is not None else None)


@router.get(T + "/collection-actions", response_model=ActionPage,
            responses=responses(401, 403, 404, 422),
            summary="Every visit and collection, oldest first (an agent's key: its own)")
async def list_actions(ctx: Ctx, scope: AgentReaders,
                       agent_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
                       = None, limit: Limit = 50, cursor: Cursor = None) -> ActionPage:  # fmt: skip
    mine = await acting_agent(ctx, scope)
    if mine is not None and agent_id not in (None, mine):
        return ActionPage(items=[], next_cursor=None)
    key = pagination.decode(cursor, datetime, int)
    if key is not None and (key[0] is None or key[1] is None):
        raise ApiProblem(422, pagination.INVALID_CURSOR, "cursor is not one this API returned")
    rows = await report.actions(ctx.pool, scope.tenant_id, mine or agent_id,
                               (key[0], key[1]) if key else None, limit + 1)
    items, more = pagination.page(rows, limit)
    return ActionPage(items=[_action_out(a) for a in items], next_cursor=(
        pagination.encode(items[-1].at, items[-1].visit_id) if more else None))


@router.get(T + "/reports/collections", response_model=CollectionsReport,
            responses=responses(401, 403, 404, 422),
            summary="Per agent and day: tasks assigned, visits, money collected by method")
async def collections_report(
    ctx: Ctx, scope: ReportReaders,
    start: Annotated[date, Query(alias="from", description="First day (tenant's calendar)")],
    end: Annotated[date, Query(alias="to", description="Last day, included")],
    agent_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")] = None,
) -> CollectionsReport:
    if end < start or (end - start).days >= MAX_REPORT_DAYS:
        raise ApiProblem(422, "invalid_range", f"from..to spans 1 to {MAX_REPORT_DAYS} days")
    days = await report.per_agent_day(ctx.pool, scope.tenant_id, start, end, agent_id)
    return CollectionsReport(start=start, end=end, days=[AgentDayOut(
        agent_id=d.agent_id, day=d.day, assigned=d.assigned, visits=d.visits,
        collections=d.collections, collected=[
            MoneyByMethod(method=m, currency=c, amount=format_minor(v, c))
            for (m, c), v in sorted(d.collected.items())]) for d in days])  # fmt: skip
