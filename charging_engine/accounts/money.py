"""Money operations (top-up, withdrawal, adjustment), exactly once per idempotency key.

1. The operation is recorded in ``money_operations`` (tenant, key) as ``pending`` before Redis
   is asked; the same key with a different request is refused (``IdempotencyKeyReused``), a
   completed one is answered from the record (even after Redis forgot the key).
2. ``ce_credit`` moves the balance under the same key: concurrent requests with one key
   credit once (Redis answers the others ``duplicate`` with the original balance). Method,
   reference, reason and the actor's key id travel in the ledger entry's ``extra``.
3. The record is completed and the audit row written in one transaction, by whichever
   request completes it first; a crash before that is finished by any retry, as long as Redis
   still remembers the key (``idem_ttl_s``); after that a retry is refused as expired.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

import asyncpg

from charging_engine.account_status import AccountStatus
from charging_engine.accounts import record
from charging_engine.accounts.errors import (
    AccountClosed,
    IdempotencyKeyExpired,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidInput,
    NoBalanceRecord,
)
from charging_engine.accounts.rules import check_id
from charging_engine.audit import Actor, record_change
from charging_engine.balance.store import BalanceStore
from charging_engine.ledger.catalog_repo import Conn
from charging_engine.money import MAX_AMOUNT

REDIS_TIMEOUT_S: Final = 5.0
IDEM_KEY_RE: Final = re.compile(r"^[!-~]{1,128}$")  # printable ASCII, no spaces


class OperationKind(StrEnum):
    TOPUP = "topup"  # a payment: credit
    WITHDRAW = "withdraw"  # money handed back: debit, never beyond the available funds
    ADJUST = "adjust"  # a correction either way, with a reason
    EXPIRY = "expiry"  # prepaid money past its validity: debit, never beyond the available funds


@dataclass(frozen=True, slots=True)
class Operation:
    """What to do; build it with ``topup``/``withdrawal``/``adjustment``, which check it."""

    kind: OperationKind
    amount: int  # signed balance delta, micros
    method: str | None = None
    reference: str | None = None
    reason: str | None = None
    valid_until: datetime | None = None  # a top-up's money expires then (billing's validity)

    @classmethod
    def topup(
        cls, amount: int, method: str, reference: str | None = None, note: str | None = None,
        valid_until: datetime | None = None,
    ) -> Operation:
        if amount <= 0:
            raise InvalidInput("amount must be above zero")
        if valid_until is not None and valid_until.tzinfo is None:
            raise InvalidInput("valid_until must carry its time zone")
        return cls(OperationKind.TOPUP, _bounded(amount), method, reference, note, valid_until)

    @classmethod
    def expiry(cls, amount: int, reason: str) -> Operation:
        """``amount`` (micros, above zero) of expired money leaving the balance."""
        if amount <= 0:
            raise InvalidInput("amount must be above zero")
        return cls(OperationKind.EXPIRY, -_bounded(amount), reason=reason)

    @classmethod
    def withdrawal(
        cls, amount: int, reason: str, method: str | None = None, reference: str | None = None
    ) -> Operation:
        if amount <= 0:
            raise InvalidInput("amount must be above zero")
        return cls(OperationKind.WITHDRAW, -_bounded(amount), method, reference, reason)

    @classmethod
    def adjustment(cls, amount: int, reason: str) -> Operation:
        if amount == 0:
            raise InvalidInput("amount must not be zero")
        return cls(OperationKind.ADJUST, _bounded(amount), reason=reason)

    def fingerprint(self, account_id: str) -> str:
        """What a repeat under the same key must match (stable: stored with the record)."""
        doc = [account_id, self.kind.value, self.amount, self.method, self.reference,
               self.reason]  # not valid_until: derived from the time, a retry keeps the first
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def _bounded(amount: int) -> int:
    if abs(amount) > MAX_AMOUNT:
        raise InvalidInput(f"amount must not exceed {MAX_AMOUNT} micros")
    return amount


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """A ``money_operations`` row."""

    tenant_id: str
    idem_key: str
    account_id: str
    kind: OperationKind
    amount: int
    method: str | None
    reference: str | None
    reason: str | None
    fingerprint: str
    status: str  # pending | ok | refused
    balance_after: int | None
    key_id: str
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, r: asyncpg.Record) -> OperationRecord:
        values = dict(r)
        values["kind"] = OperationKind(values["kind"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Outcome:
    operation: OperationRecord
    currency: str
    replayed: bool  # answered from an earlier request with the same key


_COLUMNS: Final = (
    "tenant_id, idem_key, account_id, kind, amount, method, reference, reason, fingerprint,"
    " status, balance_after, key_id, created_at, completed_at"
)


class MoneyOperations:
    """Credit and debit accounts on behalf of an ``Actor``, each once per idempotency key."""

    def __init__(
        self, pool: asyncpg.Pool, store: BalanceStore, *, clock: Callable[[], int],
        idem_ttl_s: int | None = None,
    ) -> None:
        self.pool = pool
        self.store = store
        self.clock = clock
        # How long Redis remembers a key: beyond it, an unfinished operation cannot be retried
        self.idem_ttl_s = store.idem_ttl_s if idem_ttl_s is None else idem_ttl_s

    async def perform(
        self, actor: Actor, tenant_id: str, account_id: str, op: Operation, idem_key: str
    ) -> Outcome:
        if not IDEM_KEY_RE.match(idem_key):
            raise InvalidInput("the idempotency key must be 1-128 printable ASCII characters")
        check_id("tenant_id", tenant_id)
        check_id("account_id", account_id)
        account = await record.require(self.pool, tenant_id, account_id)
        cur = account.currency
        if account.status is AccountStatus.TERMINATED:
            raise AccountClosed(account_id)
        fp = op.fingerprint(account_id)
        row = await self.pool.fetchrow(
            "INSERT INTO money_operations (tenant_id, idem_key, account_id, kind, amount, method,"
            " reference, reason, fingerprint, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
            f" $9, $10) ON CONFLICT (tenant_id, idem_key) DO NOTHING RETURNING {_COLUMNS}",
            tenant_id, idem_key, account_id, op.kind.value, op.amount, op.method, op.reference,
            op.reason, fp, actor.key_id,
        )
        if row is None:
            row = await self._fetch(self.pool, tenant_id, idem_key)
            if row["fingerprint"] != fp:
                raise IdempotencyKeyReused()
            if row["status"] == "ok":
                return Outcome(OperationRecord.of(row), cur, True)
            age = datetime.now(UTC) - row["created_at"]
            if age > timedelta(seconds=self.idem_ttl_s):
                # Redis no longer remembers the key: retrying could credit twice.
                raise IdempotencyKeyExpired()
        extra = {
            "method": op.method, "reference": op.reference, "reason": op.reason,
            "by": actor.key_id, "idempotency_key": idem_key,
            "valid_until": None if op.valid_until is None
            else op.valid_until.astimezone(UTC).isoformat(),
        }
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            res = await self.store.credit(
                tenant_id, account_id, kind=op.kind.value, amount=op.amount, idem_key=idem_key,
                extra={k: v for k, v in extra.items() if v is not None}, now_ms=self.clock(),
            )
        if res.status == "unknown_account":
            raise NoBalanceRecord()
        if res.status == "insufficient_funds":
            await self.pool.execute(
                "UPDATE money_operations SET status = 'refused' WHERE tenant_id = $1"
                " AND idem_key = $2 AND status = 'pending'", tenant_id, idem_key,
            )
            raise InsufficientFunds(res.available, cur)
        done = await self._complete(actor, tenant_id, account_id, op, idem_key, res.balance)
        return Outcome(OperationRecord.of(done), cur, res.status == "duplicate")

    @staticmethod
    async def _fetch(conn: Conn, tenant_id: str, idem_key: str) -> asyncpg.Record:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM money_operations WHERE tenant_id = $1 AND idem_key = $2",
            tenant_id, idem_key,
        )
        assert row is not None  # rows are never deleted
        return row

    async def _complete(
        self, actor: Actor, tenant_id: str, account_id: str, op: Operation, idem_key: str,
        balance: int,
    ) -> asyncpg.Record:
        """Mark the operation done; whichever request does it first writes the audit row."""
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.fetchrow(
                "UPDATE money_operations SET status = 'ok', balance_after = $3,"
                " completed_at = now() WHERE tenant_id = $1 AND idem_key = $2"
                f" AND status <> 'ok' RETURNING {_COLUMNS}",
                tenant_id, idem_key, balance,
            )
            if done is not None:
                await record_change(
                    conn, actor, tenant_id, f"account.{op.kind.value}",
                    f"account:{account_id}", {"balance": balance - op.amount},
                    {"balance": balance, "amount": op.amount, "method": op.method,
                     "reference": op.reference, "reason": op.reason,
                     "idempotency_key": idem_key},
                )
                return done
            return await self._fetch(conn, tenant_id, idem_key)
