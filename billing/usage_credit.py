"""Giving a postpaid balance back the usage an invoice billed (Redis, via the engine).

A postpaid account's open-period usage is its negative Redis balance, which the credit limit
bounds. Once an invoice holds that usage, the balance gets exactly the invoiced micros back
(a ``billed`` ledger entry under the invoice's id as idempotency key), so the limit again
covers only what is not yet invoiced. Done after the invoice commits, retried by every run
until it is recorded: Redis answers a repeat ``duplicate``; after Redis forgot the key, the
ledger of record is asked before crediting again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Final

import asyncpg

from charging_engine.balance.store import BalanceStore

log = logging.getLogger("billing.usage_credit")

CONCURRENCY: Final = 64

PENDING_SQL: Final = """
SELECT invoice_id, tenant_id, account_id, usage_micros, created_at FROM invoices
WHERE NOT usage_credited AND kind = 'invoice'
ORDER BY created_at LIMIT $1
"""


async def credit_pending(
    pool: asyncpg.Pool, store: BalanceStore, now: datetime, *, batch: int = 5000
) -> int:
    """Credit every invoice's usage not yet given back; -> how many were credited."""
    done = 0
    sem = asyncio.Semaphore(CONCURRENCY)
    while True:
        rows = await pool.fetch(PENDING_SQL, batch)
        if not rows:
            return done
        credited: list[str] = []

        async def one(r: asyncpg.Record, credited: list[str] = credited) -> None:
            async with sem:
                if await _already(pool, store, r, now):
                    credited.append(r["invoice_id"])
                    return
                res = await store.credit(
                    r["tenant_id"], r["account_id"], kind="billed", amount=r["usage_micros"],
                    idem_key=r["invoice_id"], extra={"invoice": r["invoice_id"]},
                    now_ms=int(now.timestamp() * 1000),
                )
                if res.status in ("ok", "duplicate"):
                    credited.append(r["invoice_id"])
                else:
                    log.warning("usage of invoice %s not credited: %s", r["invoice_id"],
                                res.status)

        await asyncio.gather(*(one(r) for r in rows))
        if credited:
            await pool.execute(
                "UPDATE invoices SET usage_credited = true WHERE invoice_id = ANY($1)", credited
            )
        done += len(credited)
        if len(credited) < len(rows):
            return done  # the rest waits for the next run (Redis refused: logged)


async def _already(
    pool: asyncpg.Pool, store: BalanceStore, r: asyncpg.Record, now: datetime
) -> bool:
    """Past Redis's idempotency window, the ledger says whether the credit happened."""
    if now - r["created_at"] < timedelta(seconds=store.idem_ttl_s // 2):
        return False
    found = await pool.fetchval(
        "SELECT 1 FROM ledger_entries WHERE tenant_id = $1 AND account_id = $2"
        " AND kind = 'billed' AND idem_key = $3", r["tenant_id"], r["account_id"],
        f"billed:{r['invoice_id']}",
    )
    return found is not None
