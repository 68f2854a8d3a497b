"""An account's billing: its bill plan, bill cycle day and counts (Postgres adapter).

Enrolling opens the period containing "now" in the tenant's zone; the plan history starts on
that day, so a first period that began before the account joined charges fees only for the
days since. A plan change takes effect now (prorated by days) or at the next boundary; a bill
cycle day change bridges to the new cycle with one shorter or longer period
(``cycles.change_bcd``), charged for its days relative to the period it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

from billing.cycles import BillCycle, BillingPeriod, change_bcd, default_bcd, span_at, start_of_day
from billing.errors import BillingConflict, BillingNotFound, InvalidBillingInput

Effective = Literal["now", "boundary"]


@dataclass(frozen=True, slots=True)
class Enrollment:
    plan_id: str
    bcd: int | None = None
    extensions: int = 0
    seats: int = 0
    tax_codes: tuple[str, ...] | None = None


async def _account(conn: asyncpg.Connection, tenant_id: str, account_id: str) -> Any:
    row = await conn.fetchrow(
        "SELECT a.*, t.timezone, s.default_bcd FROM accounts a"
        " JOIN tenants t USING (tenant_id)"
        " LEFT JOIN billing_settings s USING (tenant_id)"
        " WHERE a.tenant_id = $1 AND a.account_id = $2", tenant_id, account_id,
    )
    if row is None:
        raise BillingNotFound("account", account_id)
    return row


async def _plan(conn: asyncpg.Connection, tenant_id: str, plan_id: str) -> Any:
    row = await conn.fetchrow(
        "SELECT * FROM bill_plans WHERE tenant_id = $1 AND plan_id = $2", tenant_id, plan_id
    )
    if row is None:
        raise BillingNotFound("bill plan", plan_id)
    return row


async def _check_codes(conn: asyncpg.Connection, tenant_id: str, codes: tuple[str, ...] | None
                       ) -> None:
    if not codes:
        return
    found = {r["code"] for r in await conn.fetch(
        "SELECT code FROM tax_labels WHERE tenant_id = $1 AND code = ANY($2)", tenant_id,
        list(codes),
    )}
    missing = sorted(set(codes) - found)
    if missing:
        raise InvalidBillingInput(f"unknown tax label(s): {', '.join(missing)}")


def _counts(extensions: int, seats: int) -> None:
    if extensions < 0 or seats < 0:
        raise InvalidBillingInput("extensions and seats must not be negative")


async def enroll(
    pool: asyncpg.Pool, tenant_id: str, account_id: str, e: Enrollment, now: datetime
) -> Any:
    """Put an account on a bill plan; -> its billing row. Enrolling again is refused (409):
    change the plan instead."""
    _counts(e.extensions, e.seats)
    async with pool.acquire() as conn, conn.transaction():
        acc = await _account(conn, tenant_id, account_id)
        plan = await _plan(conn, tenant_id, e.plan_id)
        if plan["currency"] != acc["currency"]:
            raise InvalidBillingInput(
                f"bill plan {e.plan_id!r} bills in {plan['currency']}, the account in"
                f" {acc['currency']}"
            )
        await _check_codes(conn, tenant_id, e.tax_codes)
        tz = ZoneInfo(acc["timezone"])
        period = BillingPeriod(plan["period"])
        local_today = now.astimezone(tz).date()
        bcd = e.bcd if e.bcd is not None else default_bcd(
            acc["created_at"].astimezone(tz).date(), acc["default_bcd"], period=period
        )
        try:
            cycle = BillCycle(period, bcd, plan["anchor_month"])
        except ValueError as exc:
            raise InvalidBillingInput(str(exc)) from None
        span = span_at(cycle, now, tz)
        row = await conn.fetchrow(
            "INSERT INTO billing_accounts (tenant_id, account_id, plan_id, bcd, extensions,"
            " seats, tax_codes, open_index, open_start_date, open_end_date, open_starts_at,"
            " open_ends_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT DO NOTHING RETURNING *",
            tenant_id, account_id, e.plan_id, bcd, e.extensions, e.seats,
            list(e.tax_codes) if e.tax_codes is not None else None, span.index,
            span.start_date, span.end_date, span.start, span.end,
        )
        if row is None:
            raise BillingConflict(f"account {account_id} is already on a bill plan")
        await _history(conn, tenant_id, account_id, e.plan_id, e.extensions, e.seats,
                       local_today)
        return row


async def _history(conn: asyncpg.Connection, tenant_id: str, account_id: str, plan_id: str,
                   extensions: int, seats: int, from_date: date) -> None:
    await conn.execute(
        "INSERT INTO account_plan_history (tenant_id, account_id, plan_id, extensions, seats,"
        " from_date) VALUES ($1, $2, $3, $4, $5, $6)",
        tenant_id, account_id, plan_id, extensions, seats, from_date,
    )


async def locked(conn: asyncpg.Connection, tenant_id: str, account_id: str) -> Any:
    row = await conn.fetchrow(
        "SELECT ba.*, t.timezone, p.period, p.anchor_month FROM billing_accounts ba"
        " JOIN tenants t USING (tenant_id)"
        " JOIN bill_plans p ON p.tenant_id = ba.tenant_id AND p.plan_id = ba.plan_id"
        " WHERE ba.tenant_id = $1 AND ba.account_id = $2 FOR UPDATE OF ba",
        tenant_id, account_id,
    )
    if row is None:
        raise BillingNotFound("billing account", account_id)
    return row


async def change_plan(
    pool: asyncpg.Pool, tenant_id: str, account_id: str, *, plan_id: str | None = None,
    extensions: int | None = None, seats: int | None = None, effective: Effective = "now",
    now: datetime,
) -> Any:
    """A new plan or new counts, from today (prorated) or from the next period."""
    async with pool.acquire() as conn, conn.transaction():
        ba = await locked(conn, tenant_id, account_id)
        new_plan = await _plan(conn, tenant_id, plan_id or ba["plan_id"])
        if new_plan["period"] != ba["period"] or new_plan["anchor_month"] != ba["anchor_month"]:
            raise InvalidBillingInput(
                "the new plan must have the same billing period as the current one"
                f" ({ba['period']}); move the account to a new bill cycle instead"
            )
        acc = await _account(conn, tenant_id, account_id)
        if new_plan["currency"] != acc["currency"]:
            raise InvalidBillingInput("the new plan bills in another currency")
        ext = ba["extensions"] if extensions is None else extensions
        st = ba["seats"] if seats is None else seats
        _counts(ext, st)
        tz = ZoneInfo(ba["timezone"])
        today = now.astimezone(tz).date()
        when = today if effective == "now" else ba["open_end_date"]
        await _history(conn, tenant_id, account_id, new_plan["plan_id"], ext, st, when)
        if effective == "now":
            await conn.execute(
                "UPDATE billing_accounts SET plan_id = $3, extensions = $4, seats = $5"
                " WHERE tenant_id = $1 AND account_id = $2",
                tenant_id, account_id, new_plan["plan_id"], ext, st,
            )
        return await locked(conn, tenant_id, account_id)


async def change_cycle_day(
    pool: asyncpg.Pool, tenant_id: str, account_id: str, new_bcd: int, now: datetime
) -> Any:
    """Move the account to bill cycle day ``new_bcd``: the open period is stretched or
    shortened to the new cycle's first boundary after today."""
    async with pool.acquire() as conn, conn.transaction():
        ba = await locked(conn, tenant_id, account_id)
        tz = ZoneInfo(ba["timezone"])
        cycle = BillCycle(BillingPeriod(ba["period"]), ba["bcd"], ba["anchor_month"])
        try:
            BillCycle(cycle.period, new_bcd, cycle.anchor_month)
        except ValueError as exc:
            raise InvalidBillingInput(str(exc)) from None
        if new_bcd == ba["bcd"]:
            return ba
        today = now.astimezone(tz).date()
        if not ba["open_start_date"] <= today < ba["open_end_date"]:
            raise BillingConflict("the open period is being billed; try again in a moment")
        t = change_bcd(cycle, today, new_bcd)
        reference = ba["open_reference_days"] or (ba["open_end_date"] - ba["open_start_date"]).days
        await conn.execute(
            "UPDATE billing_accounts SET bcd = $3, open_index = $4, open_end_date = $5,"
            " open_ends_at = $6, open_reference_days = $7"
            " WHERE tenant_id = $1 AND account_id = $2",
            tenant_id, account_id, new_bcd, t.span.index, t.span.end,
            start_of_day(t.span.end, tz), reference,
        )
        return await locked(conn, tenant_id, account_id)
