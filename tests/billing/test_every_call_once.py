"""Every settled call of a closed period is on exactly one invoice, whatever order the
ledger arrives in and whenever the run happens (hypothesis over arrival orders and run times);
and the usage line amounts agree with a test-side Decimal computation."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.clock import MovableClock
from billing.invoice_run import InvoiceRun
from tests.billing import support
from tests.billing.support import Ledger, Row, utc
from tests.integration.fixtures import pool_fixture  # noqa: F401

START = utc(2026, 1, 10)
PERIOD_ENDS = [utc(2026, 2, 10), utc(2026, 3, 10), utc(2026, 4, 10)]
_accounts = itertools.count(1)

calls = st.lists(
    st.tuples(st.integers(0, 89 * 24 * 3600 - 1), st.integers(1, 3_000_000),
              st.sampled_from(["4420", "4477"])),
    min_size=1, max_size=25,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=calls, order=st.randoms(use_true_random=False),
       runs=st.lists(st.integers(0, 95 * 24), min_size=1, max_size=6))
async def test_each_call_on_exactly_one_invoice(
    pool: asyncpg.Pool, calls: list[tuple[int, int, str]], order: object, runs: list[int],
) -> None:
    if not await pool.fetchval("SELECT count(*) FROM tenants WHERE tenant_id = 't1'"):
        await support.tenant(pool, "t1", "USD")
        await support.rate_plan(pool, "t1", "rp", "USD", {"4420": "London", "4477": "Mobile"})
        await support.bill_plan(pool, "t1", "pp", "USD")
    account = f"a{next(_accounts)}"
    await support.postpaid(pool, "t1", account, created=START)
    ledger = Ledger(pool)
    rows = [await ledger.call("t1", account, START + timedelta(seconds=s), cost, prefix=p,
                              settle=False) for s, cost, p in sorted(calls)]
    pending = list(rows)
    order.shuffle(pending)  # type: ignore[attr-defined]
    clock = MovableClock(START)
    run = InvoiceRun(pool, clock=clock)
    # Settle in random order, billing at random moments in between; then everything.
    for hour in sorted(runs):
        clock.set(max(clock.now(), START + timedelta(hours=hour)))
        take, pending = pending[: len(pending) // 2], pending[len(pending) // 2:]
        await ledger.write(take)
        await run.run_due()
    await ledger.write(pending)
    clock.set(PERIOD_ENDS[-1] + timedelta(days=62))
    await run.run_due()
    invoices = await pool.fetch(
        "SELECT * FROM invoices WHERE account_id = $1 ORDER BY period_start", account)
    assert sum(i["usage_micros"] for i in invoices) == sum(-r.amount for r in rows)
    billed_calls = await pool.fetchval(
        "SELECT coalesce(sum(calls), 0) FROM invoice_lines l JOIN invoices i USING (invoice_id)"
        " WHERE i.account_id = $1", account)
    assert billed_calls == len(rows)
    # Each line's amount is its group's exact micros rounded half-up once, to cents.
    _check_line_amounts(invoices, rows, await _lines(pool, account))


async def _lines(pool: asyncpg.Pool, account: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        "SELECT i.period_start, i.starts_at, i.ends_at, i.cut_seq, l.kind, l.description,"
        " l.amount, l.calls FROM invoice_lines l JOIN invoices i USING (invoice_id)"
        " WHERE i.account_id = $1", account))


def _check_line_amounts(invoices: list[asyncpg.Record], rows: list[Row],
                        lines: list[asyncpg.Record]) -> None:
    """Independent model: an entry belongs to the first invoice whose cut covers its seq and
    whose period end is after it; lines group by (destination, late)."""
    expected: dict[tuple[object, str, bool], list[int]] = defaultdict(list)
    for r in rows:
        inv = next(i for i in invoices if r.seq <= i["cut_seq"] and r.at < i["ends_at"])
        name = "London" if r.prefix == "4420" else "Mobile"
        expected[(inv["period_start"], name, r.at < inv["starts_at"])].append(-r.amount)
    got = {(ln["period_start"], "London" if "London" in ln["description"] else "Mobile",
            ln["kind"] == "late_usage"): (ln["amount"], ln["calls"]) for ln in lines}
    want = {
        k: (int((Decimal(sum(v)) / Decimal(10_000)).quantize(Decimal(1), ROUND_HALF_UP)), len(v))
        for k, v in expected.items()
    }
    assert got == want
