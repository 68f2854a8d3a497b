"""Who a collection route acts as: an agent key acts as its agent (and sees only that agent's
tasks); any other allowed key is a supervisor (None)."""

from __future__ import annotations

import asyncio
import weakref

from admin_api.auth import Scope
from admin_api.collections.schemas import TaskOut
from admin_api.context import AdminContext
from admin_api.keys import Role
from admin_api.problems import forbidden
from billing.amounts import format_minor
from billing.collections import agents
from billing.collections.tasks import Task


async def acting_agent(ctx: AdminContext, scope: Scope) -> str | None:
    if scope.caller.role is not Role.AGENT:
        return None
    agent = await agents.agent_for_key(ctx.pool, scope.tenant_id, scope.caller.key_id)
    if agent is None:
        raise forbidden("this agent key belongs to no active collection agent")
    return agent.agent_id


def task_out(t: Task) -> TaskOut:
    return TaskOut(
        task_id=t.task_id, account_id=t.account_id, kind=t.kind, area=t.area,
        address=t.address, note=t.note, currency=t.currency,
        amount_expected=(format_minor(t.amount_expected, t.currency)
                         if t.amount_expected is not None else None),
        due_on=t.due_on, status=t.status,
        agent_id=t.agent_id, assigned_at=t.assigned_at, created_by=t.created_by,
        created_at=t.created_at, updated_at=t.updated_at,
    )  # fmt: skip


_LOCKS: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()


def task_lock(tenant_id: str, task_id: str) -> asyncio.Lock:
    """One in-process lock per task: a phone's concurrent retries of one collection wait here,
    not each holding a pool connection while it waits for the task's row lock (the payment
    inside needs a second connection for a prepaid top-up: waiting on connections would let
    the retries starve the pool). Across processes the row lock still orders them."""
    key = (tenant_id, task_id)
    lock = _LOCKS.get(key)
    if lock is None:
        lock = _LOCKS[key] = asyncio.Lock()
    return lock
