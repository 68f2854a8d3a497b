"""Reconciliation: does every live Redis balance equal what the Postgres ledger says it is?

A Redis account at ``seq`` N must hold exactly the sum of its ledger entries 1..N. Reading the
balance and seq together (one HMGET, atomic) makes the comparison exact even while traffic flows:
entries after N are simply not counted. Entries not yet settled look like gaps, so settlement is
drained first when one is given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from redis.asyncio import Redis

from charging_engine.balance.keys import AccountKeys
from charging_engine.ledger.settlement import Settlement

log = logging.getLogger("charging_engine.reconcile")

PIPELINE_CHUNK: Final = 10_000  # accounts per Redis pipeline: bounded memory, few round trips
DRAIN_ATTEMPTS: Final = 50

MISSING_IN_REDIS: Final = "missing_in_redis"
LEDGER_GAP: Final = "ledger_gap"  # Postgres lacks entries Redis has applied (unsettled or lost)
REDIS_BEHIND: Final = "redis_behind"  # Postgres has entries past Redis's seq: Redis lost them
BALANCE_MISMATCH: Final = "balance_mismatch"

# Ledger sums per account, counting only entries up to the seq the Redis balance contains.
_LEDGER_SQL: Final = """
SELECT a.tenant_id, a.account_id,
       coalesce(s.total, 0)::bigint AS total, coalesce(s.n, 0) AS n,
       coalesce(s.max_seq, 0) AS max_seq
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS a(tenant_id, account_id, upto)
LEFT JOIN LATERAL (
    SELECT sum(e.amount) FILTER (WHERE a.upto IS NULL OR e.seq <= a.upto) AS total,
           count(*) FILTER (WHERE a.upto IS NULL OR e.seq <= a.upto) AS n,
           max(e.seq) AS max_seq
    FROM ledger_entries e
    WHERE e.tenant_id = a.tenant_id AND e.account_id = a.account_id
) s ON true
"""


@dataclass(frozen=True, slots=True)
class Difference:
    """One account whose Redis state disagrees with the ledger; ``reason`` lists why."""

    tenant: str
    account: str
    redis_balance: int | None
    ledger_balance: int
    redis_seq: int | None
    ledger_seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Ledger:
    total: int  # sum of amounts up to the Redis seq (all entries if Redis has none)
    count: int  # entries up to the Redis seq
    max_seq: int  # highest seq in Postgres


async def reconcile(
    redis: Redis, pool: asyncpg.Pool, buckets: int, settlement: Settlement | None = None
) -> list[Difference]:
    """Compare every Postgres account with Redis; an empty list means they agree."""
    accounts = [
        (r["tenant_id"], r["account_id"])
        for r in await pool.fetch(
            "SELECT tenant_id, account_id FROM accounts ORDER BY tenant_id, account_id"
        )
    ]
    live = await read_live(redis, buckets, accounts)
    ledger = await _ledger(pool, accounts, live)
    if settlement is not None and _has_gap(accounts, live, ledger):
        await drain(settlement)
        ledger = await _ledger(pool, accounts, live)
    out: list[Difference] = []
    for acc in accounts:
        diff = _compare(acc, live[acc], ledger[acc])
        if diff is not None:
            out.append(diff)
    if out:
        log.warning("reconcile: %d of %d accounts differ", len(out), len(accounts))
    return out


async def drain(settlement: Settlement, attempts: int = DRAIN_ATTEMPTS) -> None:
    """Settle everything readable now (bounded, in case writers keep appending)."""
    for _ in range(attempts):
        if await settlement.drain_once() == 0:
            return


async def read_live(
    redis: Redis, buckets: int, accounts: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int] | None]:
    """(balance, seq) of each account in Redis, or None when its hash is missing."""
    out: dict[tuple[str, str], tuple[int, int] | None] = {}
    for start in range(0, len(accounts), PIPELINE_CHUNK):
        chunk = accounts[start : start + PIPELINE_CHUNK]
        pipe = redis.pipeline(transaction=False)
        for tenant, account in chunk:
            pipe.hmget(AccountKeys.of(tenant, account, buckets).account_key, ["balance", "seq"])
        for acc, (balance, seq) in zip(chunk, await pipe.execute(), strict=True):
            out[acc] = None if balance is None and seq is None else (_int(balance), _int(seq))
    return out


async def _ledger(
    pool: asyncpg.Pool,
    accounts: Sequence[tuple[str, str]],
    live: dict[tuple[str, str], tuple[int, int] | None],
) -> dict[tuple[str, str], _Ledger]:
    upto = [s[1] if (s := live[a]) is not None else None for a in accounts]
    rows = await pool.fetch(
        _LEDGER_SQL, [a[0] for a in accounts], [a[1] for a in accounts], upto
    )
    return {
        (r["tenant_id"], r["account_id"]): _Ledger(r["total"], r["n"], r["max_seq"])
        for r in rows
    }


def _has_gap(
    accounts: Sequence[tuple[str, str]],
    live: dict[tuple[str, str], tuple[int, int] | None],
    ledger: dict[tuple[str, str], _Ledger],
) -> bool:
    return any((state := live[a]) is not None and ledger[a].count < state[1] for a in accounts)


def _compare(
    acc: tuple[str, str], state: tuple[int, int] | None, led: _Ledger
) -> Difference | None:
    if state is None:
        return Difference(acc[0], acc[1], None, led.total, None, led.max_seq, MISSING_IN_REDIS)
    balance, seq = state
    reasons = []
    if led.count != seq:
        reasons.append(LEDGER_GAP)
    if led.max_seq > seq:
        reasons.append(REDIS_BEHIND)
    if led.total != balance:
        reasons.append(BALANCE_MISMATCH)
    if not reasons:
        return None
    return Difference(acc[0], acc[1], balance, led.total, seq, led.max_seq, ", ".join(reasons))


def _int(value: Any) -> int:
    return int(value) if value is not None else 0
