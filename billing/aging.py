"""Receivables aging (pure): open amounts by how long past their due date, as of a day.

The ERPNext convention finance teams know: age by due date (an invoice without one is due on
its issue date), buckets current (not yet due or due today), 1-30, 31-60, 61-90, 91-120 and
121+ days past due, per account and per currency, with invoiced, paid, credited and
outstanding columns. Every open invoice lands in exactly one bucket, so the buckets sum to the
outstanding total exactly. Amounts are integers of the currency's minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Final

__all__ = ["BUCKETS", "AgingRow", "Receivable", "age", "bucket_of"]

# (label, first day past due, last day past due or None)
BUCKETS: Final = (("current", None, 0), ("1-30", 1, 30), ("31-60", 31, 60),
                  ("61-90", 61, 90), ("91-120", 91, 120), ("121+", 121, None))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Receivable:
    """One invoice as the books have it on the day aged."""

    account_id: str
    currency: str
    due_on: date
    invoiced: int  # amount due on the invoice
    paid: int  # live allocations
    credited: int = 0  # credit notes

    @property
    def outstanding(self) -> int:
        return self.invoiced - self.paid - self.credited


@dataclass
class AgingRow:
    """Totals of one (account or tenant, currency); ``buckets`` in ``BUCKETS`` order."""

    account_id: str | None  # None: the tenant's total
    currency: str
    invoiced: int = 0
    paid: int = 0
    credited: int = 0
    outstanding: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))

    def add(self, r: Receivable, index: int) -> None:
        self.invoiced += r.invoiced
        self.paid += r.paid
        self.credited += r.credited
        self.outstanding += r.outstanding
        self.buckets[index] += r.outstanding


def bucket_of(due_on: date, as_of: date) -> int:
    """The index in ``BUCKETS`` of an amount due on ``due_on``, seen on ``as_of``."""
    days = (as_of - due_on).days
    for i, (_, low, high) in enumerate(BUCKETS):
        if (low is None or days >= low) and (high is None or days <= high):
            return i
    raise AssertionError("the buckets cover every day")  # pragma: no cover


def age(receivables: Iterable[Receivable], as_of: date) -> tuple[list[AgingRow], list[AgingRow]]:
    """-> (rows per account and currency, sorted; totals per currency). Invoices with nothing
    outstanding are left out; a negative outstanding amount means the books are wrong."""
    per_account: dict[tuple[str, str], AgingRow] = {}
    totals: dict[str, AgingRow] = {}
    for r in receivables:
        if r.outstanding < 0:
            raise ValueError(f"an invoice of {r.account_id} is over-settled by {-r.outstanding}")
        if r.outstanding == 0:
            continue
        index = bucket_of(r.due_on, as_of)
        key = (r.account_id, r.currency)
        per_account.setdefault(key, AgingRow(r.account_id, r.currency)).add(r, index)
        totals.setdefault(r.currency, AgingRow(None, r.currency)).add(r, index)
    return ([per_account[k] for k in sorted(per_account)],
            [totals[c] for c in sorted(totals)])  # fmt: skip
