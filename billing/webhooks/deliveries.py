"""The delivery log of an endpoint, and manual redelivery (tenant-scoped): a redelivery keeps
the event's ``webhook-id``, restarts the attempt count and ends any claim on it, so an attempt
still in flight is logged but no longer decides the status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from billing.errors import BillingNotFound
from billing.webhooks import endpoints


async def page(pool: asyncpg.Pool, tenant_id: str, endpoint_id: str, before: int | None,
               limit: int, status: str | None = None) -> list[Any]:
    """Deliveries of one endpoint, newest first, each with its event's type and id."""
    return list(await pool.fetch(
        "SELECT d.*, e.type FROM webhook_deliveries d JOIN webhook_events e USING (event_id)"
        " WHERE d.tenant_id = $1 AND d.endpoint_id = $2"
        " AND ($3::bigint IS NULL OR d.delivery_id < $3)"
        " AND ($4::text IS NULL OR d.status = $4)"
        " ORDER BY d.delivery_id DESC LIMIT $5",
        tenant_id, endpoint_id, before, status, limit,
    ))


async def attempts(pool: asyncpg.Pool, tenant_id: str, delivery_id: int) -> list[Any]:
    await one(pool, tenant_id, delivery_id)
    return list(await pool.fetch(
        "SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id", delivery_id
    ))


async def one(pool: asyncpg.Pool, tenant_id: str, delivery_id: int) -> Any:
    row = await pool.fetchrow(
        "SELECT d.*, e.type FROM webhook_deliveries d JOIN webhook_events e USING (event_id)"
        " WHERE d.tenant_id = $1 AND d.delivery_id = $2", tenant_id, delivery_id,
    )
    if row is None:
        raise BillingNotFound("webhook delivery", str(delivery_id))
    return row


async def redeliver(pool: asyncpg.Pool, tenant_id: str, delivery_id: int, now: datetime) -> Any:
    """Send a delivery again (delivered or failed alike) with the same ``webhook-id``; its
    attempt count restarts, the log keeps every earlier attempt."""
    row = await pool.fetchrow(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3,"
        " lease_until = NULL WHERE tenant_id = $1 AND delivery_id = $2 RETURNING delivery_id",
        tenant_id, delivery_id, now,
    )
    if row is None:
        raise BillingNotFound("webhook delivery", str(delivery_id))
    return await one(pool, tenant_id, delivery_id)


async def redeliver_event(pool: asyncpg.Pool, tenant_id: str, event_id: str, endpoint_id: str,
                          now: datetime) -> Any:
    """Send one of the tenant's events to one of its endpoints again, or for the first time
    (an endpoint created after the event, or one its type filter left out)."""
    async with pool.acquire() as conn, conn.transaction():
        known = await conn.fetchval(
            "SELECT 1 FROM webhook_events WHERE tenant_id = $1 AND event_id = $2",
            tenant_id, event_id,
        )
        if known is None:
            raise BillingNotFound("webhook event", event_id)
        await endpoints.get(conn, tenant_id, endpoint_id)
        delivery_id = await conn.fetchval(
            "INSERT INTO webhook_deliveries (tenant_id, event_id, endpoint_id, next_attempt_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (event_id, endpoint_id) DO UPDATE"
            " SET status = 'pending', attempts = 0, next_attempt_at = EXCLUDED.next_attempt_at,"
            " lease_until = NULL RETURNING delivery_id",
            tenant_id, event_id, endpoint_id, now,
        )
    return await one(pool, tenant_id, int(delivery_id))
