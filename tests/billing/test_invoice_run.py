"""The invoice run on a real ledger: consolidated usage, fees, the cut, late usage, idempotence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta

import asyncpg
import pytest

from billing.clock import MovableClock
from billing.invoice_run import InvoiceRun
from tests.billing import support
from tests.billing.support import Ledger, utc
from tests.integration.fixtures import pool_fixture  # noqa: F401


@pytest.fixture
async def seeded(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    await support.tenant(pool, "t1", "USD")
    await support.rate_plan(pool, "t1", "rp", "USD", {"4420": "UK London", "4477": "UK mobile"})
    await support.bill_plan(pool, "t1", "pp", "USD", name="Business", plan_fee=1000,
                            payment_terms_days=14)
    await support.postpaid(pool, "t1", "a1", created=utc(2026, 1, 15, 9))
    yield pool


async def lines(pool: asyncpg.Pool, invoice_id: str) -> list[tuple[str, str, int, int]]:
    rows = await pool.fetch(
        "SELECT kind, description, calls, amount FROM invoice_lines WHERE invoice_id = $1"
        " ORDER BY position", invoice_id,
    )
    return [(r["kind"], r["description"], r["calls"], r["amount"]) for r in rows]


async def test_a_period_becomes_one_invoice_with_usage_by_group(seeded: asyncpg.Pool) -> None:
    pool, ledger = seeded, Ledger(seeded)
    await ledger.call("t1", "a1", utc(2026, 1, 20, 10), 1_234_567, prefix="4420")
    await ledger.call("t1", "a1", utc(2026, 2, 1, 10), 2_000_000, prefix="4420")
    await ledger.call("t1", "a1", utc(2026, 2, 3, 10), 505_000, prefix="4477")
    await ledger.call("t1", "a1", utc(2026, 2, 15, 0, 1), 9_000_000, prefix="4477")  # next
    clock = MovableClock(utc(2026, 2, 14, 23, 59))
    run = InvoiceRun(pool, clock=clock)
    assert (await run.run_due()).invoices == 0
    clock.set(utc(2026, 2, 15, 0, 5))
    stats = await run.run_due()
    assert (stats.accounts, stats.invoices) == (1, 1)
    inv = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1",
                              stats.invoice_ids[0])
    assert (inv["period_start"], inv["period_end"]) == (date(2026, 1, 15), date(2026, 2, 15))
    assert inv["due_on"] == date(2026, 2, 15) + timedelta(days=14)
    got = await lines(pool, inv["invoice_id"])
    # UK London: 3.234567 USD -> 323 cents once per line (not 123 + 200 per call)
    assert [(k, c, a) for k, _, c, a in got] == [
        ("usage", 2, 323), ("usage", 1, 51), ("recurring", 0, 1000)
    ]
    assert "UK London" in got[0][1] and "UK mobile" in got[1][1]
    assert inv["total"] == 323 + 51 + 1000
    assert inv["usage_micros"] == 1_234_567 + 2_000_000 + 505_000
    # Run again: nothing more is due, nothing is billed twice.
    assert (await run.run_due()).invoices == 0
    assert await pool.fetchval("SELECT count(*) FROM invoices") == 1


async def test_late_usage_goes_on_the_next_invoice_named_so(seeded: asyncpg.Pool) -> None:
    pool, ledger = seeded, Ledger(seeded)
    await ledger.call("t1", "a1", utc(2026, 2, 1), 1_000_000)
    late = await ledger.call("t1", "a1", utc(2026, 2, 14, 23, 59), 2_000_000, settle=False)
    await ledger.call("t1", "a1", utc(2026, 2, 20), 3_000_000)  # seq 3 settled, 2 not yet
    clock = MovableClock(utc(2026, 2, 15, 1))
    run = InvoiceRun(pool, clock=clock)
    first = await run.run_due()
    inv1 = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1",
                               first.invoice_ids[0])
    # The cut stops before the missing seq 2: only seq 1 is billed.
    assert inv1["cut_seq"] == 1 and inv1["usage_micros"] == 1_000_000
    await ledger.write([late])
    clock.set(utc(2026, 3, 15, 1))
    second = await run.run_due()
    inv2 = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1",
                               second.invoice_ids[0])
    assert inv2["usage_micros"] == 2_000_000 + 3_000_000
    got = await lines(pool, inv2["invoice_id"])
    late_lines = [g for g in got if g[0] == "late_usage"]
    assert len(late_lines) == 1 and late_lines[0][2] == 1 and late_lines[0][3] == 200
    assert "Late usage" in late_lines[0][1]


async def test_a_preview_equals_the_invoice_the_run_makes(seeded: asyncpg.Pool) -> None:
    from billing.preview import preview

    pool, ledger = seeded, Ledger(seeded)
    await pool.execute(
        "INSERT INTO tax_labels (tenant_id, code, name, rate) VALUES ('t1', 'vat', 'VAT', 20)"
    )
    await pool.execute("UPDATE bill_plans SET tax_codes = '{vat}'")
    for day in range(16, 28):
        await ledger.call("t1", "a1", utc(2026, 1, day, 12), 333_333 * day,
                          prefix="4420" if day % 2 else "4477")
    p = await preview(pool, "t1", "a1")
    stats = await InvoiceRun(pool, clock=MovableClock(utc(2026, 2, 15, 0, 1))).run_due()
    inv = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1",
                              stats.invoice_ids[0])
    c = p.built.composed
    assert (c.subtotal, c.tax_total, c.total) == (inv["subtotal"], inv["tax_total"],
                                                  inv["total"])
    got = await pool.fetch("SELECT description, amount, net, tax_amount FROM invoice_lines"
                           " WHERE invoice_id = $1 ORDER BY position", inv["invoice_id"])
    assert [(ln.description, ln.amount, ln.net, ln.tax_amount) for ln in c.lines] == [
        tuple(r) for r in got
    ]
    assert c.tax_total > 0
