"""The account record of reference: ``accounts`` (the catalogue, read by the hot path) joined with
``account_details`` (contacts, alert lines, auto top-up), and the SQL that reads and writes them.

Every function takes an ``asyncpg.Connection`` or a ``Pool``; the use cases in ``changes`` and
``money`` decide the transactions and the locks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import asyncpg

from charging_engine.account_status import AccountStatus
from charging_engine.accounts.errors import NotFound
from charging_engine.ledger.catalog_repo import Conn


class AccountKind(StrEnum):
    PREPAID = "prepaid"  # calls spend the balance
    POSTPAID = "postpaid"  # calls spend a credit line, invoiced later


_SELECT: Final = """
SELECT a.tenant_id, a.account_id, a.currency, a.kind, a.status, a.credit_limit, a.min_balance,
       a.rate_plan_id, a.created_at, a.updated_at,
       coalesce(d.name, '') AS name, d.primary_mobile, d.alternate_mobile, d.email,
       coalesce(d.low_balance_thresholds, '{}') AS low_balance_thresholds,
       coalesce(d.low_balance_hysteresis, 0) AS low_balance_hysteresis,
       coalesce(d.auto_topup_enabled, false) AS auto_topup_enabled,
       d.auto_topup_threshold, d.auto_topup_amount, d.closed_at
FROM accounts a LEFT JOIN account_details d USING (tenant_id, account_id)
"""


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One account as Postgres holds it; amounts in micros of ``currency``."""

    tenant_id: str
    account_id: str
    currency: str
    kind: AccountKind
    status: AccountStatus
    credit_limit: int
    min_balance: int
    rate_plan_id: str | None
    created_at: datetime
    updated_at: datetime
    name: str
    primary_mobile: str | None
    alternate_mobile: str | None
    email: str | None
    low_balance_thresholds: tuple[int, ...]
    low_balance_hysteresis: int
    auto_topup_enabled: bool
    auto_topup_threshold: int | None
    auto_topup_amount: int | None
    closed_at: datetime | None

    @classmethod
    def of(cls, r: asyncpg.Record) -> AccountRow:
        values = dict(r)
        values["currency"] = values["currency"].strip()
        values["kind"] = AccountKind(values["kind"])
        values["status"] = AccountStatus(values["status"])
        values["low_balance_thresholds"] = tuple(values["low_balance_thresholds"])
        return cls(**values)

    @property
    def redis_credit(self) -> int:
        """What Redis enforces: overdraft down to the minimum balance."""
        return self.credit_limit - self.min_balance

    def with_changes(self, **changes: Any) -> AccountRow:
        return replace(self, **changes)

    def audit(self) -> dict[str, Any]:
        """The account as the audit log records it (no timestamps)."""
        out = asdict(self)
        for name in ("created_at", "updated_at"):
            out.pop(name)
        out["kind"] = self.kind.value
        out["status"] = self.status.value
        out["low_balance_thresholds"] = list(self.low_balance_thresholds)
        return out


async def get(
    conn: Conn, tenant_id: str, account_id: str, *, lock: bool = False
) -> AccountRow | None:
    sql = _SELECT + " WHERE a.tenant_id = $1 AND a.account_id = $2"
    if lock:
        sql += " FOR UPDATE OF a"
    r = await conn.fetchrow(sql, tenant_id, account_id)
    return None if r is None else AccountRow.of(r)


async def require(conn: Conn, tenant_id: str, account_id: str) -> AccountRow:
    """The account, or ``NotFound``."""
    row = await get(conn, tenant_id, account_id)
    if row is None:
        raise NotFound.account(account_id)
    return row


async def page(
    conn: Conn, tenant_id: str, *, status: str | None, kind: str | None, after: str | None,
    limit: int,
) -> list[AccountRow]:
    rows = await conn.fetch(
        _SELECT + " WHERE a.tenant_id = $1 AND ($2::text IS NULL OR a.status = $2)"
        " AND ($3::text IS NULL OR a.kind = $3) AND ($4::text IS NULL OR a.account_id > $4)"
        " ORDER BY a.account_id LIMIT $5",
        tenant_id, status, kind, after, limit,
    )
    return [AccountRow.of(r) for r in rows]


