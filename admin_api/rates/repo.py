"""Rate plans and rates in Postgres (``rate_plans``, ``rates``; writes move the catalogue)."""

from __future__ import annotations

from typing import Final

import asyncpg

from charging_engine.ledger.catalog_repo import RATE_COLUMNS, Conn, rate_values
from charging_engine.rating.model import Rate

_RATE_SELECT: Final = f"SELECT id, {', '.join(RATE_COLUMNS)} FROM rates"


async def plan(
    conn: Conn, tenant_id: str, plan_id: str, *, lock: bool = False
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT p.plan_id, p.name, p.currency,"
        " (SELECT count(*) FROM rates r WHERE r.tenant_id = p.tenant_id"
        "  AND r.plan_id = p.plan_id) AS rates,"
        " (SELECT count(*) FROM accounts a WHERE a.tenant_id = p.tenant_id"
        "  AND a.rate_plan_id = p.plan_id) AS accounts"
        " FROM rate_plans p WHERE p.tenant_id = $1 AND p.plan_id = $2"
        + (" FOR UPDATE OF p" if lock else ""),
        tenant_id, plan_id,
    )
    return row


async def plans(
    conn: Conn, tenant_id: str, after: str | None, limit: int
) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT p.plan_id, p.name, p.currency,"
        " (SELECT count(*) FROM rates r WHERE r.tenant_id = p.tenant_id"
        "  AND r.plan_id = p.plan_id) AS rates,"
        " (SELECT count(*) FROM accounts a WHERE a.tenant_id = p.tenant_id"
        "  AND a.rate_plan_id = p.plan_id) AS accounts"
        " FROM rate_plans p WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.plan_id > $2)"
        " ORDER BY p.plan_id LIMIT $3",
        tenant_id, after, limit,
    ))


async def rates(
    conn: Conn, tenant_id: str, plan_id: str, *, prefix: str | None = None,
    after_id: int | None = None, limit: int | None = None,
) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        f"{_RATE_SELECT} WHERE tenant_id = $1 AND plan_id = $2"
        " AND ($3::text IS NULL OR prefix LIKE $3 || '%') AND ($4::bigint IS NULL OR id > $4)"
        " ORDER BY id LIMIT $5",
        tenant_id, plan_id, prefix, after_id, limit,
    ))


async def rate(
    conn: Conn, tenant_id: str, plan_id: str, rate_id: int
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"{_RATE_SELECT} WHERE tenant_id = $1 AND plan_id = $2 AND id = $3",
        tenant_id, plan_id, rate_id,
    )
    return row


async def clashing(
    conn: Conn, tenant_id: str, plan_id: str, r: Rate, rate_id: int | None
) -> int | None:
    """The id of another rate with the same prefix, band and activation (a duplicate)."""
    found: int | None = await conn.fetchval(
        "SELECT id FROM rates WHERE tenant_id = $1 AND plan_id = $2 AND prefix = $3"
        " AND band_name IS NOT DISTINCT FROM $4 AND active_from IS NOT DISTINCT FROM $5"
        " AND ($6::bigint IS NULL OR id <> $6) LIMIT 1",
        tenant_id, plan_id, r.prefix, r.band.name if r.band else None, r.active_from, rate_id,
    )
    return found


async def insert_rate(conn: Conn, tenant_id: str, plan_id: str, r: Rate) -> int:
    cols = ", ".join(RATE_COLUMNS)
    marks = ", ".join(f"${i}" for i in range(1, len(RATE_COLUMNS) + 1))
    rate_id: int = await conn.fetchval(
        f"INSERT INTO rates ({cols}) VALUES ({marks}) RETURNING id",
        tenant_id, plan_id, *rate_values(r),
    )
    return rate_id


async def update_rate(conn: Conn, tenant_id: str, plan_id: str, rate_id: int, r: Rate) -> None:
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(RATE_COLUMNS[2:], start=4))
    await conn.execute(
        f"UPDATE rates SET {sets} WHERE tenant_id = $1 AND plan_id = $2 AND id = $3",
        tenant_id, plan_id, rate_id, *rate_values(r),
    )
