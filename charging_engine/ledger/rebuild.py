"""Rebuilding live Redis balances from the Postgres ledger, after Redis lost its data.

The ledger is the record: an account's balance is the sum of its entries and its seq the highest
one, so restoring both makes Redis continue numbering where the ledger stops. The idempotency
records of recent settlements and credits are restored too: without them a PBX retrying the end
of a call settled before the loss would be charged twice. Run it with the engines stopped: a
mutation between the read and the restore would be overwritten.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
from redis.asyncio import Redis

from charging_engine.account_status import AccountStatus
from charging_engine.balance.entries import pack_extra
from charging_engine.balance.functions import is_missing_function, load_functions
from charging_engine.balance.keys import AccountKeys
from charging_engine.catalog import Account
from charging_engine.ledger.reconcile import PIPELINE_CHUNK, drain, read_live
from charging_engine.ledger.settlement import Settlement

log = logging.getLogger("charging_engine.rebuild")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

IDEM_TTL_S: Final = 7 * 86_400  # as the engine's default idem_ttl_s
RESTORE_IDEM: Final = "restore"
SETTLE_KINDS: Final = ("commit", "release", "expire")  # remembered as "<cost> <balance>"
# remembered as "<balance>"
CREDIT_KINDS: Final = ("topup", "adjust", "withdraw", "billed", "expiry")

_BALANCES_SQL: Final = """
SELECT a.tenant_id, a.account_id, a.currency, a.credit_limit - a.min_balance AS credit_limit,
       a.status,
       coalesce(s.total, 0)::bigint AS balance, coalesce(s.max_seq, 0) AS seq,
       coalesce(s.n, 0) AS n
FROM accounts a
LEFT JOIN LATERAL (
    SELECT sum(e.amount) AS total, max(e.seq) AS max_seq, count(*) AS n
    FROM ledger_entries e
    WHERE e.tenant_id = a.tenant_id AND e.account_id = a.account_id
) s ON true
ORDER BY a.tenant_id, a.account_id
"""
# Per tenant, so the (tenant_id, ts) index serves it.
_RECENT_IDEM_SQL: Final = """
SELECT account_id, kind, idem_key, amount, balance_after,
       (extract(epoch FROM ts) * 1000)::bigint AS ts_ms
FROM ledger_entries
WHERE tenant_id = $1 AND ts > $2 AND kind = ANY($3::text[])
"""


async def rebuild_balances(
    redis: Redis,
    pool: asyncpg.Pool,
    buckets: int,
    settlement: Settlement | None = None,
    *,
    idem_ttl_s: int = IDEM_TTL_S,
    now_ms: int | None = None,
) -> int:
    """Write every Postgres account's ledger balance and seq into Redis; return how many.

    An account whose live seq is already past the ledger (entries still unsettled, e.g. pending
    with another consumer) is left alone: restoring it would move its seq backwards.
    """
    if settlement is not None:
        await drain(settlement)  # whatever Redis still holds must be in the ledger first
    rows = await pool.fetch(_BALANCES_SQL)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    live = await read_live(redis, buckets, [(r["tenant_id"], r["account_id"]) for r in rows])
    calls: list[tuple[Any, ...]] = []
    restored: set[tuple[str, str]] = set()
    for r in rows:
        state = live[(r["tenant_id"], r["account_id"])]
        if state is not None and state[1] > r["seq"]:
            log.warning(
                "%s/%s is at seq %d in Redis but %d in the ledger: not restored",
                r["tenant_id"], r["account_id"], state[1], r["seq"],
            )
            continue
        if r["n"] != r["seq"]:
            log.warning(
                "ledger of %s/%s has %d entries up to seq %d: restoring anyway",
                r["tenant_id"], r["account_id"], r["n"], r["seq"],
            )
        keys = AccountKeys.of(r["tenant_id"], r["account_id"], buckets).keys(RESTORE_IDEM)
        calls.append((
            "ce_restore", 6, *keys, r["tenant_id"], r["account_id"], now_ms, idem_ttl_s,
            r["balance"], r["seq"], r["currency"], r["credit_limit"], r["status"],
        ))
        restored.add((r["tenant_id"], r["account_id"]))
    for start in range(0, len(calls), PIPELINE_CHUNK):
        await _fcall_all(redis, calls[start : start + PIPELINE_CHUNK])
    records = await _restore_idempotency(redis, pool, buckets, restored, idem_ttl_s, now_ms)
    log.info(
        "restored %d account balances and %d idempotency records from the ledger",
        len(calls), records,
    )
    return len(calls)


async def _restore_idempotency(
    redis: Redis,
    pool: asyncpg.Pool,
    buckets: int,
    accounts: set[tuple[str, str]],
    idem_ttl_s: int,
    now_ms: int,
) -> int:
    """Re-create the records ``ce_settle``/``ce_credit`` keep for ``idem_ttl_s`` (same values,
    remaining TTL, never overwriting one that survived), from the entries still within it."""
    ttl_ms = idem_ttl_s * 1000
    since = _EPOCH + timedelta(milliseconds=now_ms - ttl_ms)
    written = 0
    pipe = redis.pipeline(transaction=False)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        for tenant in sorted({t for t, _ in accounts}):
            kinds = [*SETTLE_KINDS, *CREDIT_KINDS]
            async for r in conn.cursor(_RECENT_IDEM_SQL, tenant, since, kinds, prefetch=5000):
                account = r["account_id"]
                remaining = ttl_ms - (now_ms - r["ts_ms"])
                if (tenant, account) not in accounts or remaining <= 0:
                    continue
                # Ledger entries name the key as the caller did; Redis keeps it per account.
                key = AccountKeys.of(tenant, account, buckets).idem(r["idem_key"])
                if r["kind"] in SETTLE_KINDS:
                    value = f"{-r['amount']} {r['balance_after']}"
                else:
                    value = str(r["balance_after"])
                pipe.set(key, value, px=remaining, nx=True)
                written += 1
                if len(pipe) >= PIPELINE_CHUNK:
                    await pipe.execute()
    if len(pipe):
        await pipe.execute()
    return written


async def provision_account(redis: Redis, buckets: int, account: Account, now_ms: int) -> None:
    """Create the account in Redis (balance 0) or update its credit limit and status."""
    keys = AccountKeys.of(account.tenant_id, account.account_id, buckets).keys(
        f"provision:{uuid.uuid4().hex}"  # each provisioning is a change of its own
    )
    await _fcall_all(redis, [(
        "ce_provision", 6, *keys, account.tenant_id, account.account_id, now_ms, IDEM_TTL_S,
        account.currency, account.credit_limit, AccountStatus(account.status).value,
        pack_extra({}),
    )])


async def _fcall_all(redis: Redis, calls: Sequence[tuple[Any, ...]]) -> None:
    """FCALL each in one pipeline; if Redis lost the library (flush, new node), load it and
    retry only the calls that failed for that reason."""
    pending = list(calls)
    for attempt in (1, 2):
        pipe = redis.pipeline(transaction=False)
        for args in pending:
            pipe.fcall(*args)
        results = await pipe.execute(raise_on_error=False)
        failed = [(a, r) for a, r in zip(pending, results, strict=True) if isinstance(r, Exception)]
        if not failed:
            return
        errors = [r for _, r in failed]
        other = [e for e in errors if not is_missing_function(e)]
        if other or attempt == 2:
            raise (other or errors)[0]
        await load_functions(redis)
        pending = [a for a, _ in failed]
