"""Money operations, exactly once per Idempotency-Key.

1. The operation is recorded in ``money_operations`` (tenant, key) as ``pending`` before Redis
   is asked; the same key with a different request is refused (409), a completed one is
   answered from the record (even after Redis forgot the key).
2. ``ce_credit`` moves the balance under the same key: concurrent requests with one key
   credit once (Redis answers the others ``duplicate`` with the original balance). Method,
   reference, reason and the key id travel in the ledger entry's ``extra``.
3. The record is completed and the audit row written in one transaction, by whichever
   request completes it first; a crash before that is finished by any retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg

from admin_api.accounts import repo as accounts
from admin_api.audit import record_change
from admin_api.auth import Scope
from admin_api.context import AdminContext
from admin_api.problems import ExtendedProblem, conflict, not_found
from charging_engine.money import format_amount

REDIS_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Operation:
    kind: str  # topup | withdraw | adjust
    amount: int  # signed balance delta, micros
    method: str | None = None
    reference: str | None = None
    reason: str | None = None

    def fingerprint(self, account_id: str) -> str:
        doc = [account_id, self.kind, self.amount, self.method, self.reference, self.reason]
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    record: asyncpg.Record
    currency: str
    replayed: bool  # answered from an earlier request with the same key


_COLUMNS: Final = (
    "tenant_id, idem_key, account_id, kind, amount, method, reference, reason, fingerprint,"
    " status, balance_after, key_id, created_at, completed_at"
)


async def perform(
    ctx: AdminContext, scope: Scope, account_id: str, op: Operation, idem_key: str
) -> Outcome:
    tenant = scope.tenant_id
    account = await accounts.get(ctx.pool, tenant, account_id)
    if account is None:
        raise not_found(f"account {account_id!r}")
    cur = account.currency
    if account.status == "terminated":
        raise conflict("account_closed", f"account {account_id!r} is closed")
    fp = op.fingerprint(account_id)
    row = await ctx.pool.fetchrow(
        "INSERT INTO money_operations (tenant_id, idem_key, account_id, kind, amount, method,"
        " reference, reason, fingerprint, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
        f" $10) ON CONFLICT (tenant_id, idem_key) DO NOTHING RETURNING {_COLUMNS}",
        tenant, idem_key, account_id, op.kind, op.amount, op.method, op.reference, op.reason,
        fp, scope.caller.key_id,
    )
    if row is None:
        row = await ctx.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM money_operations WHERE tenant_id = $1 AND idem_key = $2",
            tenant, idem_key,
        )
        assert row is not None
        if row["fingerprint"] != fp:
            raise conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; use a new key",
            )
        if row["status"] == "ok":
            return Outcome(row, cur, True)
        age = datetime.now(UTC) - row["created_at"]
        if age > timedelta(seconds=ctx.engine.settings.idem_ttl_s):
            # Redis no longer remembers the key: retrying could credit twice.
            raise conflict(
                "idempotency_key_expired",
                "this operation was left unfinished too long ago to retry safely;"
                " check the ledger and use a new key",
            )
    extra = {
        "method": op.method, "reference": op.reference, "reason": op.reason,
        "by": scope.caller.key_id, "idempotency_key": idem_key,
    }
    async with asyncio.timeout(REDIS_TIMEOUT_S):
        res = await ctx.store.credit(
            tenant, account_id, kind=op.kind, amount=op.amount, idem_key=idem_key,
            extra={k: v for k, v in extra.items() if v is not None}, now_ms=ctx.now_ms(),
        )
    if res.status == "unknown_account":
        raise conflict("no_balance_record",
                       "the account has no balance record in Redis; save it again to repair")
    if res.status == "insufficient_funds":
        await ctx.pool.execute(
            "UPDATE money_operations SET status = 'refused' WHERE tenant_id = $1"
            " AND idem_key = $2 AND status = 'pending'", tenant, idem_key,
        )
        raise ExtendedProblem(
            409, "insufficient_funds", "the withdrawal exceeds the available funds",
            available=format_amount(res.available, cur),
        )
    record = await _complete(ctx, scope, account_id, op, idem_key, res.balance)
    return Outcome(record, cur, res.status == "duplicate")


async def _complete(
    ctx: AdminContext, scope: Scope, account_id: str, op: Operation, idem_key: str,
    balance: int,
) -> asyncpg.Record:
    """Mark the operation done; whichever request does it first writes the audit row."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        done = await conn.fetchrow(
            "UPDATE money_operations SET status = 'ok', balance_after = $3,"
            " completed_at = now() WHERE tenant_id = $1 AND idem_key = $2 AND status <> 'ok'"
            f" RETURNING {_COLUMNS}",
            scope.tenant_id, idem_key, balance,
        )
        if done is not None:
            await record_change(
                conn, scope.caller, scope.tenant_id, f"account.{op.kind}",
                f"account:{account_id}", {"balance": balance - op.amount},
                {"balance": balance, "amount": op.amount, "method": op.method,
                 "reference": op.reference, "reason": op.reason, "idempotency_key": idem_key},
            )
            return done
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM money_operations WHERE tenant_id = $1 AND idem_key = $2",
            scope.tenant_id, idem_key,
        )
        assert row is not None
        return row
