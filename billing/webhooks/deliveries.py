"""The delivery log of an endpoint, and manual redelivery (tenant-scoped)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from billing.errors import BillingNotFound


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
