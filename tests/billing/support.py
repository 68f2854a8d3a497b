"""Seeding billing tests: tenants, bill plans, postpaid accounts, and settled usage written
straight into the ledger of record (as settlement writes it), so a test controls exactly which
entries exist and when they arrive."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from billing.enrollment import Enrollment, enroll

_stream = itertools.count(1)
_calls = itertools.count(1)  # call ids unique across ledgers of one database


async def tenant(pool: asyncpg.Pool, tenant_id: str = "t1", currency: str = "USD",
                 timezone: str = "UTC", **settings: Any) -> None:
    await pool.execute(
        "INSERT INTO tenants (tenant_id, currency, timezone) VALUES ($1, $2, $3)",
        tenant_id, currency, timezone,
    )
    if settings:
        cols = ", ".join(settings)
        marks = ", ".join(f"${i + 2}" for i in range(len(settings)))
        await pool.execute(
            f"INSERT INTO billing_settings (tenant_id, {cols}) VALUES ($1, {marks})",
            tenant_id, *settings.values(),
        )


async def rate_plan(pool: asyncpg.Pool, tenant_id: str, plan_id: str, currency: str,
                    groups: dict[str, str]) -> None:
    """A rate plan whose prefixes are named (the destination groups of invoices)."""
    await pool.execute(
        "INSERT INTO rate_plans (tenant_id, plan_id, currency) VALUES ($1, $2, $3)",
        tenant_id, plan_id, currency,
    )
    for prefix, name in groups.items():
        await pool.execute(
            "INSERT INTO rates (tenant_id, plan_id, prefix, description, price_per_minute)"
            " VALUES ($1, $2, $3, $4, 100000)", tenant_id, plan_id, prefix, name,
        )


async def bill_plan(pool: asyncpg.Pool, tenant_id: str, plan_id: str = "pp",
                    currency: str = "USD", **cols: Any) -> None:
    names = ["tenant_id", "plan_id", "currency", *cols]
    marks = ", ".join(f"${i + 1}" for i in range(len(names)))
    await pool.execute(
        f"INSERT INTO bill_plans ({', '.join(names)}) VALUES ({marks})",
        tenant_id, plan_id, currency, *cols.values(),
    )


async def postpaid(pool: asyncpg.Pool, tenant_id: str, account_id: str, *, plan: str = "pp",
                   created: datetime, currency: str = "USD", bcd: int | None = None,
                   now: datetime | None = None, **kw: Any) -> None:
    await pool.execute(
        "INSERT INTO accounts (tenant_id, account_id, currency, kind, credit_limit,"
        " rate_plan_id, created_at) VALUES ($1, $2, $3, 'postpaid', 1000000000, 'rp', $4)",
        tenant_id, account_id, currency, created,
    )
    await enroll(pool, tenant_id, account_id, Enrollment(plan, bcd, **kw), now or created)


@dataclass
class Ledger:
    """Writes ledger entries and call rows per account with gap-free seqs (or not)."""

    pool: asyncpg.Pool
    seqs: dict[tuple[str, str], int] = field(default_factory=dict)

    def next_seq(self, tenant: str, account: str) -> int:
        s = self.seqs.get((tenant, account), 0) + 1
        self.seqs[(tenant, account)] = s
        return s

    async def call(self, tenant: str, account: str, at: datetime, cost: int, *,
                   prefix: str = "4420", seconds: int = 60, settle: bool = True) -> Row:
        """One call: its commit entry (and calls row), charged ``cost`` micros at ``at``."""
        seq = self.next_seq(tenant, account)
        call_id = f"c{next(_calls)}"
        row = Row(tenant, account, seq, "commit", -cost, at, call_id, prefix, seconds)
        if settle:
            await self.write([row])
        return row

    async def write(self, rows: list[Row]) -> None:
        async with self.pool.acquire() as conn:
            await conn.copy_records_to_table(
                "ledger_entries",
                records=[(r.tenant, r.account, r.seq, r.kind, r.amount, 0, 0, f"end:{r.call_id}",
                          r.call_id, f"{next(_stream)}-0", 0, r.at) for r in rows],
                columns=["tenant_id", "account_id", "seq", "kind", "amount", "reserved",
                         "balance_after", "idem_key", "call_id", "stream_id", "bucket", "ts"],
            )
            calls = [r for r in rows if r.kind == "commit"]
            await conn.copy_records_to_table(
                "calls",
                records=[(r.tenant, r.call_id, r.account, "44" + r.prefix, r.prefix, "rp", r.at,
                          r.at, r.at, r.seconds, r.seconds, -r.amount, "ANSWERED", "commit")
                         for r in calls],
                columns=["tenant_id", "call_id", "account_id", "destination", "rate_prefix",
                         "plan_id", "started_at", "answered_at", "ended_at", "duration",
                         "billed_seconds", "cost", "disposition", "settled_by"],
            )


@dataclass(frozen=True)
class Row:
    tenant: str
    account: str
    seq: int
    kind: str
    amount: int
    at: datetime
    call_id: str
    prefix: str
    seconds: int


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


async def bulk_postpaid(
    pool: asyncpg.Pool, tenant_id: str, n: int, calls_per_account: int, *,
    plan: str = "pp", start: datetime, end: datetime, seed: int = 1,
) -> int:
    """``n`` postpaid accounts ``<tenant>-<i>`` on ``plan`` with the open period ``[start,
    end)`` (UTC days, BCD = start's day) and ``calls_per_account`` settled calls each, spread
    over the period, written set-based; -> the total micros charged."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO accounts (tenant_id, account_id, currency, kind, credit_limit,"
            " rate_plan_id, created_at)"
            " SELECT $1, $1 || '-' || i, (SELECT currency FROM tenants WHERE tenant_id = $1),"
            " 'postpaid', 10000000000, 'rp', $3 FROM generate_series(1, $2) i",
            tenant_id, n, start,
        )
        await conn.execute(
            "INSERT INTO billing_accounts (tenant_id, account_id, plan_id, bcd, open_index,"
            " open_start_date, open_end_date, open_starts_at, open_ends_at)"
            " SELECT $1, $1 || '-' || i, $3, extract(day FROM $4::timestamptz)::int, 0,"
            " $4::date, $5::date, $4, $5 FROM generate_series(1, $2) i",
            tenant_id, n, plan, start, end,
        )
        await conn.execute(
            "INSERT INTO account_plan_history (tenant_id, account_id, plan_id, from_date)"
            " SELECT $1, $1 || '-' || i, $3, $4::date FROM generate_series(1, $2) i",
            tenant_id, n, plan, start,
        )
        # Call k of account i: cost and time from a hash of (seed, i, k), inside the period.
        span_s = int((end - start).total_seconds())
        await conn.execute(
            "INSERT INTO calls (tenant_id, call_id, account_id, destination, rate_prefix, plan_id,"
            " started_at, answered_at, ended_at, duration, billed_seconds, cost, disposition,"
            " settled_by)"
            " SELECT $1, 'c-' || i || '-' || k, $1 || '-' || i, '44' || p, p, 'rp', t, t, t,"
            " 60, 60, cost, 'ANSWERED', 'commit' FROM ("
            "  SELECT i, k, CASE WHEN h % 3 = 0 THEN '4477' ELSE '4420' END AS p,"
            "   $4::timestamptz + make_interval(secs => (h % $6)) AS t, 1000 + h % 5000000 AS cost"
            "  FROM (SELECT i, k, abs(hashint8(($5::bigint * 1000003 + i) * 100003 + k)) AS h"
            "        FROM generate_series(1, $2) i, generate_series(1, $3) k) x) y",
            tenant_id, n, calls_per_account, start, seed, span_s,
        )
        await conn.execute(
            "INSERT INTO ledger_entries (tenant_id, account_id, seq, kind, amount, reserved,"
            " balance_after, idem_key, call_id, stream_id, bucket, ts)"
            " SELECT tenant_id, account_id,"
            "  row_number() OVER (PARTITION BY account_id ORDER BY ended_at, call_id), 'commit',"
            "  -cost, 0, 0, 'end:' || call_id, call_id, call_id, 0, ended_at"
            " FROM calls WHERE tenant_id = $1", tenant_id,
        )
        total: int = await conn.fetchval(
            "SELECT coalesce(sum(cost), 0) FROM calls WHERE tenant_id = $1", tenant_id
        )
        return total
