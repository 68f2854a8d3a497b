"""Credit notes (pure): what may be credited on a finalized invoice, and the note's figures.

A credit note names invoice lines and an amount for each (as charged, like the invoice line's
amount), each with a reason. A line can be credited up to its amount less what earlier credit
notes took from it; discount lines (negative) are not creditable. Taxes are recomputed on the
credited amounts with the invoice's own labels and rounding rule (``billing.taxes``), and the
note's total never exceeds what is left of the invoice's total. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from billing.taxes import TaxLabel, TaxRounding, TaxTotal, resolve, tax_lines

__all__ = ["CreditAsk", "CreditError", "CreditFigures", "CreditLine", "Creditable", "compute"]

MAX_REASON = 200


class CreditError(ValueError):
    """A credit note that cannot be issued as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class Creditable:
    """An invoice line as a credit note sees it."""

    position: int
    description: str
    amount: int  # as charged on the invoice
    tax_codes: tuple[str, ...]
    credited: int = 0  # taken by earlier credit notes (as charged)

    @property
    def left(self) -> int:
        return max(0, self.amount - self.credited)


@dataclass(frozen=True, slots=True)
class CreditAsk:
    position: int
    amount: int
    reason: str


@dataclass(frozen=True, slots=True)
class CreditLine:
    position: int  # the invoice line's
    description: str
    amount: int  # as charged
    net: int
    tax: int
    reason: str


@dataclass(frozen=True, slots=True)
class CreditFigures:
    lines: tuple[CreditLine, ...]
    taxes: tuple[TaxTotal, ...]
    subtotal: int  # sum of nets
    tax_total: int
    total: int  # what the customer gets back: nets plus every tax


def compute(lines: Sequence[Creditable], asks: Sequence[CreditAsk],
            labels: Mapping[str, TaxLabel], rounding: TaxRounding, *,
            total_left: int) -> CreditFigures:  # fmt: skip
    """The figures of a credit note; ``total_left``: the invoice total not yet credited."""
    if not asks:
        raise CreditError("a credit note credits at least one line")
    by_position = {line.position: line for line in lines}
    seen: set[int] = set()
    picked: list[tuple[Creditable, CreditAsk]] = []
    for ask in asks:
        line = by_position.get(ask.position)
        if line is None:
            raise CreditError(f"the invoice has no line {ask.position}")
        if ask.position in seen:
            raise CreditError(f"line {ask.position} is named twice")
        seen.add(ask.position)
        if isinstance(ask.amount, bool) or not isinstance(ask.amount, int) or ask.amount <= 0:
            raise CreditError(f"the amount for line {ask.position} must be positive")
        if ask.amount > line.left:
            raise CreditError(f"line {ask.position} can be credited {line.left} at most, "
                              f"not {ask.amount}")  # fmt: skip
        reason = ask.reason.strip()
        if not reason or len(reason) > MAX_REASON or not reason.isprintable():
            raise CreditError(f"line {ask.position} needs a reason (1-{MAX_REASON} characters)")
        picked.append((line, ask))
    try:
        taxed, totals = tax_lines(
            [(ask.amount, resolve(line.tax_codes, labels)) for line, ask in picked], rounding)
    except (KeyError, ValueError) as e:
        raise CreditError(f"the invoice's taxes cannot be recomputed: {e}") from None
    credit_lines = tuple(
        CreditLine(line.position, line.description, ask.amount, t.net, t.tax, ask.reason.strip())
        for (line, ask), t in zip(picked, taxed, strict=True)
    )  # fmt: skip
    subtotal = sum(t.net for t in taxed)
    tax_total = sum(t.tax for t in taxed)
    total = subtotal + tax_total
    if total > total_left:
        raise CreditError(f"the credit note ({total}) exceeds what is left of the invoice "
                          f"({total_left})")  # fmt: skip
    return CreditFigures(credit_lines, tuple(totals), subtotal, tax_total, total)
