"""A tenant's webhook endpoints. The signing secret is returned once, at creation or
rotation, and stored only encrypted; every function is scoped by tenant."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

import asyncpg

from billing.errors import BillingNotFound, InvalidBillingInput
from billing.secrets import Secrets
from billing.webhooks.signing import new_secret

EVENT_TYPES: Final = frozenset({
    "invoice.finalized", "invoice.voided", "invoice.paid", "receipt.issued", "payment.recorded",
    "payment.reversed", "payment.refunded", "credit_note.issued", "dunning.step_entered",
    "dunning.cleared", "balance.expiring", "balance.expired", "account.inactivation_pending",
    "account.inactivated", "account.termination_pending", "account.terminated",
    "plan_change.requested", "plan_change.applied", "plan_change.rejected",
    "plan_change.cancelled", "collection.recorded",
})
_TYPE_RE: Final = re.compile(r"^[a-z]+\.[a-z_]+$")
COLUMNS: Final = "endpoint_id, url, description, event_types, enabled, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: Any) -> Endpoint:
        return cls(r["endpoint_id"], r["url"], r["description"], tuple(r["event_types"]),
                   r["enabled"], r["created_at"], r["updated_at"])


def check_url(url: str) -> str:
    """The URL as given, or ``InvalidBillingInput``: http(s), a host, a valid port, no
    credentials, nothing the HTTP client would refuse later (which would fail every attempt)."""
    if len(url) > 2000:
        raise InvalidBillingInput("url is too long")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidBillingInput("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range"
        raise InvalidBillingInput(f"url is malformed: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidBillingInput("url must be an http(s) URL with a host")
    if port == 0:
        raise InvalidBillingInput("url port must be 1-65535")
    if parts.username is not None or parts.password is not None:
        raise InvalidBillingInput("url must not carry credentials: the signature authenticates")
    return url


def check_types(types: tuple[str, ...]) -> list[str]:
    unknown = sorted(set(types) - EVENT_TYPES)
    if unknown:
        raise InvalidBillingInput(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}"
        )
    return sorted(set(types))


async def create(
    pool: asyncpg.Pool, secrets: Secrets, tenant_id: str, url: str, description: str = "",
    event_types: tuple[str, ...] = (), idem_key: str | None = None,
) -> tuple[Endpoint, str | None]:
    """-> (the endpoint, its signing secret: shown this once). A repeat under the same
    ``idem_key`` answers the endpoint made the first time, without its secret (None)."""
    secret = new_secret()
    row = await pool.fetchrow(
        f"INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, description, event_types,"
        f" secret, idem_key) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        f" ON CONFLICT (tenant_id, idem_key) DO NOTHING RETURNING {COLUMNS}",
        tenant_id, f"we_{uuid.uuid4().hex[:20]}", check_url(url), description,
        check_types(event_types), secrets.encrypt(secret), idem_key,
    )
    if row is None:
        row = await pool.fetchrow(
            f"SELECT {COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND idem_key = $2",
            tenant_id, idem_key,
        )
        return Endpoint.of(row), None
    return Endpoint.of(row), secret


async def get(pool: asyncpg.Pool | asyncpg.Connection, tenant_id: str, endpoint_id: str
              ) -> Endpoint:
    row = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND endpoint_id = $2",
        tenant_id, endpoint_id,
    )
    if row is None:
        raise BillingNotFound("webhook endpoint", endpoint_id)
    return Endpoint.of(row)


async def page(pool: asyncpg.Pool, tenant_id: str, after: str | None, limit: int
               ) -> list[Endpoint]:
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1"
        " AND ($2::text IS NULL OR endpoint_id > $2) ORDER BY endpoint_id LIMIT $3",
        tenant_id, after, limit,
    )
    return [Endpoint.of(r) for r in rows]


async def update(
    pool: asyncpg.Pool, tenant_id: str, endpoint_id: str, *, url: str | None = None,
    description: str | None = None, event_types: tuple[str, ...] | None = None,
    enabled: bool | None = None,
) -> Endpoint:
    row = await pool.fetchrow(
        f"UPDATE webhook_endpoints SET url = coalesce($3, url),"
        f" description = coalesce($4, description), event_types = coalesce($5, event_types),"
        f" enabled = coalesce($6, enabled), updated_at = now()"
        f" WHERE tenant_id = $1 AND endpoint_id = $2 RETURNING {COLUMNS}",
        tenant_id, endpoint_id, check_url(url) if url is not None else None, description,
        check_types(event_types) if event_types is not None else None, enabled,
    )
    if row is None:
        raise BillingNotFound("webhook endpoint", endpoint_id)
    return Endpoint.of(row)


async def rotate_secret(pool: asyncpg.Pool, secrets: Secrets, tenant_id: str,
                        endpoint_id: str) -> tuple[Endpoint, str]:
    secret = new_secret()
    row = await pool.fetchrow(
        f"UPDATE webhook_endpoints SET secret = $3, updated_at = now()"
        f" WHERE tenant_id = $1 AND endpoint_id = $2 RETURNING {COLUMNS}",
        tenant_id, endpoint_id, secrets.encrypt(secret),
    )
    if row is None:
        raise BillingNotFound("webhook endpoint", endpoint_id)
    return Endpoint.of(row), secret


async def delete(pool: asyncpg.Pool, tenant_id: str, endpoint_id: str) -> None:
    """Remove the endpoint with its deliveries and their log."""
    done = await pool.fetchval(
        "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND endpoint_id = $2"
        " RETURNING endpoint_id", tenant_id, endpoint_id,
    )
    if done is None:
        raise BillingNotFound("webhook endpoint", endpoint_id)
