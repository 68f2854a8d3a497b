"""Receivables aging (pure): every open amount in exactly one bucket by days past due, so the
buckets sum to the outstanding total; the bucket edges against an independent table."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.aging import BUCKETS, Receivable, age, bucket_of

AS_OF = date(2026, 7, 1)


@pytest.mark.parametrize(("days", "label"), [
    (-30, "current"), (0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"),
    (61, "61-90"), (90, "61-90"), (91, "91-120"), (120, "91-120"), (121, "121+"),
    (5000, "121+"),
])  # fmt: skip
def test_bucket_edges(days: int, label: str) -> None:
    assert BUCKETS[bucket_of(AS_OF - timedelta(days=days), AS_OF)][0] == label


receivable = st.builds(
    lambda acc, cur, days, invoiced, paid_share, credit_share: Receivable(
        acc, cur, AS_OF - timedelta(days=days), invoiced, invoiced * paid_share // 100,
        (invoiced - invoiced * paid_share // 100) * credit_share // 100),
    st.sampled_from(("a1", "a2", "a3")), st.sampled_from(("USD", "JPY")),
    st.integers(-60, 400), st.integers(0, 10**9), st.integers(0, 100), st.integers(0, 100),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(receivable, max_size=40))
def test_buckets_sum_to_the_open_receivables(items: list[Receivable]) -> None:
    rows, totals = age(items, AS_OF)
    for row in [*rows, *totals]:
        assert sum(row.buckets) == row.outstanding
        assert row.invoiced - row.paid - row.credited == row.outstanding
    for cur in ("USD", "JPY"):
        open_items = [r for r in items if r.currency == cur and r.outstanding > 0]
        expected = sum(r.outstanding for r in open_items)
        total = next((t for t in totals if t.currency == cur), None)
        assert (total.outstanding if total else 0) == expected
        assert sum(r.outstanding for r in rows if r.currency == cur) == expected
        # an independent bucketing: days past due against the edges
        for i, (_, low, high) in enumerate(BUCKETS):
            want = sum(r.outstanding for r in open_items
                       if (low is None or (AS_OF - r.due_on).days >= low)
                       and (high is None or (AS_OF - r.due_on).days <= high))  # fmt: skip
            assert (total.buckets[i] if total else 0) == want


def test_over_settled_invoices_are_refused() -> None:
    with pytest.raises(ValueError, match="over-settled"):
        age([Receivable("a1", "USD", AS_OF, 100, 80, 30)], AS_OF)
