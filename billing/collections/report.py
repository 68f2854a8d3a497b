"""Supervisors' figures (Postgres adapter): per agent and day (the tenant's calendar), tasks
assigned, visits made, and the money collected by method and currency; and the agent actions
behind them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final

from billing.catalog.lookups import Conn

__all__ = ["Action", "AgentDay", "actions", "per_agent_day"]

_ASSIGNED_SQL: Final = """
SELECT agent_id, (assigned_at AT TIME ZONE $2)::date AS day, count(*) AS n
FROM collection_tasks
WHERE tenant_id = $1 AND agent_id IS NOT NULL AND ($5::text IS NULL OR agent_id = $5)
  AND (assigned_at AT TIME ZONE $2)::date BETWEEN $3 AND $4
GROUP BY 1, 2
"""

_VISITS_SQL: Final = """
SELECT v.agent_id, (v.at AT TIME ZONE $2)::date AS day, count(*) AS visits,
       count(*) FILTER (WHERE v.payment_id IS NOT NULL) AS collections
FROM collection_visits v
WHERE v.tenant_id = $1 AND v.agent_id IS NOT NULL AND ($5::text IS NULL OR v.agent_id = $5)
  AND (v.at AT TIME ZONE $2)::date BETWEEN $3 AND $4
GROUP BY 1, 2
"""

_MONEY_SQL: Final = """
SELECT v.agent_id, (v.at AT TIME ZONE $2)::date AS day, p.method, p.currency,
       sum(p.amount)::bigint AS amount
FROM collection_visits v JOIN payments p ON p.payment_id = v.payment_id
WHERE v.tenant_id = $1 AND v.agent_id IS NOT NULL AND ($5::text IS NULL OR v.agent_id = $5)
  AND p.status = 'recorded' AND (v.at AT TIME ZONE $2)::date BETWEEN $3 AND $4
GROUP BY 1, 2, 3, 4
"""


@dataclass
class AgentDay:
    agent_id: str
    day: date
    assigned: int = 0
    visits: int = 0
    collections: int = 0
    collected: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, cur) -> minor


async def per_agent_day(conn: Conn, tenant_id: str, start: date, end: date,
                        agent_id: str | None = None) -> list[AgentDay]:  # fmt: skip
    """Each agent's days with anything in [start, end]; a reversed payment (a bounced cheque)
    no longer counts as collected."""
    tz = await conn.fetchval("SELECT timezone FROM tenants WHERE tenant_id = $1", tenant_id)
    rows: dict[tuple[str, date], AgentDay] = {}

    def row(agent: str, day: date) -> AgentDay:
        found = rows.get((agent, day))
        if found is None:
            found = rows[(agent, day)] = AgentDay(agent, day)
        return found

    args = (tenant_id, tz or "UTC", start, end, agent_id)
    for r in await conn.fetch(_ASSIGNED_SQL, *args):
        row(r["agent_id"], r["day"]).assigned = r["n"]
    for r in await conn.fetch(_VISITS_SQL, *args):
        d = row(r["agent_id"], r["day"])
        d.visits, d.collections = r["visits"], r["collections"]
    for r in await conn.fetch(_MONEY_SQL, *args):
        row(r["agent_id"], r["day"]).collected[(r["method"], r["currency"].strip())] = r["amount"]
    return sorted(rows.values(), key=lambda d: (d.day, d.agent_id))


@dataclass(frozen=True, slots=True)
class Action:
    visit_id: int
    task_id: str
    account_id: str
    preset: str
    outcome: str
    comment: str
    promised_on: date | None
    payment_id: str | None
    amount: int | None
    method: str | None
    currency: str
    recorded_by: str
    at: datetime


async def actions(conn: Conn, tenant_id: str, agent_id: str | None,
                  after: tuple[datetime, int] | None, limit: int) -> list[Action]:  # fmt: skip
    """Visits and collections, oldest first (one agent's, or every one)."""
    rows = await conn.fetch(
        "SELECT v.visit_id, v.task_id, t.account_id, v.preset, v.outcome, v.comment,"
        " v.promised_on, v.payment_id, v.amount, v.method, a.currency, v.recorded_by, v.at"
        " FROM collection_visits v JOIN collection_tasks t USING (tenant_id, task_id)"
        " JOIN accounts a ON a.tenant_id = t.tenant_id AND a.account_id = t.account_id"
        " WHERE v.tenant_id = $1 AND ($2::text IS NULL OR v.agent_id = $2)"
        " AND ($3::timestamptz IS NULL OR (v.at, v.visit_id) > ($3, $4))"
        " ORDER BY v.at, v.visit_id LIMIT $5", tenant_id, agent_id,
        after[0] if after else None, after[1] if after else None, limit)  # fmt: skip
    return [Action(r["visit_id"], r["task_id"], r["account_id"], r["preset"], r["outcome"],
                   r["comment"], r["promised_on"], r["payment_id"], r["amount"], r["method"],
                   r["currency"].strip(), r["recorded_by"], r["at"]) for r in rows]  # fmt: skip
