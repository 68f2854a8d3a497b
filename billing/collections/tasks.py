"""Pickup requests and pending renewals, their assignment and their visits (Postgres adapter).

Every read and write takes the agent the caller acts as (None for supervisors): an agent's task
that is not its own is answered as not found, so an agent never learns another's assignments
exist. Writes lock the task row, so a visit, a collection and a reassignment of one task never
interleave.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

from billing.catalog.lookups import Conn, account
from billing.collections.rules import CLOSED, Candidate, Preset, check_visit, pick_agent
from billing.collections.rules import status_after as after_outcome
from billing.errors import BillingConflict, BillingNotFound, InvalidBillingInput

__all__ = ["Task", "TaskClosed", "TaskIn", "assign", "cancel", "create", "get", "locked",
           "page", "visit"]

Kind = Literal["pickup", "renewal"]
_FIELDS: Final = ("task_id", "account_id", "kind", "area", "address", "note", "amount_expected",
                  "due_on", "status", "agent_id", "assigned_at", "created_by", "created_at",
                  "updated_at")
COLUMNS: Final = ", ".join(_FIELDS) + (
    ", (SELECT a.currency FROM accounts a WHERE a.tenant_id = collection_tasks.tenant_id"
    " AND a.account_id = collection_tasks.account_id) AS currency")


class TaskClosed(BillingConflict):
    reason = "task_closed"


@dataclass(frozen=True, slots=True)
class TaskIn:
    account_id: str
    kind: Kind
    area: str = ""
    address: str = ""
    note: str = ""
    amount_expected: int | None = None  # minor units of the account's currency
    due_on: date | None = None
    agent_id: str | None = None  # None: the area rule assigns, if an agent covers the area


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    account_id: str
    kind: Kind
    area: str
    address: str
    note: str
    amount_expected: int | None
    due_on: date | None
    status: str
    agent_id: str | None
    assigned_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    currency: str


def _task(r: Any) -> Task:
    return Task(**{c: r[c] for c in _FIELDS}, currency=r["currency"].strip())


async def _agent_exists(conn: Conn, tenant_id: str, agent_id: str) -> None:
    if await conn.fetchval("SELECT active FROM collection_agents WHERE tenant_id = $1 AND"
                           " agent_id = $2", tenant_id, agent_id) is not True:  # fmt: skip
        raise InvalidBillingInput(f"no active collection agent {agent_id!r}")


async def _by_rule(conn: Conn, tenant_id: str, area: str) -> str | None:
    rows = await conn.fetch(
        "SELECT a.agent_id, a.area, (SELECT count(*) FROM collection_tasks t WHERE t.tenant_id"
        " = a.tenant_id AND t.agent_id = a.agent_id AND t.status NOT IN ('collected',"
        " 'cancelled')) AS open FROM collection_agents a WHERE a.tenant_id = $1 AND a.active"
        " AND a.area = $2", tenant_id, area)  # fmt: skip
    return pick_agent(area, [Candidate(r["agent_id"], r["area"], r["open"]) for r in rows])


async def create(conn: Conn, tenant_id: str, t: TaskIn, *, by: str, at: datetime) -> Task:
    """A new task, assigned to ``t.agent_id`` or by the area rule (else open)."""
    await account(conn, tenant_id, t.account_id, referenced=True)
    if t.amount_expected is not None and t.amount_expected <= 0:
        raise InvalidBillingInput("amount_expected is positive")
    agent_id = t.agent_id
    if agent_id is not None:
        await _agent_exists(conn, tenant_id, agent_id)
    else:
        agent_id = await _by_rule(conn, tenant_id, t.area)
    r = await conn.fetchrow(
        "INSERT INTO collection_tasks (tenant_id, task_id, account_id, kind, area, address,"
        " note, amount_expected, due_on, status, agent_id, assigned_at, created_by,"
        " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        f" $13, $14, $14) RETURNING {COLUMNS}", tenant_id, "ct_" + secrets.token_hex(12),
        t.account_id, t.kind, t.area, t.address, t.note, t.amount_expected, t.due_on,
        "assigned" if agent_id else "open", agent_id, at if agent_id else None, by, at)
    return _task(r)


async def get(conn: Conn, tenant_id: str, task_id: str, agent_id: str | None = None,
              *, for_update: bool = False) -> Task:  # fmt: skip
    """The task; not found when ``agent_id`` is given and the task is not that agent's."""
    r = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM collection_tasks WHERE tenant_id = $1 AND task_id = $2"
        " AND ($3::text IS NULL OR agent_id = $3)" + (" FOR UPDATE" if for_update else ""),
        tenant_id, task_id, agent_id)  # fmt: skip
    if r is None:
        raise BillingNotFound("collection task", task_id)
    return _task(r)