async def insert(conn: Conn, row: AccountRow) -> bool:
    """False if the account id is taken."""
    done = await conn.fetchval(
        "INSERT INTO accounts (tenant_id, account_id, currency, kind, status, credit_limit,"
        " min_balance, rate_plan_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (tenant_id, account_id) DO NOTHING RETURNING 1",
        row.tenant_id, row.account_id, row.currency, row.kind.value, row.status.value,
        row.credit_limit, row.min_balance, row.rate_plan_id,
    )
    if done is None:
        return False
    await save_details(conn, row)
    return True


async def save(conn: Conn, old: AccountRow, new: AccountRow) -> None:
    """Write what changed; the catalogue table only when a catalogue field changed (every
    write to it makes every engine reload its catalogue)."""
    core = ("kind", "status", "credit_limit", "min_balance", "rate_plan_id")
    if any(getattr(old, f) != getattr(new, f) for f in core):
        await conn.execute(
            "UPDATE accounts SET kind = $3, status = $4, credit_limit = $5, min_balance = $6,"
            " rate_plan_id = $7, updated_at = now() WHERE tenant_id = $1 AND account_id = $2",
            new.tenant_id, new.account_id, new.kind.value, new.status.value, new.credit_limit,
            new.min_balance, new.rate_plan_id,
        )
    await save_details(conn, new)


async def save_details(conn: Conn, row: AccountRow) -> None:
    await conn.execute(
        "INSERT INTO account_details (tenant_id, account_id, name, primary_mobile,"
        " alternate_mobile, email, low_balance_thresholds, low_balance_hysteresis,"
        " auto_topup_enabled, auto_topup_threshold, auto_topup_amount, closed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (tenant_id, account_id) DO UPDATE SET name = excluded.name,"
        " primary_mobile = excluded.primary_mobile, alternate_mobile = excluded.alternate_mobile,"
        " email = excluded.email, low_balance_thresholds = excluded.low_balance_thresholds,"
        " low_balance_hysteresis = excluded.low_balance_hysteresis,"
        " auto_topup_enabled = excluded.auto_topup_enabled,"
        " auto_topup_threshold = excluded.auto_topup_threshold,"
        " auto_topup_amount = excluded.auto_topup_amount, closed_at = excluded.closed_at",
        row.tenant_id, row.account_id, row.name, row.primary_mobile, row.alternate_mobile,
        row.email, list(row.low_balance_thresholds), row.low_balance_hysteresis,
        row.auto_topup_enabled, row.auto_topup_threshold, row.auto_topup_amount, row.closed_at,
    )


async def record_status(
    conn: Conn, row: AccountRow, before: AccountStatus | None, reason: str, by: str
) -> None:
    await conn.execute(
        "INSERT INTO account_status_history (tenant_id, account_id, from_status, to_status,"
        " reason, changed_by) VALUES ($1, $2, $3, $4, $5, $6)",
        row.tenant_id, row.account_id, None if before is None else before.value,
        row.status.value, reason, by,
    )


async def status_history(
    conn: Conn, tenant_id: str, account_id: str, before_id: int | None, limit: int
) -> list[asyncpg.Record]:
    """(id, from_status, to_status, reason, changed_at, changed_by), newest first."""
    return list(await conn.fetch(
        "SELECT id, from_status, to_status, reason, changed_at, changed_by"
        " FROM account_status_history WHERE tenant_id = $1 AND account_id = $2"
        " AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        tenant_id, account_id, before_id, limit,
    ))


async def plan_currency(conn: Conn, tenant_id: str, plan_id: str) -> str | None:
    cur = await conn.fetchval(
        "SELECT currency FROM rate_plans WHERE tenant_id = $1 AND plan_id = $2",
        tenant_id, plan_id,
    )
    return None if cur is None else str(cur).strip()


async def tenant_currency(conn: Conn, tenant_id: str) -> str:
    """The tenant's currency (an account's default), or ``NotFound``."""
    cur = await conn.fetchval("SELECT currency FROM tenants WHERE tenant_id = $1", tenant_id)
    if cur is None:
        raise NotFound(f"tenant {tenant_id!r}")
    return str(cur).strip()
