"""Stored alerts: the response shape and the queries the routes and the hub share."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import asyncpg

from admin_api.schemas import Amount, Out
from charging_engine.ledger.catalog_repo import Conn
from charging_engine.money import format_amount

KINDS: Final = ("low_balance", "exhausted", "status_changed")

_SELECT: Final = (
    "SELECT a.id, a.tenant_id, a.account_id, a.kind, a.balance, a.threshold, a.from_status,"
    " a.to_status, a.seq, a.raised_at, a.stored_at, a.acknowledged_at, a.acknowledged_by,"
    " acc.currency FROM alerts a"
    " LEFT JOIN accounts acc ON acc.tenant_id = a.tenant_id AND acc.account_id = a.account_id"
)


class AlertOut(Out):
    id: int
    tenant_id: str
    account_id: str
    kind: str
    balance: Amount | None
    threshold: Amount | None
    from_status: str | None
    to_status: str | None
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


def alert_out(r: asyncpg.Record | dict[str, Any]) -> AlertOut:
    currency = r["currency"].strip() if r["currency"] else None
    return AlertOut(
        id=r["id"], tenant_id=r["tenant_id"], account_id=r["account_id"], kind=r["kind"],
        balance=None if r["balance"] is None else format_amount(r["balance"], currency),
        threshold=None if r["threshold"] is None else format_amount(r["threshold"], currency),
        from_status=r["from_status"], to_status=r["to_status"], raised_at=r["raised_at"],
        acknowledged_at=r["acknowledged_at"], acknowledged_by=r["acknowledged_by"],
    )


async def list_alerts(
    conn: Conn, tenant_id: str, *, account: str | None = None, kind: str | None = None,
    acknowledged: bool | None = None, start: datetime | None = None,
    end: datetime | None = None, before_id: int | None = None, after_id: int | None = None,
    limit: int = 50, ascending: bool = False,
) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        f"{_SELECT} WHERE a.tenant_id = $1"
        " AND ($2::text IS NULL OR a.account_id = $2) AND ($3::text IS NULL OR a.kind = $3)"
        " AND ($4::boolean IS NULL OR (a.acknowledged_at IS NOT NULL) = $4)"
        " AND ($5::timestamptz IS NULL OR a.raised_at >= $5)"
        " AND ($6::timestamptz IS NULL OR a.raised_at < $6)"
        " AND ($7::bigint IS NULL OR a.id < $7) AND ($8::bigint IS NULL OR a.id > $8)"
        f" ORDER BY a.id {'ASC' if ascending else 'DESC'} LIMIT $9",
        tenant_id, account, kind, acknowledged, start, end, before_id, after_id, limit,
    ))


async def get_alert(conn: Conn, alert_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(f"{_SELECT} WHERE a.id = $1", alert_id)
    return row


async def alerts_after(conn: Conn, after_id: int, limit: int) -> list[asyncpg.Record]:
    """Every tenant's alerts past ``after_id``, oldest first (the hub's catch-up)."""
    return list(await conn.fetch(
        f"{_SELECT} WHERE a.id > $1 ORDER BY a.id LIMIT $2", after_id, limit
    ))


async def acknowledge(
    conn: Conn, tenant_id: str, alert_id: int, key_id: str
) -> tuple[asyncpg.Record | None, bool]:
    """(the alert, whether this call acknowledged it); the first acknowledgement stays."""
    changed = await conn.fetchval(
        "UPDATE alerts SET acknowledged_at = now(), acknowledged_by = $3"
        " WHERE tenant_id = $1 AND id = $2 AND acknowledged_at IS NULL RETURNING id",
        tenant_id, alert_id, key_id,
    )
    row = await conn.fetchrow(f"{_SELECT} WHERE a.tenant_id = $1 AND a.id = $2",
                              tenant_id, alert_id)
    return row, changed is not None
