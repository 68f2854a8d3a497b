"""Payments on real Postgres: recorded once by Idempotency-Key, allocated oldest due first or
as asked, overpayments to account credit, reversals and refunds reopening invoices; the
allocation rule itself under hypothesis against an independent model."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import payments
from billing.allocation import AllocationError, OpenInvoice, allocate, open_amount
from billing.errors import IdempotencyKeyReused, InvalidBillingInput
from billing.payments import PaymentIn, PaymentUndone
from tests.billing import support
from tests.integration.fixtures import pool_fixture  # noqa: F401

AT = datetime(2026, 7, 1, 12, tzinfo=UTC)
_ids = itertools.count(1)


async def world(pool: asyncpg.Pool) -> None:
    await support.tenant(pool, "t1")
    await support.rate_plan(pool, "t1", "rp", "USD", {"1": "US"})
    await support.bill_plan(pool, "t1", "pp")
    await support.postpaid(pool, "t1", "a1", created=datetime(2026, 1, 1, tzinfo=UTC))


async def invoice(pool: asyncpg.Pool, due: date, amount: int, account: str = "a1",
                  status: str = "finalized") -> str:  # fmt: skip
    """A finalized invoice owing ``amount`` (written as finalization leaves it)."""
    n = next(_ids)
    invoice_id = f"inv_{n:04d}"
    await pool.execute(
        "INSERT INTO invoices (invoice_id, tenant_id, account_id, currency, status, number,"
        " number_seq, issued_on, due_on, subtotal, total, amount_due) VALUES ($1, 't1', $2,"
        " 'USD', $3, $4, $5, $6, $7, $8, $8, $8)",
        invoice_id, account, status, f"INV-{n}", n, due - timedelta(days=14), due, amount,
    )
    return invoice_id


async def pay(pool: asyncpg.Pool, amount: int, key: str, *, account: str = "a1",
              allocations: tuple[tuple[str, int], ...] | None = None,
              method: str = "cash") -> tuple[payments.Payment, bool]:  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        return await payments.record(
            conn, "t1", PaymentIn(account, method, amount, "USD", date(2026, 7, 1), "ref",
                                  "key_1", allocations), idempotency_key=key, at=AT)  # fmt: skip


async def undo(pool: asyncpg.Pool, payment_id: str, refund: bool = False) -> payments.Payment:
    async with pool.acquire() as conn, conn.transaction():
        return await payments.undo(conn, "t1", payment_id, refund=refund, reason="bounced",
                                   at=AT)  # fmt: skip


async def opens(pool: asyncpg.Pool) -> dict[str, tuple[int, str]]:
    rows = await pool.fetch("SELECT o.invoice_id, o.open, i.status FROM invoice_open o"
                            " JOIN invoices i USING (invoice_id) ORDER BY 1")  # fmt: skip
    return {r["invoice_id"]: (r["open"], r["status"]) for r in rows}


async def credit(pool: asyncpg.Pool, account: str = "a1") -> int:
    value: int = await pool.fetchval(
        "SELECT credit_balance FROM billing_accounts WHERE account_id = $1", account)
    return value


async def test_oldest_due_first_partial_and_credit(pool: asyncpg.Pool) -> None:
    await world(pool)
    late = await invoice(pool, date(2026, 6, 15), 3_000)
    early = await invoice(pool, date(2026, 5, 15), 2_000)
    p, new = await pay(pool, 2_500, "k1")
    assert new and p.allocations == ((early, 2_000, True), (late, 500, True))
    assert p.credited == 0
    assert await opens(pool) == {early: (0, "paid"), late: (2_500, "partially_paid")}
    p2, _ = await pay(pool, 4_000, "k2")  # settles the rest, 1,500 left over
    assert p2.allocations == ((late, 2_500, True),) and p2.credited == 1_500
    assert await credit(pool) == 1_500
    assert (await opens(pool))[late] == (0, "paid")
    types = [r["type"] for r in await pool.fetch(
        "SELECT type FROM webhook_events ORDER BY created_at, event_id")]  # fmt: skip
    assert sorted(types) == sorted(["payment.recorded"] * 2 + ["invoice.paid"] * 2)


async def test_explicit_allocation_and_its_refusals(pool: asyncpg.Pool) -> None:
    await world(pool)
    early = await invoice(pool, date(2026, 5, 15), 2_000)
    late = await invoice(pool, date(2026, 6, 15), 3_000)
    p, _ = await pay(pool, 1_000, "k1", allocations=((late, 600),))
    assert p.allocations == ((late, 600, True),) and p.credited == 400  # not to ``early``
    assert await opens(pool) == {early: (2_000, "finalized"), late: (2_400, "partially_paid")}
    for allocations, message in (
        (((late, 2_401),), "owes 2400"),
        (((early, 600), (late, 600)), "exceed the payment"),
        (((early, 1), (early, 1)), "named twice"),
        ((("inv_nope", 1),), "not open"),
    ):
        with pytest.raises(InvalidBillingInput, match=message):
            await pay(pool, 1_000, f"bad-{message}", allocations=allocations)
    with pytest.raises(InvalidBillingInput, match="method"):
        await pay(pool, 1_000, "bad-method", method="bitcoin")
    with pytest.raises(InvalidBillingInput, match="positive"):
        await pay(pool, 0, "bad-zero")
    assert await pool.fetchval("SELECT count(*) FROM payments") == 1  # refusals left nothing


async def test_one_payment_per_key_even_concurrently(pool: asyncpg.Pool) -> None:
    await world(pool)
    inv = await invoice(pool, date(2026, 5, 15), 10_000)
    results = await asyncio.gather(*(pay(pool, 1_000, "same") for _ in range(20)))
    assert sum(new for _, new in results) == 1
    assert len({p.payment_id for p, _ in results}) == 1
    assert (await opens(pool))[inv] == (9_000, "partially_paid")
    with pytest.raises(IdempotencyKeyReused):
        await pay(pool, 1_001, "same")


async def test_concurrent_payments_never_over_allocate(pool: asyncpg.Pool) -> None:
    await world(pool)
    a = await invoice(pool, date(2026, 5, 15), 5_000)
    b = await invoice(pool, date(2026, 6, 15), 5_000)
    done = await asyncio.gather(*(pay(pool, 1_300, f"k{i}") for i in range(10)))
    allocated = sum(amount for p, _ in done for _, amount, _ in p.allocations)
    assert allocated == 10_000 and await credit(pool) == 13_000 - 10_000
    assert await opens(pool) == {a: (0, "paid"), b: (0, "paid")}


async def test_reversal_reopens_and_takes_back_credit(pool: asyncpg.Pool) -> None:
    await world(pool)
    inv = await invoice(pool, date(2026, 5, 15), 2_000)
    p, _ = await pay(pool, 3_000, "cheque")
    assert await credit(pool) == 1_000
    # an invoice consumed 400 of the credit meanwhile
    await pool.execute("UPDATE billing_accounts SET credit_balance = 600")
    back = await undo(pool, p.payment_id)
    assert back.status == "reversed" and back.shortfall == 400
    assert back.allocations == ((inv, 2_000, False),)
    assert await opens(pool) == {inv: (2_000, "finalized")} and await credit(pool) == 0
    with pytest.raises(PaymentUndone):
        await undo(pool, p.payment_id, refund=True)
    again, _ = await pay(pool, 2_000, "cash")  # the invoice can be paid again
    assert again.allocations == ((inv, 2_000, True),)
    refunded = await undo(pool, again.payment_id, refund=True)
    assert refunded.status == "refunded" and refunded.shortfall == 0
    types = [r["type"] for r in await pool.fetch("SELECT type FROM webhook_events")]
    assert types.count("payment.reversed") == 1 and types.count("payment.refunded") == 1


async def test_void_and_foreign_invoices_are_not_open(pool: asyncpg.Pool) -> None:
    await world(pool)
    await support.postpaid(pool, "t1", "a2", created=datetime(2026, 1, 1, tzinfo=UTC))
    await invoice(pool, date(2026, 5, 1), 1_000, status="void")
    other = await invoice(pool, date(2026, 5, 1), 1_000, account="a2")
    p, _ = await pay(pool, 500, "k1")
    assert p.allocations == () and p.credited == 500
    with pytest.raises(InvalidBillingInput, match="not open"):
        await pay(pool, 500, "k2", allocations=((other, 500),))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(("pay", "undo")), st.integers(1, 4_000),
                          st.integers(0, 5)), min_size=1, max_size=12))  # fmt: skip
async def test_books_balance_after_any_sequence(
    pool: asyncpg.Pool, ops: list[tuple[str, int, int]]
) -> None:
    """Random payments and undos: every open amount = due - live allocations >= 0, a
    recorded payment's live allocations + credit = its amount, an undone one has none live,
    and the account credit is what recorded payments left minus what was spent (nothing)."""
    await pool.execute("TRUNCATE payment_allocations, payments, webhook_events CASCADE")
    await pool.execute("DELETE FROM invoices")  # a fresh start for each example
    if not await pool.fetchval("SELECT 1 FROM tenants WHERE tenant_id = 't1'"):
        await world(pool)
    await pool.execute("UPDATE billing_accounts SET credit_balance = 0")
    for i, due in enumerate((3_000, 1_500, 2_500)):
        await invoice(pool, date(2026, 4 + i, 10), due)
    recorded: list[str] = []
    for n, (op, amount, pick) in enumerate(ops):
        if op == "pay":
            p, _ = await pay(pool, amount, f"k{n}")
            recorded.append(p.payment_id)
        elif recorded:
            await undo(pool, recorded.pop(pick % len(recorded)))
    for inv in await pool.fetch("SELECT * FROM invoice_open"):
        assert inv["open"] >= 0 and inv["open"] == inv["amount_due"] - inv["allocated"]
    credit_left = 0
    for p in await pool.fetch("SELECT payment_id FROM payments"):
        got = await payments.get(pool, "t1", p["payment_id"])
        live = sum(amount for _, amount, is_live in got.allocations if is_live)
        if got.status == "recorded":
            assert live + got.credited == got.amount
            credit_left += got.credited
        else:
            assert live == 0
    assert await credit(pool) == credit_left


# --- the pure rule, against an independent model ------------------------------------------

invoices_st = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 5_000)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20_000), invoices_st)
def test_allocate_oldest_first_model(amount: int, specs: list[tuple[int, int]]) -> None:
    base = date(2026, 1, 1)
    invs = [OpenInvoice(f"i{k}", base + timedelta(days=d), base, owed)
            for k, (d, owed) in enumerate(specs)]  # fmt: skip
    got = allocate(amount, invs)
    # model: walk in (due, issued, id) order, greedily
    left, expected = amount, []
    for inv in sorted(invs, key=lambda i: (i.due_on, i.issued_on, i.invoice_id)):
        take = min(left, inv.open)
        if take:
            expected.append((inv.invoice_id, take))
        left -= take
    assert list(got.lines) == expected
    assert got.allocated + got.credit == amount and got.credit >= 0
    owed = {i.invoice_id: i.open for i in invs}
    assert all(0 < part <= owed[i] for i, part in got.lines)
    assert got.credit == max(0, amount - sum(owed.values()))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10_000), invoices_st, st.data())
def test_allocate_explicit_model(amount: int, specs: list[tuple[int, int]],
                                 data: st.DataObject) -> None:  # fmt: skip
    base = date(2026, 1, 1)
    invs = [OpenInvoice(f"i{k}", base + timedelta(days=d), base, owed)
            for k, (d, owed) in enumerate(specs)]  # fmt: skip
    chosen = data.draw(st.lists(st.sampled_from(invs), unique_by=lambda i: i.invoice_id)
                       if invs else st.just([]))  # fmt: skip
    asks = [(i.invoice_id, data.draw(st.integers(1, max(1, i.open + 2)))) for i in chosen]
    valid = (all(part <= i.open for (_, part), i in zip(asks, chosen, strict=True))
             and sum(p for _, p in asks) <= amount)  # fmt: skip
    if valid:
        got = allocate(amount, invs, asks)
        assert list(got.lines) == asks and got.credit == amount - sum(p for _, p in asks)
    else:
        with pytest.raises(AllocationError):
            allocate(amount, invs, asks)


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000))
def test_open_amount_never_negative(due: int, allocated: int, credited: int) -> None:
    if allocated + credited <= due:
        assert open_amount(due, allocated, credited) == due - allocated - credited
    else:
        with pytest.raises(AllocationError, match="over-settled"):
            open_amount(due, allocated, credited)
