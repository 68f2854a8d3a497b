"""The audit log writer: who changed what, with the state before and after.

Every writer of business state (the admin API, the CLI, billing work) calls ``record_change``
inside the transaction of the change it describes, so a change and its audit row commit
together or not at all. The table refuses UPDATE, DELETE and TRUNCATE; reading it is the admin
API's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from charging_engine.ledger.catalog_repo import Conn


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: an API key id (or a process name such as ``"cli"`` or
    ``"billing"``) and its role (``"platform"``, ``"tenant_admin"``, ``"system"`` ...)."""

    key_id: str
    role: str


def _jsonable(value: Any) -> Any:
    """Dates as ISO strings (the same rendering the admin API's audit reads expect)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(_jsonable(value))


async def record_change(
    conn: Conn, actor: Actor, tenant_id: str | None, action: str, target: str,
    before: Any, after: Any,
) -> None:
    """One audit row; ``tenant_id`` None for platform-level changes (tenants, platform keys)."""
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, key_id, role, action, target, before, after)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
        tenant_id, actor.key_id, str(actor.role), action, target, _json(before), _json(after),
    )
