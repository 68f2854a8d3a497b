"""Account changes: the Postgres record first, then Redis, in that order under a row lock.

Each change runs in one Postgres transaction that locks the account row, writes the record,
the status history and the audit row, then applies what Redis enforces (``ce_provision``:
credit and status; ``ce_thresholds``: alert lines) and commits. Concurrent changes of one
account therefore reach Redis in the order they reach Postgres, and a Redis failure rolls the
record back (the client gets a 503 and may retry). Only if the commit itself fails after Redis
took the change is Redis ahead; re-sending the request repairs it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg

from admin_api.accounts import repo
from admin_api.accounts.repo import AccountRow
from admin_api.accounts.schemas import AccountCreate, AccountUpdate, AutoTopup
from admin_api.audit import record_change
from admin_api.auth import Scope
from admin_api.context import AdminContext
from admin_api.problems import ExtendedProblem, conflict, invalid, not_found
from charging_engine.money import format_amount

REDIS_TIMEOUT_S: Final = 5.0
_NOT_NULL: Final = frozenset({
    "kind", "credit_limit", "min_balance", "name", "low_balance_thresholds",
    "low_balance_hysteresis",
})


def default_hysteresis(thresholds: tuple[int, ...]) -> int:
    """A tenth of the highest line: a balance hovering at a line does not fire again."""
    return max((abs(t) for t in thresholds), default=0) // 10


async def _tenant_currency(conn: asyncpg.Connection, tenant_id: str) -> str:
    cur = await conn.fetchval("SELECT currency FROM tenants WHERE tenant_id = $1", tenant_id)
    if cur is None:
        raise not_found(f"tenant {tenant_id!r}")
    return str(cur).strip()


async def _check_plan(conn: asyncpg.Connection, row: AccountRow) -> None:
    if row.rate_plan_id is None:
        return
    cur = await repo.plan_currency(conn, row.tenant_id, row.rate_plan_id)
    if cur is None:
        raise invalid(f"rate plan {row.rate_plan_id!r} does not exist")
    if cur != row.currency:
        raise invalid(
            f"rate plan {row.rate_plan_id!r} is in {cur}, the account in {row.currency}"
        )


async def _apply(
    ctx: AdminContext, old: AccountRow | None, new: AccountRow, *, force: bool = False
) -> None:
    """Push to Redis what it enforces, if it changed (or Redis lost the account)."""
    store, now = ctx.store, ctx.now_ms()
    async with asyncio.timeout(REDIS_TIMEOUT_S):
        missing = await store.state(new.tenant_id, new.account_id) is None
        if force or missing or old is None or (old.currency, old.redis_credit, old.status) != (
            new.currency, new.redis_credit, new.status
        ):
            await store.provision(
                new.tenant_id, new.account_id, currency=new.currency,
                credit_limit=new.redis_credit, status=new.status, now_ms=now,
                idem_key=f"admin:{uuid.uuid4().hex}",
            )
        if force or missing or old is None or (
            old.low_balance_thresholds, old.low_balance_hysteresis
        ) != (new.low_balance_thresholds, new.low_balance_hysteresis):
            await store.set_thresholds(
                new.tenant_id, new.account_id, thresholds=list(new.low_balance_thresholds),
                hysteresis=new.low_balance_hysteresis, now_ms=now,
            )


def _same_definition(a: AccountRow, b: AccountRow) -> bool:
    skip = ("created_at", "updated_at", "closed_at")
    return all(getattr(a, f.name) == getattr(b, f.name) for f in fields(a) if f.name not in skip)


async def create(ctx: AdminContext, scope: Scope, body: AccountCreate) -> tuple[AccountRow, bool]:
    """-> (account, created). Re-sending an identical create (a retry) answers the account."""
    thresholds = tuple(sorted(set(body.low_balance_thresholds)))
    now = datetime.now(UTC)
    async with ctx.pool.acquire() as conn, conn.transaction():
        currency = body.currency or await _tenant_currency(conn, scope.tenant_id)
        row = AccountRow(
            tenant_id=scope.tenant_id, account_id=body.account_id, currency=currency,
            kind=body.kind, status=body.status, credit_limit=body.credit_limit or 0,
            min_balance=body.min_balance or 0, rate_plan_id=body.rate_plan_id,
            created_at=now, updated_at=now, name=body.name, primary_mobile=body.primary_mobile,
            alternate_mobile=body.alternate_mobile, email=body.email,
            low_balance_thresholds=thresholds,
            low_balance_hysteresis=body.low_balance_hysteresis
            if body.low_balance_hysteresis is not None else default_hysteresis(thresholds),
            auto_topup_enabled=False, auto_topup_threshold=None, auto_topup_amount=None,
            closed_at=None,
        )
        await _check_plan(conn, row)
        if not await repo.insert(conn, row):
            existing = await repo.get(conn, row.tenant_id, row.account_id, lock=True)
            if existing is None or not _same_definition(existing, row):
                raise conflict("account_exists", f"account {row.account_id!r} already exists")
            await _apply(ctx, None, existing)
            return existing, False
        stored = await repo.get(conn, row.tenant_id, row.account_id)
        assert stored is not None
        await repo.record_status(conn, stored, None, "created", scope.caller.key_id)
        await record_change(conn, scope.caller, scope.tenant_id, "account.create",
                            f"account:{row.account_id}", None, stored.audit())
        await _apply(ctx, None, stored)
    await ctx.refresher.refresh()
    return stored, True


async def _change(
    ctx: AdminContext, scope: Scope, account_id: str, action: str, changes: dict[str, Any],
    *, reason: str | None = None, closing: bool = False,
) -> AccountRow:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await repo.get(conn, scope.tenant_id, account_id, lock=True)
        if old is None:
            raise not_found(f"account {account_id!r}")
        if old.status == "terminated":
            if closing:
                return old
            raise conflict("account_closed", f"account {account_id!r} is closed")
        new = old.with_changes(**changes)
        if closing:
            await _check_empty(ctx, old)
        if new.rate_plan_id != old.rate_plan_id:
            await _check_plan(conn, new)
        if new == old:
            return old
        await repo.save(conn, old, new)
        if new.status != old.status:
            await repo.record_status(conn, new, old.status, reason or "", scope.caller.key_id)
        await record_change(conn, scope.caller, scope.tenant_id, action,
                            f"account:{account_id}", old.audit(), new.audit())
        await _apply(ctx, old, new)
        stored = await repo.get(conn, scope.tenant_id, account_id)
        assert stored is not None
    await ctx.refresher.refresh()
    return stored


async def _check_empty(ctx: AdminContext, row: AccountRow) -> None:
    state = await ctx.store.state(row.tenant_id, row.account_id)
    if state is not None and (state.balance != 0 or state.reserved != 0):
        raise ExtendedProblem(
            409, "balance_not_zero",
            "withdraw or adjust the balance to zero, and let calls end, before closing",
            balance=format_amount(state.balance, row.currency),
            reserved=format_amount(state.reserved, row.currency),
        )


async def update(
    ctx: AdminContext, scope: Scope, account_id: str, body: AccountUpdate
) -> AccountRow:
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name in _NOT_NULL:
            raise invalid(f"{name} cannot be null")
        changes[name] = value
    if "low_balance_thresholds" in changes:
        lines = tuple(sorted(set(changes["low_balance_thresholds"])))
        changes["low_balance_thresholds"] = lines
        if "low_balance_hysteresis" not in changes:
            changes["low_balance_hysteresis"] = default_hysteresis(lines)
    return await _change(ctx, scope, account_id, "account.update", changes)


async def change_status(
    ctx: AdminContext, scope: Scope, account_id: str, status: str, reason: str
) -> AccountRow:
    return await _change(
        ctx, scope, account_id, "account.status", {"status": status}, reason=reason
    )


async def close(ctx: AdminContext, scope: Scope, account_id: str, reason: str) -> AccountRow:
    return await _change(
        ctx, scope, account_id, "account.close",
        {"status": "terminated", "closed_at": datetime.now(UTC)}, reason=reason, closing=True,
    )


async def set_auto_topup(
    ctx: AdminContext, scope: Scope, account_id: str, body: AutoTopup
) -> AccountRow:
    if body.enabled and (body.threshold is None or not body.amount):
        raise invalid("an enabled auto top-up needs a threshold and an amount above zero")
    if body.amount == 0:
        raise invalid("amount must be above zero")
    return await _change(ctx, scope, account_id, "account.auto_topup", {
        "auto_topup_enabled": body.enabled, "auto_topup_threshold": body.threshold,
        "auto_topup_amount": body.amount,
    })


async def resync_thresholds(ctx: AdminContext) -> int:
    """Re-send every account's alert lines to Redis (after a Redis rebuild lost them);
    unchanged lines keep their armed state. -> accounts sent."""
    rows = await ctx.pool.fetch(
        "SELECT tenant_id, account_id, low_balance_thresholds, low_balance_hysteresis"
        " FROM account_details WHERE cardinality(low_balance_thresholds) > 0"
    )
    now = ctx.now_ms()
    for r in rows:
        await ctx.store.set_thresholds(
            r["tenant_id"], r["account_id"], thresholds=list(r["low_balance_thresholds"]),
            hysteresis=r["low_balance_hysteresis"], now_ms=now,
        )
    return len(rows)
