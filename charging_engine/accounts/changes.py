"""Account changes: the Postgres record first, then Redis, in that order under a row lock.

Each change runs in one Postgres transaction that locks the account row, writes the record,
the status history and the audit row, then applies what Redis enforces (``ce_provision``:
credit and status; ``ce_thresholds``: alert lines) and commits. Concurrent changes of one
account therefore reach Redis in the order they reach Postgres, and a Redis failure rolls the
record back (the caller gets the Redis error and may retry). Only if the commit itself fails
after Redis took the change is Redis ahead; repeating the change repairs it. After a commit
that touched the catalogue, ``on_catalog_change`` runs, so this process rates with it at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

import asyncpg

from charging_engine.account_status import AccountStatus
from charging_engine.accounts import record
from charging_engine.accounts.errors import (
    AccountClosed,
    AccountExists,
    BalanceNotZero,
    InvalidInput,
    NotFound,
)
from charging_engine.accounts.record import AccountKind, AccountRow
from charging_engine.accounts.rules import (
    check_currency,
    check_id,
    check_kind,
    check_non_negative,
    check_status,
    check_thresholds,
)
from charging_engine.audit import Actor, record_change
from charging_engine.balance.store import BalanceStore

REDIS_TIMEOUT_S: Final = 5.0
_NOT_NULL: Final = frozenset({
    "kind", "credit_limit", "min_balance", "name", "low_balance_thresholds",
    "low_balance_hysteresis",
})

Clock = Callable[[], int]  # epoch milliseconds, as the charging service's clock
CatalogHook = Callable[[], Awaitable[object]]


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET
"""An ``AccountPatch`` field left out: unchanged (``None`` clears a nullable field)."""


@dataclass(frozen=True, slots=True)
class NewAccount:
    account_id: str
    kind: AccountKind = AccountKind.PREPAID
    currency: str | None = None  # default: the tenant's
    credit_limit: int = 0
    min_balance: int = 0
    rate_plan_id: str | None = None
    status: AccountStatus = AccountStatus.ACTIVE
    name: str = ""
    primary_mobile: str | None = None
    alternate_mobile: str | None = None
    email: str | None = None
    low_balance_thresholds: tuple[int, ...] = ()
    low_balance_hysteresis: int | None = None  # default: a tenth of the highest line


@dataclass(frozen=True, slots=True)
class AccountPatch:
    """Only the fields given change; ``None`` clears the nullable ones."""

    kind: AccountKind | _Unset | None = UNSET
    credit_limit: int | _Unset | None = UNSET
    min_balance: int | _Unset | None = UNSET
    rate_plan_id: str | _Unset | None = UNSET
    name: str | _Unset | None = UNSET
    primary_mobile: str | _Unset | None = UNSET
    alternate_mobile: str | _Unset | None = UNSET
    email: str | _Unset | None = UNSET
    low_balance_thresholds: tuple[int, ...] | _Unset | None = UNSET
    low_balance_hysteresis: int | _Unset | None = UNSET

    def given(self) -> dict[str, Any]:
        """The fields given, by name."""
        return {
            f.name: getattr(self, f.name) for f in fields(self)
            if getattr(self, f.name) is not UNSET
        }


@dataclass(frozen=True, slots=True)
class AutoTopupSettings:
    """Stored for the billing work: top up ``amount`` when the balance falls below
    ``threshold``."""

    enabled: bool
    threshold: int | None = None
    amount: int | None = None


def watched(row: AccountRow) -> tuple[int, ...]:
    """The lines Redis watches: the alert thresholds, and the auto top-up's, whose crossing
    (an alert) is what triggers a top-up."""
    lines = set(row.low_balance_thresholds)
    if row.auto_topup_enabled and row.auto_topup_threshold is not None:
        lines.add(row.auto_topup_threshold)
    return tuple(sorted(lines))


def default_hysteresis(thresholds: tuple[int, ...]) -> int:
    """A tenth of the highest line: a balance hovering at a line does not fire again."""
    return max((abs(t) for t in thresholds), default=0) // 10


def _lines(thresholds: tuple[int, ...]) -> tuple[int, ...]:
    check_thresholds(thresholds)
    return tuple(sorted(set(thresholds)))


def _same_definition(a: AccountRow, b: AccountRow) -> bool:
    skip = ("created_at", "updated_at", "closed_at")
    return all(getattr(a, f.name) == getattr(b, f.name) for f in fields(a) if f.name not in skip)


async def _check_plan(conn: asyncpg.Connection, row: AccountRow) -> None:
    if row.rate_plan_id is None:
        return
    cur = await record.plan_currency(conn, row.tenant_id, row.rate_plan_id)
    if cur is None:
        raise InvalidInput(f"rate plan {row.rate_plan_id!r} does not exist")
    if cur != row.currency:
        raise InvalidInput(
            f"rate plan {row.rate_plan_id!r} is in {cur}, the account in {row.currency}"
        )


class AccountChanges:
    """Create, change, suspend and close accounts; every change audited under ``Actor``."""

    def __init__(
        self, pool: asyncpg.Pool, store: BalanceStore, *, clock: Clock,
        on_catalog_change: CatalogHook,
    ) -> None:
        self.pool = pool
        self.store = store
        self.clock = clock
        self.on_catalog_change = on_catalog_change

    async def _apply(self, old: AccountRow | None, new: AccountRow) -> None:
        """Push to Redis what it enforces, if it changed (or Redis lost the account)."""
        store, now = self.store, self.clock()
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            missing = await store.state(new.tenant_id, new.account_id) is None
            if missing or old is None or (old.currency, old.redis_credit, old.status) != (
                new.currency, new.redis_credit, new.status
            ):
                await store.provision(
                    new.tenant_id, new.account_id, currency=new.currency,
                    credit_limit=new.redis_credit, status=new.status.value, now_ms=now,
                    idem_key=f"admin:{uuid.uuid4().hex}",
                )
            if missing or old is None or (watched(old), old.low_balance_hysteresis) != (
                watched(new), new.low_balance_hysteresis
            ):
                await store.set_thresholds(
                    new.tenant_id, new.account_id, thresholds=list(watched(new)),
                    hysteresis=new.low_balance_hysteresis, now_ms=now,
                )

    async def create(
        self, actor: Actor, tenant_id: str, new: NewAccount
    ) -> tuple[AccountRow, bool]:
        """-> (account, created). Repeating an identical create (a retry) answers the account."""
        check_id("tenant_id", tenant_id)
        check_id("account_id", new.account_id)
        if new.rate_plan_id is not None:
            check_id("rate_plan_id", new.rate_plan_id)
        if new.currency is not None:
            check_currency(new.currency)
        status, kind = check_status(new.status), check_kind(new.kind)
        if status is AccountStatus.TERMINATED:
            raise InvalidInput("an account cannot be created terminated")
        check_non_negative(credit_limit=new.credit_limit, min_balance=new.min_balance,
                           low_balance_hysteresis=new.low_balance_hysteresis)
        thresholds = _lines(new.low_balance_thresholds)
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            currency = new.currency or await record.tenant_currency(conn, tenant_id)
            row = AccountRow(
                tenant_id=tenant_id, account_id=new.account_id, currency=currency,
                kind=kind, status=status,
                credit_limit=new.credit_limit, min_balance=new.min_balance,
                rate_plan_id=new.rate_plan_id, created_at=now, updated_at=now, name=new.name,
                primary_mobile=new.primary_mobile, alternate_mobile=new.alternate_mobile,
                email=new.email, low_balance_thresholds=thresholds,
                low_balance_hysteresis=new.low_balance_hysteresis
                if new.low_balance_hysteresis is not None else default_hysteresis(thresholds),
                auto_topup_enabled=False, auto_topup_threshold=None, auto_topup_amount=None,
                closed_at=None,
            )
            await _check_plan(conn, row)
            if not await record.insert(conn, row):
                existing = await record.get(conn, row.tenant_id, row.account_id, lock=True)
                if existing is None or not _same_definition(existing, row):
                    raise AccountExists(row.account_id)
                await self._apply(None, existing)
                return existing, False
            stored = await record.get(conn, row.tenant_id, row.account_id)
            assert stored is not None
            await record.record_status(conn, stored, None, "created", actor.key_id)
            await record_change(conn, actor, tenant_id, "account.create",
                                f"account:{row.account_id}", None, stored.audit())
            await self._apply(None, stored)
        await self.on_catalog_change()
        return stored, True

    async def _change(
        self, actor: Actor, tenant_id: str, account_id: str, action: str,
        changes: dict[str, Any], *, reason: str | None = None, closing: bool = False,
    ) -> AccountRow:
        async with self.pool.acquire() as conn, conn.transaction():
            old = await record.get(conn, tenant_id, account_id, lock=True)
            if old is None:
                raise NotFound.account(account_id)
            if old.status is AccountStatus.TERMINATED:
                if closing:
                    return old
                raise AccountClosed(account_id)
            new = old.with_changes(**changes)
            if closing:
                await self._check_empty(old)
            if new.rate_plan_id != old.rate_plan_id:
                await _check_plan(conn, new)
            if new == old:
                return old
            await record.save(conn, old, new)
            if new.status != old.status:
                await record.record_status(conn, new, old.status, reason or "", actor.key_id)
            await record_change(conn, actor, tenant_id, action, f"account:{account_id}",
                                old.audit(), new.audit())
            await self._apply(old, new)
            stored = await record.get(conn, tenant_id, account_id)
            assert stored is not None
        await self.on_catalog_change()
        return stored

    async def _check_empty(self, row: AccountRow) -> None:
        state = await self.store.state(row.tenant_id, row.account_id)
        if state is not None and (state.balance != 0 or state.reserved != 0):
            raise BalanceNotZero(state.balance, state.reserved, row.currency)

    async def update(
        self, actor: Actor, tenant_id: str, account_id: str, patch: AccountPatch
    ) -> AccountRow:
        changes = patch.given()
        for name, value in changes.items():
            if value is None and name in _NOT_NULL:
                raise InvalidInput(f"{name} cannot be null")
        if changes.get("rate_plan_id") is not None:
            check_id("rate_plan_id", changes["rate_plan_id"])
        if changes.get("kind") is not None:
            changes["kind"] = check_kind(changes["kind"])
        check_non_negative(**{
            name: changes.get(name)
            for name in ("credit_limit", "min_balance", "low_balance_hysteresis")
        })
        if "low_balance_thresholds" in changes:
            lines = _lines(changes["low_balance_thresholds"])
            changes["low_balance_thresholds"] = lines
            if "low_balance_hysteresis" not in changes:
                changes["low_balance_hysteresis"] = default_hysteresis(lines)
        return await self._change(actor, tenant_id, account_id, "account.update", changes)

    async def change_status(
        self, actor: Actor, tenant_id: str, account_id: str, status: AccountStatus, reason: str
    ) -> AccountRow:
        """Suspend, bar or reactivate (closing is ``close``: it needs a zero balance)."""
        status = check_status(status)
        if status is AccountStatus.TERMINATED:
            raise InvalidInput("close the account to terminate it")
        return await self._change(
            actor, tenant_id, account_id, "account.status", {"status": status}, reason=reason
        )

    async def close(
        self, actor: Actor, tenant_id: str, account_id: str, reason: str
    ) -> AccountRow:
        """Terminate an account whose balance and reservations are zero; final, and a repeat
        answers the closed account."""
        return await self._change(
            actor, tenant_id, account_id, "account.close",
            {"status": AccountStatus.TERMINATED, "closed_at": datetime.now(UTC)},
            reason=reason, closing=True,
        )

    async def set_auto_topup(
        self, actor: Actor, tenant_id: str, account_id: str, settings: AutoTopupSettings
    ) -> AccountRow:
        if settings.enabled and (settings.threshold is None or not settings.amount):
            raise InvalidInput(
                "an enabled auto top-up needs a threshold and an amount above zero"
            )
        if settings.amount is not None and settings.amount <= 0:
            raise InvalidInput("amount must be above zero")
        return await self._change(actor, tenant_id, account_id, "account.auto_topup", {
            "auto_topup_enabled": settings.enabled,
            "auto_topup_threshold": settings.threshold,
            "auto_topup_amount": settings.amount,
        })

    async def resync_thresholds(self) -> int:
        """Re-send every account's alert lines to Redis (after a Redis rebuild lost them);
        unchanged lines keep their armed state. -> accounts sent."""
        rows = await self.pool.fetch(
            "SELECT tenant_id, account_id, low_balance_thresholds, low_balance_hysteresis,"
            " auto_topup_enabled, auto_topup_threshold FROM account_details"
            " WHERE cardinality(low_balance_thresholds) > 0 OR auto_topup_enabled"
        )
        now = self.clock()
        for r in rows:
            lines = set(r["low_balance_thresholds"])
            if r["auto_topup_enabled"] and r["auto_topup_threshold"] is not None:
                lines.add(r["auto_topup_threshold"])
            await self.store.set_thresholds(
                r["tenant_id"], r["account_id"], thresholds=sorted(lines),
                hysteresis=r["low_balance_hysteresis"], now_ms=now,
            )
        return len(rows)
