"""The invoice run SIGKILLed in the middle of 1,000 accounts, with two run processes at once,
then run again: one invoice per account and period, every call on exactly one invoice,
numbers gapless and unique per tenant."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.billing import support
from tests.billing.support import utc
from tests.e2e.support import eventually
from tests.integration.fixtures import pool_fixture  # noqa: F401

NOW = "2026-02-15T01:00:00+00:00"


def bill(redis_url: str, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "charging_server", "bill", "--now", NOW, "--batch", "7"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )


async def test_sigkill_mid_run_then_rerun(
    pool: asyncpg.Pool, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    totals = {}
    for tenant, cur in (("ta", "USD"), ("tb", "EUR")):
        await support.tenant(pool, tenant, cur)
        await support.bill_plan(pool, tenant, "pp", cur, plan_fee=500)
        totals[tenant] = await support.bulk_postpaid(
            pool, tenant, 500, 6, start=utc(2026, 1, 15), end=utc(2026, 2, 15),
        )
    log = tmp_path / "bill.log"
    first, second = bill(redis_url, database_url, log), bill(redis_url, database_url, log)

    async def some_billed() -> bool:
        if first.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: {log.read_text()}")
        return bool(await pool.fetchval("SELECT count(*) FROM invoices") >= 50)

    await eventually(some_billed, 60, "the first invoices")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert second.wait(120) == 0, log.read_text()
    midway = await pool.fetchval("SELECT count(*) FROM invoices")
    again = [bill(redis_url, database_url, log) for _ in range(2)]
    for p in again:
        assert p.wait(120) == 0, log.read_text()

    rows = await pool.fetch("SELECT * FROM invoices WHERE kind = 'invoice'")
    assert len(rows) == 1000 and midway <= 1000
    assert len({(r["tenant_id"], r["account_id"], r["period_start"]) for r in rows}) == 1000
    for tenant in totals:
        mine = [r for r in rows if r["tenant_id"] == tenant]
        assert all(r["status"] == "finalized" for r in mine)
        seqs = sorted(r["number_seq"] for r in mine)
        assert seqs == list(range(1, 501)), "numbers must be gapless from 1"
        assert len({r["number"] for r in mine}) == 500
        # Every call is on exactly one invoice: the billed micros add up to all calls.
        assert sum(r["usage_micros"] for r in mine) == totals[tenant]
    per_line = await pool.fetchval(
        "SELECT sum(calls) FROM invoice_lines l JOIN invoices i USING (invoice_id)"
    )
    assert per_line == 1000 * 6
