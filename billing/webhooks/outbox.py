"""Enqueue an event in the caller's transaction: a rollback takes the event with it, a commit
makes it deliverable (to the tenant's webhook endpoints, and to every registered consumer of
the event log, e.g. notifications); the same dedup key enqueues once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from billing.webhooks.signing import body, new_event_id


def _in_transaction(conn: asyncpg.Connection) -> None:
    """The event must commit or roll back with the change that caused it; outside a
    transaction each statement commits alone (an event could even lose its deliveries)."""
    if not conn.is_in_transaction():
        raise RuntimeError("enqueue runs inside the caller's transaction (conn.transaction())")


async def enqueue(
    conn: asyncpg.Connection, tenant_id: str, event_type: str, data: dict[str, Any],
    dedup_key: str, at: datetime | None = None,
) -> str | None:
    """Queue ``event_type`` with ``data`` for every enabled endpoint of the tenant subscribed
    to it; -> the event id, or None if ``dedup_key`` was queued before."""
    _in_transaction(conn)
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
    await conn.execute("INSERT INTO event_consumer_queue (consumer, event_id)"
                       " SELECT name, $1 FROM event_consumers", event_id)  # fmt: skip
    await conn.execute(
        "INSERT INTO webhook_deliveries (tenant_id, event_id, endpoint_id, next_attempt_at)"
        " SELECT tenant_id, $2, endpoint_id, $4 FROM webhook_endpoints"
        " WHERE tenant_id = $1 AND enabled"
        " AND (cardinality(event_types) = 0 OR $3 = ANY(event_types))",
        tenant_id, event_id, event_type, when,
    )
    return str(done)


async def enqueue_many(
    conn: asyncpg.Connection, tenant_id: str, events: list[tuple[str, dict[str, Any], str]],
    at: datetime | None = None,
) -> int:
    """``enqueue`` for many (type, data, dedup key) of one tenant in two statements; -> how
    many were new."""
    _in_transaction(conn)
    if not events:
        return 0
    when = at or datetime.now(UTC)
    ids = [new_event_id() for _ in events]
    rows = await conn.fetch(
        "INSERT INTO webhook_events (event_id, tenant_id, type, dedup_key, payload, created_at)"
        " SELECT e.id, $1, e.type, e.dedup, e.payload, $6"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS e(id, type, dedup,"
        " payload) ON CONFLICT (tenant_id, dedup_key) DO NOTHING RETURNING event_id, type",
        tenant_id, ids, [t for t, _, _ in events], [k for _, _, k in events],
        [body(t, d, when) for t, d, _ in events], when,
    )
    if rows:
        await conn.execute("INSERT INTO event_consumer_queue (consumer, event_id) SELECT c.name,"
                           " e.id FROM event_consumers c CROSS JOIN unnest($1::text[]) AS e(id)",
                           [r["event_id"] for r in rows])  # fmt: skip
        await conn.execute(
            "INSERT INTO webhook_deliveries (tenant_id, event_id, endpoint_id, next_attempt_at)"
            " SELECT p.tenant_id, e.id, p.endpoint_id, $4 FROM webhook_endpoints p"
            " JOIN unnest($2::text[], $3::text[]) AS e(id, type)"
            " ON cardinality(p.event_types) = 0 OR e.type = ANY(p.event_types)"
            " WHERE p.tenant_id = $1 AND p.enabled",
            tenant_id, [r["event_id"] for r in rows], [r["type"] for r in rows], when,
        )
    return len(rows)
