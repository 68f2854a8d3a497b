"""Collection agents and the tenant's visit presets (Postgres adapter).

An agent is a person with an ``agent`` API key: the key, and every key rotated from it, act as
that agent and see only its assignments. Presets are the tenant's own list of visit outcomes,
or the built-in ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from billing.catalog.lookups import Conn
from billing.collections.rules import DEFAULT_PRESETS, Preset, check_presets
from billing.errors import BillingNotFound, InvalidBillingInput

__all__ = ["Agent", "agent_for_key", "get", "list_agents", "presets", "put", "put_presets"]

_COLUMNS: Final = "agent_id, name, area, mobile, key_id, active, created_at, updated_at"

# The caller's key and the keys it was rotated from, nearest first.
_FOR_KEY_SQL: Final = f"""
WITH RECURSIVE chain (key_id, rotated_from, depth) AS (
    SELECT key_id, rotated_from, 0 FROM api_keys WHERE key_id = $2
    UNION ALL
    SELECT k.key_id, k.rotated_from, c.depth + 1 FROM api_keys k
    JOIN chain c ON k.key_id = c.rotated_from WHERE c.depth < 100)
SELECT {', '.join('a.' + c for c in _COLUMNS.split(', '))}
FROM collection_agents a JOIN chain c USING (key_id)
WHERE a.tenant_id = $1 AND a.active
ORDER BY c.depth LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class Agent:
    agent_id: str
    name: str
    area: str
    mobile: str | None
    key_id: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


def _agent(r: Any) -> Agent:
    return Agent(r["agent_id"], r["name"], r["area"], r["mobile"], r["key_id"], r["active"],
                 r["created_at"], r["updated_at"])  # fmt: skip


async def put(conn: Conn, tenant_id: str, agent_id: str, *, name: str, area: str,
              mobile: str | None, key_id: str | None, active: bool, at: datetime,
              ) -> tuple[Agent | None, Agent]:  # fmt: skip
    """Create or replace the agent; -> (before, after). Its key must be an ``agent`` key of the
    tenant, held by no other agent."""
    if key_id is not None:
        role = await conn.fetchval("SELECT role FROM api_keys WHERE key_id = $1 AND tenant_id"
                                   " = $2 AND revoked_at IS NULL", key_id, tenant_id)  # fmt: skip
        if role != "agent":
            raise InvalidBillingInput(f"key {key_id!r} is not an active agent key of the tenant")
        other = await conn.fetchval("SELECT agent_id FROM collection_agents WHERE key_id = $1"
                                    " AND (tenant_id, agent_id) <> ($2, $3)", key_id,
                                    tenant_id, agent_id)  # fmt: skip
        if other is not None:
            raise InvalidBillingInput(f"key {key_id!r} belongs to another agent")
    before = await conn.fetchrow(f"SELECT {_COLUMNS} FROM collection_agents WHERE tenant_id ="
                                 " $1 AND agent_id = $2 FOR UPDATE", tenant_id, agent_id)
    r = await conn.fetchrow(
        "INSERT INTO collection_agents (tenant_id, agent_id, name, area, mobile, key_id,"
        " active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
        " ON CONFLICT (tenant_id, agent_id) DO UPDATE SET name = excluded.name, area ="
        " excluded.area, mobile = excluded.mobile, key_id = excluded.key_id, active ="
        f" excluded.active, updated_at = excluded.updated_at RETURNING {_COLUMNS}",
        tenant_id, agent_id, name, area, mobile, key_id, active, at)  # fmt: skip
    return (_agent(before) if before else None), _agent(r)


async def get(conn: Conn, tenant_id: str, agent_id: str) -> Agent:
    r = await conn.fetchrow(f"SELECT {_COLUMNS} FROM collection_agents WHERE tenant_id = $1"
                            " AND agent_id = $2", tenant_id, agent_id)  # fmt: skip
    if r is None:
        raise BillingNotFound("collection agent", agent_id)
    return _agent(r)


async def list_agents(conn: Conn, tenant_id: str) -> list[Agent]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM collection_agents WHERE tenant_id = $1"
                            " ORDER BY agent_id", tenant_id)  # fmt: skip
    return [_agent(r) for r in rows]


async def agent_for_key(conn: Conn, tenant_id: str, key_id: str) -> Agent | None:
    """The active agent the key (or a key it was rotated from) belongs to."""
    r = await conn.fetchrow(_FOR_KEY_SQL, tenant_id, key_id)
    return _agent(r) if r else None


async def presets(conn: Conn, tenant_id: str) -> tuple[Preset, ...]:
    rows = await conn.fetch("SELECT code, label, outcome FROM collection_presets WHERE"
                            " tenant_id = $1 ORDER BY position", tenant_id)  # fmt: skip
    return tuple(Preset(r["code"], r["label"], r["outcome"]) for r in rows) or DEFAULT_PRESETS


async def put_presets(conn: Conn, tenant_id: str, new: tuple[Preset, ...]) -> None:
    """Replace the tenant's presets whole (visits keep the code and outcome they were
    recorded with)."""
    check_presets(new)
    await conn.execute("DELETE FROM collection_presets WHERE tenant_id = $1", tenant_id)
    await conn.executemany(
        "INSERT INTO collection_presets (tenant_id, code, label, outcome, position)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(tenant_id, p.code, p.label, p.outcome, i) for i, p in enumerate(new)])  # fmt: skip
