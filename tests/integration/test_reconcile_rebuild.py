"""Reconciliation proves Redis agrees with the ledger; a rebuild restores Redis from it."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from charging_engine.account_status import AccountStatus
from charging_engine.balance.entries import pack_extra
from charging_engine.balance.functions import load_functions
from charging_engine.balance.keys import AccountKeys
from charging_engine.catalog import Account, Tenant
from charging_engine.ledger.catalog_repo import upsert_account, upsert_tenant
from charging_engine.ledger.rebuild import provision_account, rebuild_balances
from charging_engine.ledger.reconcile import (
    BALANCE_MISMATCH,
    LEDGER_GAP,
    MISSING_IN_REDIS,
    REDIS_BEHIND,
    Difference,
    reconcile,
)
from charging_engine.ledger.settlement import Settlement

from .drive import BUCKETS, NOW_MS, account_hash, authorize, cdr, fcall, settle, topup
from .fixtures import pool_fixture, redis_fixture  # noqa: F401  (provide "pool", "redis")

ACCOUNTS = [
    Account("acme", "1001", "GBP", "std"),
    Account("acme", "1002", "GBP", "std", credit_limit=20_000_000, kind="postpaid"),
    Account("acme", "1003", "GBP", None, status=AccountStatus.SUSPENDED),
    Account("zeta", "a", "USD", "std"),
    Account("zeta", "b", "USD", "std"),
    Account("zeta", "c", "USD", "std", status=AccountStatus.OUTGOING_SUSPENDED),
]


async def populate(redis: aioredis.Redis, pool: asyncpg.Pool) -> None:
    """Accounts in Postgres and Redis, each with a different history of money movements."""
    await upsert_tenant(pool, Tenant("acme", "Acme", "GBP"))
    await upsert_tenant(pool, Tenant("zeta", "Zeta", "USD"))
    for i, acc in enumerate(ACCOUNTS):
        await upsert_account(pool, acc)
        await provision_account(redis, BUCKETS, acc, NOW_MS + i)
        await topup(redis, acc.tenant_id, acc.account_id, 1_000_000 * (i + 1), "pay")
        if acc.status is AccountStatus.ACTIVE:
            for n in range(i):
                call = f"{acc.account_id}-{n}"
                await authorize(redis, acc.tenant_id, acc.account_id, call, 500_000)
                await settle(redis, acc.tenant_id, acc.account_id, call, 1_000 * (n + 1),
                             extra=cdr())


def settlement(redis: aioredis.Redis, pool: asyncpg.Pool) -> Settlement:
    return Settlement(redis, pool, BUCKETS, "s1")


async def test_clean_after_settling(redis: aioredis.Redis, pool: asyncpg.Pool) -> None:
    await populate(redis, pool)
    assert await settlement(redis, pool).drain_once() > 0
    assert await reconcile(redis, pool, BUCKETS) == []


async def test_unsettled_entries_are_drained_before_judging(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await populate(redis, pool)
    unsettled = await reconcile(redis, pool, BUCKETS)  # without settlement: gaps
    assert {d.account for d in unsettled} == {a.account_id for a in ACCOUNTS}
    assert all(LEDGER_GAP in d.reason for d in unsettled)
    assert await reconcile(redis, pool, BUCKETS, settlement(redis, pool)) == []


async def test_detects_a_tampered_balance(redis: aioredis.Redis, pool: asyncpg.Pool) -> None:
    await populate(redis, pool)
    s = settlement(redis, pool)
    await s.drain_once()
    live = await account_hash(redis, "zeta", "b")
    await redis.hincrby(AccountKeys.of("zeta", "b", BUCKETS).account_key, "balance", 5)
    assert await reconcile(redis, pool, BUCKETS, s) == [
        Difference("zeta", "b", int(live["balance"]) + 5, int(live["balance"]),
                   int(live["seq"]), int(live["seq"]), BALANCE_MISMATCH)
    ]


async def test_detects_missing_and_behind_accounts(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await populate(redis, pool)
    s = settlement(redis, pool)
    await s.drain_once()
    await upsert_account(pool, Account("zeta", "new", "USD", "std"))  # never provisioned
    await redis.delete(AccountKeys.of("acme", "1001", BUCKETS).account_key)
    # Redis "forgets" the last topup of zeta/a, as if restored from an old snapshot.
    key = AccountKeys.of("zeta", "a", BUCKETS).account_key
    seq = int((await account_hash(redis, "zeta", "a"))["seq"])
    await topup(redis, "zeta", "a", 42, "late")
    await s.drain_once()
    await redis.hincrby(key, "balance", -42)
    await redis.hset(key, "seq", seq)

    diffs = {d.account: d for d in await reconcile(redis, pool, BUCKETS, s)}
    assert set(diffs) == {"1001", "new", "a"}
    assert diffs["1001"].reason == MISSING_IN_REDIS
    assert diffs["1001"].redis_balance is None and diffs["1001"].ledger_balance == 1_000_000
    assert diffs["1001"].ledger_seq == 2
    assert diffs["new"] == Difference("zeta", "new", None, 0, None, 0, MISSING_IN_REDIS)
    assert diffs["a"].reason == REDIS_BEHIND  # balance agrees up to seq: only the tail is lost
    assert diffs["a"].ledger_seq == seq + 1


async def test_rebuild_after_flushall_restores_every_balance(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await populate(redis, pool)
    before = {
        (a.tenant_id, a.account_id): await account_hash(redis, a.tenant_id, a.account_id)
        for a in ACCOUNTS
    }
    s = settlement(redis, pool)
    await s.drain_once()
    await redis.flushall()
    await load_functions(redis)

    assert await rebuild_balances(redis, pool, BUCKETS, s, now_ms=NOW_MS) == len(ACCOUNTS)
    for acc in ACCOUNTS:
        after = await account_hash(redis, acc.tenant_id, acc.account_id)
        assert after == before[(acc.tenant_id, acc.account_id)]
        assert after["status"] == acc.status.value
        assert int(after["credit"]) == acc.credit_limit
    assert await reconcile(redis, pool, BUCKETS, s) == []

    # Life goes on: seq continues where the ledger stops and settles without conflicts.
    await topup(redis, "acme", "1001", 3, "after-rebuild")
    assert await s.drain_once() == 1
    assert await reconcile(redis, pool, BUCKETS, s) == []
    assert await pool.fetchval("SELECT count(*) FROM ledger_conflicts") == 0


async def test_retries_after_a_rebuild_are_still_recognised(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await populate(redis, pool)
    s = settlement(redis, pool)
    await s.drain_once()
    await redis.flushall()
    await rebuild_balances(redis, pool, BUCKETS, s, now_ms=NOW_MS + 60_000)
    before = await account_hash(redis, "zeta", "b")  # settled calls b-0..b-3 earlier

    # The PBX retries the end of a call settled before Redis was lost: not charged again.
    res = await fcall(redis, "ce_settle", "zeta", "b", "end:b-3", "b-3", "commit", 4_000, 0,
                      pack_extra({}))
    assert res[0] == b"duplicate" and res[1] == 4_000
    # A retried payment is not credited twice either.
    res = await fcall(redis, "ce_credit", "zeta", "b", "pay", "topup", 5_000_000, pack_extra({}))
    assert res[0] == b"duplicate"
    assert await account_hash(redis, "zeta", "b") == before

    # Records older than the idempotency TTL are not resurrected.
    await redis.flushall()
    await rebuild_balances(redis, pool, BUCKETS, idem_ttl_s=3600, now_ms=NOW_MS + 3_600_001)
    assert await redis.keys("*:i:*") == []


async def test_rebuild_never_moves_an_account_backwards(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await populate(redis, pool)
    await settlement(redis, pool).drain_once()
    await topup(redis, "acme", "1002", 1, "unsettled")  # in Redis, not yet in the ledger
    ahead = await account_hash(redis, "acme", "1002")
    assert await rebuild_balances(redis, pool, BUCKETS) == len(ACCOUNTS) - 1
    assert await account_hash(redis, "acme", "1002") == ahead


async def test_rebuild_settles_pending_entries_first_and_reloads_functions(
    redis: aioredis.Redis, pool: asyncpg.Pool
) -> None:
    await populate(redis, pool)
    before = {a.account_id: await account_hash(redis, a.tenant_id, a.account_id)
              for a in ACCOUNTS}
    s = settlement(redis, pool)
    await redis.hincrby(AccountKeys.of("acme", "1002", BUCKETS).account_key, "balance", 99)
    await redis.function_flush()
    assert await rebuild_balances(redis, pool, BUCKETS, s) == len(ACCOUNTS)
    for acc in ACCOUNTS:
        assert await account_hash(redis, acc.tenant_id, acc.account_id) == before[acc.account_id]
    assert await reconcile(redis, pool, BUCKETS, s) == []


async def test_provision_account_creates_the_live_hash(redis: aioredis.Redis) -> None:
    acc = Account("acme", "9", "EUR", None, credit_limit=7, status=AccountStatus.INACTIVE)
    await provision_account(redis, BUCKETS, acc, NOW_MS)
    assert await account_hash(redis, "acme", "9") == {
        "balance": "0", "reserved": "0", "seq": "1", "currency": "EUR", "credit": "7",
        "status": "inactive",
    }
