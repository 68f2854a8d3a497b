"""Payment allocation (pure): which open invoices a payment settles, and what is left as credit.

The rules finance expects: by default the oldest due date first (then the oldest issue date,
then the invoice id, so the order is total); or explicitly to chosen invoices, each never more
than it still owes; what the payment does not settle becomes account credit. An invoice's open
amount is always its amount due minus its live allocations minus its credit notes, never
negative. Amounts are integers in the currency's minor unit; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

__all__ = ["Allocation", "AllocationError", "OpenInvoice", "allocate", "open_amount"]


class AllocationError(ValueError):
    """A payment cannot be allocated as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    invoice_id: str
    due_on: date | None  # None: due at once (receipts, due on issue)
    issued_on: date
    open: int  # what it still owes, minor units

    def __post_init__(self) -> None:
        if self.open < 0:
            raise ValueError(f"invoice {self.invoice_id} owes a negative amount")

    def order(self) -> tuple[date, date, str]:
        return (self.due_on or self.issued_on, self.issued_on, self.invoice_id)


@dataclass(frozen=True, slots=True)
class Allocation:
    """Where a payment goes: ``lines`` (invoice id, amount) in order, the rest to credit."""

    lines: tuple[tuple[str, int], ...]
    credit: int

    @property
    def allocated(self) -> int:
        return sum(amount for _, amount in self.lines)


def open_amount(amount_due: int, allocated: int, credited: int) -> int:
    """An invoice's open amount; a negative result means the books are wrong, so it raises."""
    left = amount_due - allocated - credited
    if left < 0:
        raise AllocationError(f"over-settled by {-left}: due {amount_due}, allocated "
                              f"{allocated}, credited {credited}")  # fmt: skip
    return left


def allocate(amount: int, invoices: Iterable[OpenInvoice],
             explicit: Mapping[str, int] | Sequence[tuple[str, int]] | None = None,
             ) -> Allocation:  # fmt: skip
    """Allocate ``amount`` (> 0) to ``invoices``: oldest due first, or as ``explicit`` says.

    ``explicit`` maps invoice ids to amounts (each > 0, at most what that invoice owes, their
    sum at most ``amount``); the rest of the payment becomes credit, not other invoices.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise AllocationError("a payment amount must be a positive integer of minor units")
    by_id = {inv.invoice_id: inv for inv in invoices}
    if explicit is not None:
        return _explicit(amount, by_id, explicit)
    lines: list[tuple[str, int]] = []
    left = amount
    for inv in sorted(by_id.values(), key=OpenInvoice.order):
        if left == 0:
            break
        take = min(left, inv.open)
        if take > 0:
            lines.append((inv.invoice_id, take))
            left -= take
    return Allocation(tuple(lines), left)


def _explicit(amount: int, by_id: Mapping[str, OpenInvoice],
              explicit: Mapping[str, int] | Sequence[tuple[str, int]]) -> Allocation:  # fmt: skip
    pairs = list(explicit.items()) if isinstance(explicit, Mapping) else list(explicit)
    seen: set[str] = set()
    lines: list[tuple[str, int]] = []
    for invoice_id, part in pairs:
        if invoice_id in seen:
            raise AllocationError(f"invoice {invoice_id} is named twice")
        seen.add(invoice_id)
        inv = by_id.get(invoice_id)
        if inv is None:
            raise AllocationError(f"invoice {invoice_id} is not open on this account")
        if isinstance(part, bool) or not isinstance(part, int) or part <= 0:
            raise AllocationError(f"the amount for invoice {invoice_id} must be positive")
        if part > inv.open:
            raise AllocationError(f"invoice {invoice_id} owes {inv.open}, not {part}")
        lines.append((invoice_id, part))
    total = sum(part for _, part in lines)
    if total > amount:
        raise AllocationError(f"the allocations ({total}) exceed the payment ({amount})")
    return Allocation(tuple(lines), amount - total)
