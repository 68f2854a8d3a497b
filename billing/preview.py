"""The next invoice of an account, before its period ends: the run's own code on the open
period, in a read-only transaction (so a preview equals the invoice the run then makes from
the same ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from billing.composition import UsageGroup
from billing.errors import BillingNotFound
from billing.invoice_build import AccountToBill, Built
from billing.invoice_run import build_batch, cuts_for, usage_for

PREVIEW_SQL = """
SELECT ba.*, a.currency, a.kind, t.timezone
FROM billing_accounts ba
JOIN accounts a ON a.tenant_id = ba.tenant_id AND a.account_id = ba.account_id
JOIN tenants t ON t.tenant_id = ba.tenant_id
WHERE ba.tenant_id = $1 AND ba.account_id = $2
"""


@dataclass(frozen=True, slots=True)
class Preview:
    account: AccountToBill
    built: Built
    cut_seq: int
    billing: Any  # the billing_accounts row
    usage: list[UsageGroup]  # exact micros per destination group


async def preview(pool: asyncpg.Pool, tenant_id: str, account_id: str) -> Preview:
    async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        row = await conn.fetchrow(PREVIEW_SQL, tenant_id, account_id)
        if row is None:
            raise BillingNotFound("billing account", account_id)
        cuts = await cuts_for(conn, [row])
        accounts, built, _ = await build_batch(conn, [row], cuts, lock=False)
        usage = (await usage_for(conn, [row], cuts)).get(0, [])
        return Preview(accounts[0], built[0], cuts[0].cut, row, usage)