async def locked(conn: Conn, tenant_id: str, task_id: str, agent_id: str | None) -> Task:
    """The task locked for a write, or not found / closed."""
    task = await get(conn, tenant_id, task_id, agent_id, for_update=True)
    if task.status in CLOSED:
        raise TaskClosed(f"task {task_id} is {task.status}")
    return task


async def page(conn: Conn, tenant_id: str, *, agent_id: str | None, status: str | None,
               after: tuple[datetime, str] | None, limit: int) -> list[Task]:  # fmt: skip
    """The tenant's tasks (an agent's own only, when ``agent_id``), oldest first."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM collection_tasks WHERE tenant_id = $1 AND ($2::text IS NULL"
        " OR agent_id = $2) AND ($3::text IS NULL OR status = $3) AND ($4::timestamptz IS"
        " NULL OR (created_at, task_id) > ($4, $5)) ORDER BY created_at, task_id LIMIT $6",
        tenant_id, agent_id, status, after[0] if after else None,
        after[1] if after else None, limit)  # fmt: skip
    return [_task(r) for r in rows]


async def assign(conn: Conn, tenant_id: str, task_id: str, agent_id: str | None,
                 at: datetime) -> tuple[Task, Task]:  # fmt: skip
    """(Re)assign a task to an agent, or take it back (None); -> (before, after)."""
    before = await locked(conn, tenant_id, task_id, None)
    if agent_id is not None:
        await _agent_exists(conn, tenant_id, agent_id)
    status = before.status if before.status not in ("open", "assigned") else (
        "assigned" if agent_id else "open")  # fmt: skip
    r = await conn.fetchrow(
        "UPDATE collection_tasks SET agent_id = $3, assigned_at = $4, status = $5, updated_at"
        f" = $6 WHERE tenant_id = $1 AND task_id = $2 RETURNING {COLUMNS}", tenant_id, task_id,
        agent_id, at if agent_id else None, status, at)  # fmt: skip
    return before, _task(r)


async def cancel(conn: Conn, tenant_id: str, task_id: str, at: datetime) -> tuple[Task, Task]:
    before = await locked(conn, tenant_id, task_id, None)
    r = await conn.fetchrow(
        "UPDATE collection_tasks SET status = 'cancelled', updated_at = $3 WHERE tenant_id ="
        f" $1 AND task_id = $2 RETURNING {COLUMNS}", tenant_id, task_id, at)  # fmt: skip
    return before, _task(r)


async def visit(conn: Conn, tenant_id: str, task_id: str, *, agent_id: str | None,
                preset: Preset, promised_on: date | None, comment: str, by: str,
                today: date, at: datetime) -> tuple[int, Task]:  # fmt: skip
    """Record a visit that collected nothing (absent, promised, refused, ...); -> (visit id,
    the task after it)."""
    task = await locked(conn, tenant_id, task_id, agent_id)
    check_visit(preset, promised_on, comment, today, collecting=False)
    visit_id = await conn.fetchval(
        "INSERT INTO collection_visits (tenant_id, task_id, agent_id, preset, outcome, comment,"
        " promised_on, recorded_by, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " RETURNING visit_id", tenant_id, task_id, task.agent_id, preset.code, preset.outcome,
        comment, promised_on, by, at)  # fmt: skip
    r = await conn.fetchrow(
        "UPDATE collection_tasks SET status = $3, updated_at = $4 WHERE tenant_id = $1 AND"
        f" task_id = $2 RETURNING {COLUMNS}", tenant_id, task_id,
        after_outcome(preset.outcome), at)  # fmt: skip
    return visit_id, _task(r)
