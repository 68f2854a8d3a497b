"""Credit notes on real Postgres: against a composed and finalized invoice, per line with a
reason, never more than a line has left nor than the invoice has left, taxes recomputed by the
invoice's rule, applied to what the invoice owes first, the rest to credit or refunded, numbered
gaplessly; and the pure figures under hypothesis against an independent Decimal model."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import credit_notes, inputs_codec, payments, receivables
from billing.aging import age
from billing.composition import Charge, InvoiceInputs, LineKind, compose
from billing.crediting import Creditable, CreditAsk, CreditError, compute
from billing.discounts import Discount, DiscountKind, DiscountScope
from billing.errors import IdempotencyKeyReused, InvalidBillingInput, InvoiceStateError
from billing.invoice_store import InvoiceHeader, insert_many, new_id
from billing.lifecycle import finalize
from billing.taxes import TaxLabel, TaxRounding
from tests.billing import support
from tests.billing.test_payments import credit, opens, pay, world
from tests.integration.fixtures import pool_fixture  # noqa: F401

AT = datetime(2026, 7, 1, 12, tzinfo=UTC)
VAT = TaxLabel("VAT", "VAT", Decimal(20), inclusive=False)


async def composed_invoice(pool: asyncpg.Pool, *, final: bool = True) -> str:
    """Plan fee 100.00 and calls 50.00 with 20 % VAT, a 10 % discount: total 162.00."""
    inputs = InvoiceInputs(
        currency="USD",
        charges=(Charge(LineKind.RECURRING, "Plan fee", 10_000, ("VAT",)),
                 Charge(LineKind.USAGE, "Calls", 5_000, ("VAT",))),
        discounts=(Discount("d", "Loyalty", DiscountKind.PERCENT, Decimal(10),
                            DiscountScope.INVOICE),),
        taxes=(VAT,),
    )  # fmt: skip
    c = compose(inputs)
    invoice_id = new_id()
    h = InvoiceHeader(invoice_id, "t1", "a1", "USD", date(2026, 6, 1), date(2026, 6, 15), None,
                      inputs=inputs_codec.dumps(inputs))  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await insert_many(conn, [(h, c)])
    if final:
        await finalize(pool, "t1", invoice_id, AT)
    return invoice_id


async def note(pool: asyncpg.Pool, invoice_id: str, asks: list[tuple[int, int]], key: str,
               settle: credit_notes.Settle = "credit") -> credit_notes.CreditNote:  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        n, _ = await credit_notes.issue(
            conn, "t1", invoice_id, tuple(CreditAsk(p, a, "service outage") for p, a in asks),
            settle=settle, idempotency_key=key, today=date(2026, 7, 1), at=AT)  # fmt: skip
    return n


async def test_credit_notes_apply_refund_and_cap(pool: asyncpg.Pool) -> None:
    await world(pool)
    await pool.execute("INSERT INTO billing_settings (tenant_id, number_prefix) VALUES"
                       " ('t1', 'AC')")  # fmt: skip
    inv = await composed_invoice(pool)
    lines = {r["position"]: (r["kind"], r["amount"]) for r in await pool.fetch(
        "SELECT position, kind, amount FROM invoice_lines WHERE invoice_id = $1", inv)}  # fmt: skip
    assert sorted(lines.values()) == [("discount", -1_500), ("recurring", 10_000),
                                      ("usage", 5_000)]  # fmt: skip
    fee = next(p for p, (k, _) in lines.items() if k == "recurring")
    calls = next(p for p, (k, _) in lines.items() if k == "usage")
    discount = next(p for p, (k, _) in lines.items() if k == "discount")
    assert (await opens(pool))[inv] == (16_200, "finalized")

    first = await note(pool, inv, [(fee, 2_500)], "cn-1")
    assert (first.subtotal, first.tax_total, first.total) == (2_500, 500, 3_000)
    assert (first.applied, first.to_credit, first.refunded) == (3_000, 0, 0)
    assert first.number == "ACCN-2026-000001"
    assert (await opens(pool))[inv] == (13_200, "finalized")
    assert await note(pool, inv, [(fee, 2_500)], "cn-1") == first  # the same key: the same note
    with pytest.raises(IdempotencyKeyReused):
        await note(pool, inv, [(fee, 2_400)], "cn-1")
    for asks, message in (([(fee, 7_501)], "7500 at most"), ([(discount, 1)], "0 at most"),
                          ([(99, 1)], "no line 99"), ([(fee, 1), (fee, 1)], "named twice")):
        with pytest.raises(InvalidBillingInput, match=message):
            await note(pool, inv, asks, f"bad-{message}")

    await pay(pool, 13_200, "pay-rest")
    assert (await opens(pool))[inv] == (0, "paid")
    refund = await note(pool, inv, [(calls, 5_000)], "cn-2", settle="refund")
    assert (refund.total, refund.applied, refund.refunded) == (6_000, 0, 6_000)
    # 7,500 of the fee is left on its line, but only 72.00 of the invoice's total
    with pytest.raises(InvalidBillingInput, match="exceeds what is left"):
        await note(pool, inv, [(fee, 7_500)], "cn-too-much")
    last = await note(pool, inv, [(fee, 6_000)], "cn-3")
    assert (last.total, last.applied, last.to_credit) == (7_200, 0, 7_200)
    assert await credit(pool) == 7_200
    assert sorted(n.number for n in await credit_notes.page(pool, "t1", inv, None, 10)) == [
        "ACCN-2026-000001", "ACCN-2026-000002", "ACCN-2026-000003"]
    with pytest.raises(InvalidBillingInput, match="exceeds"):
        await note(pool, inv, [(fee, 1)], "cn-nothing-left")
    events = [r["type"] for r in await pool.fetch("SELECT type FROM webhook_events")]
    assert events.count("credit_note.issued") == 3


async def test_only_finalized_invoices_are_credited(pool: asyncpg.Pool) -> None:
    await world(pool)
    draft = await composed_invoice(pool, final=False)
    with pytest.raises(InvoiceStateError, match="cannot be credited"):
        await note(pool, draft, [(1, 100)], "cn-draft")
    await support.tenant(pool, "t2")
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(Exception, match="not found"):
            await credit_notes.issue(conn, "t2", draft, (CreditAsk(1, 1, "x"),),
                                     settle="credit", idempotency_key="k", today=date.today(),
                                     at=AT)  # fmt: skip


# --- the pure figures ------------------------------------------------------------------------

lines_st = st.lists(st.tuples(st.integers(-2_000, 50_000), st.integers(0, 50_000)),
                    min_size=1, max_size=6)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(lines_st, st.data(), st.sampled_from((Decimal(0), Decimal(20), Decimal("7.5"))),
       st.integers(0, 400_000))  # fmt: skip
def test_figures_against_a_decimal_model(specs: list[tuple[int, int]], data: st.DataObject,
                                         rate: Decimal, total_left: int) -> None:  # fmt: skip
    label = TaxLabel("T", "T", rate, inclusive=False)
    lines = [Creditable(i + 1, f"line {i}", amount, ("T",), min(done, max(amount, 0)))
             for i, (amount, done) in enumerate(specs)]  # fmt: skip
    positions = data.draw(st.lists(st.sampled_from([x.position for x in lines]), min_size=1,
                                   unique=True))  # fmt: skip
    asks = [CreditAsk(p, data.draw(st.integers(1, 60_000)), "why") for p in positions]
    by_pos = {x.position: x for x in lines}
    per_line_ok = all(a.amount <= by_pos[a.position].left for a in asks)

    def tax(amount: int) -> int:
        return int((Decimal(amount) * rate / 100).quantize(Decimal(1), ROUND_HALF_UP))

    total = sum(a.amount + tax(a.amount) for a in asks)
    if not per_line_ok or total > total_left:
        with pytest.raises(CreditError):
            compute(lines, asks, {"T": label}, TaxRounding.PER_LINE, total_left=total_left)
        return
    f = compute(lines, asks, {"T": label}, TaxRounding.PER_LINE, total_left=total_left)
    assert f.total == total <= total_left
    assert f.subtotal == sum(a.amount for a in asks)
    assert f.tax_total == sum(tax(a.amount) for a in asks) == sum(t.amount for t in f.taxes)
    assert [x.tax for x in f.lines] == [tax(a.amount) for a in asks]


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(("pay", "undo", "credit", "refund")),
                          st.integers(1, 40_000), st.integers(0, 7)),
                min_size=1, max_size=10))  # fmt: skip
async def test_the_books_balance_with_payments_undos_and_credit_notes(
    pool: asyncpg.Pool, ops: list[tuple[str, int, int]]
) -> None:
    """Any mix: open = due - live allocations - credit notes applied, never negative; each
    recorded payment's live allocations + credit = its amount; a note's parts add up to its
    total and an invoice is never credited beyond its total; the account credit is what the
    payments and notes left; the aging buckets sum to the open receivables."""
    for table in ("credit_note_taxes", "credit_note_lines", "credit_notes",
                  "payment_allocations", "payments", "webhook_events"):  # fmt: skip
        await pool.execute(f"TRUNCATE {table} CASCADE")
    await pool.execute("DELETE FROM invoices")
    if not await pool.fetchval("SELECT 1 FROM tenants WHERE tenant_id = 't1'"):
        await world(pool)
    await pool.execute("UPDATE billing_accounts SET credit_balance = 0")
    invoices = [await composed_invoice(pool) for _ in range(2)]
    lines = [(inv, r["position"]) for inv in invoices for r in await pool.fetch(
        "SELECT position FROM invoice_lines WHERE invoice_id = $1 AND amount > 0"
        " ORDER BY position", inv)]  # fmt: skip
    first, _ = await pay(pool, 20_000, "k-first")  # one invoice paid, the other in part
    recorded: list[str] = [first.payment_id]
    for n, (op, amount, pick) in enumerate(ops):
        try:
            if op == "pay":
                p, _ = await pay(pool, amount, f"k{n}")
                recorded.append(p.payment_id)
            elif op == "undo" and recorded:
                async with pool.acquire() as conn, conn.transaction():
                    await payments.undo(conn, "t1", recorded.pop(pick % len(recorded)),
                                        refund=bool(pick % 2), reason="x", at=AT)  # fmt: skip
            elif op in ("credit", "refund"):
                inv, position = lines[pick % len(lines)]
                part = 1 + amount % 6_000  # most fit what a line has left
                await note(pool, inv, [(position, part)], f"n{n}", settle=op)  # type: ignore[arg-type]
        except InvalidBillingInput:
            pass  # more than is creditable: refused, nothing written
    open_total = 0
    for inv in await pool.fetch("SELECT * FROM invoice_open"):
        assert inv["open"] >= 0
        assert inv["open"] == inv["amount_due"] - inv["allocated"] - inv["credited"]
        open_total += inv["open"]
    expected_credit = 0
    for p in await pool.fetch("SELECT payment_id FROM payments"):
        got = await payments.get(pool, "t1", p["payment_id"])
        live = sum(a for _, a, is_live in got.allocations if is_live)
        if got.status == "recorded":
            assert live + got.credited == got.amount
            expected_credit += got.credited
        else:
            assert live == 0 and got.shortfall == 0  # nothing consumed credit here
    for inv in invoices:
        notes = await credit_notes.page(pool, "t1", inv, None, 100)
        total = await pool.fetchval("SELECT total FROM invoices WHERE invoice_id = $1", inv)
        assert sum(cn.total for cn in notes) <= total
        for cn in notes:
            assert cn.applied + cn.to_credit + cn.refunded == cn.total
            expected_credit += cn.to_credit
    assert await credit(pool) == expected_credit
    async with pool.acquire() as conn:
        _, totals = age(await receivables.as_of(conn, "t1", date(2026, 12, 31)),
                        date(2026, 12, 31))  # fmt: skip
    assert sum(t.outstanding for t in totals) == open_total
    assert all(sum(t.buckets) == t.outstanding for t in totals)
