"""API keys: high-entropy secrets shown once, stored as SHA-256, with roles, rotation, revocation.

Admin keys live in ``api_keys``; ``pbx`` keys live in ``pbx_keys``, the table the real-time
API's catalogue reads (so a PBX key made here works there, and only there). Rotation issues a
new key with the same role and name and gives the old one a grace period (``expires_at``) or
revokes it at once. PBX keys whose grace has ended are revoked by ``expire_pbx_keys`` (run every
second by the admin background loop), which moves the catalogue version so engines drop them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import asyncpg

from charging_engine.catalog import hash_key
from charging_engine.ledger.catalog_repo import Conn

SECRET_PREFIX: Final = "ce_"
MAX_SECRET_LENGTH: Final = 256


class Role(StrEnum):
    PLATFORM = "platform"  # the operator: creates tenants, acts on any tenant
    TENANT_ADMIN = "tenant_admin"  # everything within its tenant
    OPS = "ops"  # read, and the alerts feed
    AGENT = "agent"  # collections: top-ups, read accounts
    PBX = "pbx"  # real-time API only
    FINANCE = "finance"  # billing: invoices, charges, the handoff to accounting


TENANT_ROLES: Final = (Role.TENANT_ADMIN, Role.OPS, Role.AGENT, Role.PBX, Role.FINANCE)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    tenant_id: str | None
    role: Role
    name: str
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_from: str | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None:
            return "expired" if self.expires_at <= now else "expiring"
        return "active"


@dataclass(frozen=True, slots=True)
class Caller:
    """The key a request authenticated with."""

    key_id: str
    role: Role
    tenant_id: str | None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)  # 256 bits


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


_COLUMNS: Final = (
    "key_id, tenant_id, role, name, created_at, created_by, expires_at, revoked_at, rotated_from"
)
_PBX_COLUMNS: Final = (
    "key_id, tenant_id, 'pbx' AS role, name, created_at, created_by, expires_at, revoked_at,"
    " rotated_from"
)


def _record(r: asyncpg.Record) -> KeyRecord:
    return KeyRecord(
        r["key_id"], r["tenant_id"], Role(r["role"]), r["name"], r["created_at"],
        r["created_by"], r["expires_at"], r["revoked_at"], r["rotated_from"],
    )


async def authenticate(conn: Conn, secret: str) -> Caller | None:
    """The admin key with this secret, if valid now (not revoked, not past its grace)."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    r = await conn.fetchrow(
        "SELECT k.key_id, k.role, k.tenant_id FROM api_keys k"
        " LEFT JOIN tenants t ON t.tenant_id = k.tenant_id"
        " WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > now())"
        " AND (k.tenant_id IS NULL OR t.tenant_id IS NOT NULL)",
        hash_key(secret),
    )
    return None if r is None else Caller(r["key_id"], Role(r["role"]), r["tenant_id"])


async def create_key(
    conn: Conn, tenant_id: str | None, role: Role, name: str, created_by: str | None,
    rotated_from: str | None = None,
) -> tuple[KeyRecord, str]:
    """A new key and its secret (which is not stored and cannot be shown again)."""
    secret = new_secret()
    key_id = new_key_id()
    if role is Role.PBX:
        row = await conn.fetchrow(
            "INSERT INTO pbx_keys (tenant_id, key_id, key_hash, name, created_by, rotated_from)"
            f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_PBX_COLUMNS}",
            tenant_id, key_id, hash_key(secret), name, created_by, rotated_from,
        )
    else:
        row = await conn.fetchrow(
            "INSERT INTO api_keys (key_id, tenant_id, role, key_hash, name, created_by,"
            f" rotated_from) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
            key_id, tenant_id, role.value, hash_key(secret), name, created_by, rotated_from,
        )
    assert row is not None
    return _record(row), secret


async def list_keys(
    conn: Conn, tenant_id: str | None, after: str | None, limit: int
) -> list[KeyRecord]:
    """Keys of a tenant (PBX keys included), or the platform keys, by key id."""
    if tenant_id is None:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id IS NULL"
            " AND ($1::text IS NULL OR key_id > $1) ORDER BY key_id LIMIT $2",
            after, limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT * FROM (SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = $1"
            f" UNION ALL SELECT {_PBX_COLUMNS} FROM pbx_keys WHERE tenant_id = $1) k"
            " WHERE ($2::text IS NULL OR key_id > $2) ORDER BY key_id LIMIT $3",
            tenant_id, after, limit,
        )
    return [_record(r) for r in rows]


async def get_key(conn: Conn, tenant_id: str | None, key_id: str) -> KeyRecord | None:
    if tenant_id is None:
        r = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id IS NULL AND key_id = $1", key_id
        )
    else:
        r = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND key_id = $2"
            f" UNION ALL SELECT {_PBX_COLUMNS} FROM pbx_keys WHERE tenant_id = $1 AND key_id = $2",
            tenant_id, key_id,
        )
    return None if r is None else _record(r)


def _table(role: Role) -> str:
    return "pbx_keys" if role is Role.PBX else "api_keys"


async def revoke(conn: Conn, key: KeyRecord) -> KeyRecord:
    """Revoke now (a revoked key stays revoked, at its first revocation time)."""
    r = await conn.fetchrow(
        f"UPDATE {_table(key.role)} SET revoked_at = coalesce(revoked_at, now())"
        " WHERE key_id = $1 AND tenant_id IS NOT DISTINCT FROM $2"
        f" RETURNING {_PBX_COLUMNS if key.role is Role.PBX else _COLUMNS}",
        key.key_id, key.tenant_id,
    )
    assert r is not None
    return _record(r)


async def end_after(conn: Conn, key: KeyRecord, grace: timedelta) -> KeyRecord:
    """Let a rotated key live ``grace`` longer (never longer than it already would)."""
    r = await conn.fetchrow(
        f"UPDATE {_table(key.role)}"
        " SET expires_at = least(coalesce(expires_at, 'infinity'), now() + $3::interval)"
        " WHERE key_id = $1 AND tenant_id IS NOT DISTINCT FROM $2"
        f" RETURNING {_PBX_COLUMNS if key.role is Role.PBX else _COLUMNS}",
        key.key_id, key.tenant_id, grace,
    )
    assert r is not None
    return _record(r)


async def expire_pbx_keys(conn: Conn) -> int:
    """Revoke PBX keys whose grace period ended; the update (and catalogue bump) only when
    there is one, since a statement-level trigger moves the version even for zero rows."""
    due = await conn.fetchval(
        "SELECT count(*) FROM pbx_keys WHERE revoked_at IS NULL AND expires_at <= now()"
    )
    if not due:
        return 0
    status = await conn.execute(
        "UPDATE pbx_keys SET revoked_at = expires_at"
        " WHERE revoked_at IS NULL AND expires_at <= now()"
    )
    return int(status.rsplit(" ", 1)[-1])


def view(key: KeyRecord, now: datetime) -> dict[str, Any]:
    return {
        "key_id": key.key_id, "tenant_id": key.tenant_id, "role": key.role.value,
        "name": key.name, "state": key.state(now), "created_at": key.created_at,
        "created_by": key.created_by, "expires_at": key.expires_at,
        "revoked_at": key.revoked_at, "rotated_from": key.rotated_from,
    }
