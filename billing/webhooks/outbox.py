"""Enqueue an event in the caller's transaction: a rollback takes the event with it, a commit
makes it deliverable; the same dedup key enqueues once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from billing.webhooks.signing import body, new_event_id


async def enqueue(
    conn: asyncpg.Connection, tenant_id: str, event_type: str, data: dict[str, Any],
    dedup_key: str, at: datetime | None = None,
) -> str | None:
    """Queue ``event_type`` with ``data`` for every enabled endpoint of the tenant subscribed
    to it; -> the event id, or None if ``dedup_key`` was queued before."""
    when = at or datetime.now(UTC)
    event_id = new_event_id()
    done = await conn.fetchval(
        "INSERT INTO webhook_events (event_id, tenant_id, type, dedup_key, payload, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, dedup_key) DO NOTHING"
        " RETURNING event_id",
        event_id, tenant_id, event_type, dedup_key, body(event_type, data, when), when,
    )
    if done is None:
        return None
    await conn.execute(
        "INSERT INTO webhook_deliveries (tenant_id, event_id, endpoint_id, next_attempt_at)"
        " SELECT tenant_id, $2, endpoint_id, $4 FROM webhook_endpoints"
        " WHERE tenant_id = $1 AND enabled"
        " AND (cardinality(event_types) = 0 OR $3 = ANY(event_types))",
        tenant_id, event_id, event_type, when,
    )
    return str(done)
