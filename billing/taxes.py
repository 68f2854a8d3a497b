"""Taxes of invoice lines: several labels per line, inclusive or exclusive, simple or compound.

Labels apply in ``(order, code)`` order (the code breaks ties so the order is total). A line's
labels form two independent groups:

* **inclusive** labels are contained in the line amount (the gross, as charged). With the
  group's labels in order, a simple one is ``r`` of the net and a compound one ``r`` of (net +
  the inclusive taxes before it), so ``gross = net * F`` with ``F = 1 + sum of those factors``
  and the exact inclusive tax of label ``i`` is ``gross * t_i / F``. The line's net is the gross
  minus its *rounded* inclusive taxes, so net + inclusive taxes is always exactly the amount
  charged.
* **exclusive** labels are added on top of that net: a simple one is ``rate * net``, a compound
  one ``rate * (net + the exclusive taxes before it)``, those earlier taxes as shown on the line.

A line with both kinds is therefore priced inclusive of its inclusive labels, with the exclusive
ones (a surcharge on the net) added on top; compounding never crosses the groups.

Rounding (``TaxRounding``):

* ``PER_LINE``: every line's tax per label is rounded half-up; a label's total is the sum of its
  lines; the base of a compound exclusive label includes the rounded earlier taxes of the line.
* ``PER_INVOICE``: a label's total is its exact sum over the lines rounded half-up once. The
  per-line figures (needed for the nets of inclusive lines and for the line display) are a
  largest-remainder allocation of that total over the lines (``minor_units.allocate``: each is
  the floor or ceiling of the line's exact tax, ties to the earlier line), adding up to it
  exactly; inclusive labels are settled first (giving the integer nets), then exclusive
  ones in order (a compound label's base uses the earlier labels' allocated line taxes). For an
  exclusive label this makes ``amount == half_up(rate * base)`` on the invoice.

A label's ``base`` is the sum over its lines of the integer amount its rate was applied to
(net, plus the earlier taxes of the same group for a compound label).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from billing.minor_units import allocate, half_up, half_up_ratio

__all__ = [
    "LineTax",
    "TaxLabel",
    "TaxRounding",
    "TaxTotal",
    "TaxedLine",
    "inclusive_parts",
    "label_table",
    "resolve",
    "sort_labels",
    "tax_line",
    "tax_lines",
]


class TaxRounding(StrEnum):
    PER_LINE = "per_line"
    PER_INVOICE = "per_invoice"


@dataclass(frozen=True)
class TaxLabel:
    """A tax the tenant charges: ``rate`` is a percent (``Decimal("18.5")`` is 18.5 %)."""

    code: str
    name: str
    rate: Decimal
    inclusive: bool
    compound: bool = False
    order: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code:
            raise ValueError(f"a tax code must be a non-empty string, not {self.code!r}")
        if not isinstance(self.rate, Decimal):
            kind = type(self.rate).__name__
            raise TypeError(f"tax {self.code}: rate must be a Decimal, not {kind}")
        if not self.rate.is_finite() or not Decimal(0) <= self.rate <= Decimal(100):
            raise ValueError(f"tax {self.code}: rate must be within 0..100 %, not {self.rate}")
        if not isinstance(self.inclusive, bool) or not isinstance(self.compound, bool):
            raise TypeError(f"tax {self.code}: inclusive and compound must be bools")
        if not isinstance(self.order, int) or isinstance(self.order, bool):
            raise TypeError(f"tax {self.code}: order must be an int")

    @functools.cached_property
    def fraction(self) -> Fraction:
        """The rate as an exact fraction of one (18.5 % is 37/200), computed once per label."""
        return Fraction(self.rate) / 100


@dataclass(frozen=True)
class LineTax:
    """One label's tax on one line: ``amount`` in minor units, on the integer ``base``."""

    code: str
    base: int
    amount: int


@dataclass(frozen=True)
class TaxedLine:
    """A line amount (as charged) split into its net and its taxes (in label order)."""

    amount: int
    net: int
    taxes: tuple[LineTax, ...]

    @property
    def tax(self) -> int:
        return sum(t.amount for t in self.taxes)

    @property
    def gross(self) -> int:
        """What the line costs with every tax: the amount plus its exclusive taxes."""
        return self.net + self.tax


@dataclass(frozen=True)
class TaxTotal:
    """One label's figures on an invoice."""

    code: str
    name: str
    rate: Decimal
    inclusive: bool
    base: int
    amount: int


def _key(label: TaxLabel) -> tuple[int, str]:
    return label.order, label.code


def sort_labels(labels: Iterable[TaxLabel]) -> tuple[TaxLabel, ...]:
    """``labels`` in the order they apply: by ``order``, then by code."""
    return tuple(sorted(labels, key=_key))


def label_table(labels: Iterable[TaxLabel]) -> dict[str, TaxLabel]:
    """Labels by code; a code given twice is an error (it would make a line's tax ambiguous)."""
    table: dict[str, TaxLabel] = {}
    for label in labels:
        if not isinstance(label, TaxLabel):
            raise TypeError(f"expected a TaxLabel, not {type(label).__name__}")
        if label.code in table:
            raise ValueError(f"tax code {label.code!r} is defined twice")
        table[label.code] = label
    return table


def resolve(codes: Iterable[str], table: Mapping[str, TaxLabel]) -> tuple[TaxLabel, ...]:
    """The labels ``codes`` name, in application order; unknown or repeated codes are errors."""
    found: dict[str, TaxLabel] = {}
    for code in codes:
        if code in found:
            raise ValueError(f"tax code {code!r} is given twice for one line")
        if code not in table:
            raise ValueError(f"unknown tax code {code!r}")
        found[code] = table[code]
    return sort_labels(found.values())


def inclusive_parts(amount: int, labels: Sequence[TaxLabel]) -> tuple[Fraction, ...]:
    """The exact taxes of the inclusive ``labels`` contained in ``amount`` (in label order)."""
    factors: list[Fraction] = []
    for label in sort_labels(label for label in labels if label.inclusive):
        base = 1 + sum(factors, Fraction(0)) if label.compound else Fraction(1)
        factors.append(label.fraction * base)
    whole = 1 + sum(factors, Fraction(0))
    return tuple(amount * f / whole for f in factors)


def tax_line(amount: int, labels: Sequence[TaxLabel]) -> TaxedLine:
    """The taxes of one line rounded per line (``PER_LINE``)."""
    ordered = sort_labels(labels)
    included = [label for label in ordered if label.inclusive]
    rounded = {
        label.code: half_up(part)
        for label, part in zip(included, inclusive_parts(amount, included), strict=True)
    }
    net = amount - sum(rounded.values())
    taxes: list[LineTax] = []
    earlier = {True: 0, False: 0}  # rounded taxes so far, per group
    for label in ordered:
        base = net + earlier[label.inclusive] if label.compound else net
        if label.inclusive:
            tax = rounded[label.code]
        else:
            f = label.fraction
            tax = half_up_ratio(f.numerator * base, f.denominator)
        earlier[label.inclusive] += tax
        taxes.append(LineTax(label.code, base, tax))
    return TaxedLine(amount, net, tuple(taxes))


def _allocate(exact: dict[int, Fraction]) -> dict[int, int]:
    """Largest-remainder rounding of per-line exact taxes (keyed by line index)."""
    indices = sorted(exact)
    return dict(zip(indices, allocate(exact[i] for i in indices), strict=True))


def _per_invoice(lines: Sequence[tuple[int, tuple[TaxLabel, ...]]]) -> list[TaxedLine]:
    codes = [[x.code for x in ls] for _, ls in lines]
    allocated: list[dict[str, int]] = [{} for _ in lines]
    bases: list[dict[str, int]] = [{} for _ in lines]
    every = sort_labels({x.code: x for _, ls in lines for x in ls}.values())
    for label in (x for x in every if x.inclusive):
        exact: dict[int, Fraction] = {}
        for i, (amount, ls) in enumerate(lines):
            if label.code in codes[i]:
                inc = [x for x in ls if x.inclusive]
                exact[i] = inclusive_parts(amount, inc)[inc.index(label)]
        for i, tax in _allocate(exact).items():
            allocated[i][label.code] = tax
    nets = [
        amount - sum(allocated[i][x.code] for x in ls if x.inclusive)
        for i, (amount, ls) in enumerate(lines)
    ]
    for label in every:
        exact = {}
        for i, (_, ls) in enumerate(lines):
            if label.code not in codes[i]:
                continue
            before = ls[: codes[i].index(label.code)]
            earlier = sum(allocated[i][x.code] for x in before if x.inclusive == label.inclusive)
            bases[i][label.code] = nets[i] + earlier if label.compound else nets[i]
            exact[i] = label.fraction * bases[i][label.code]
        if not label.inclusive:
            for i, tax in _allocate(exact).items():
                allocated[i][label.code] = tax
    return [
        TaxedLine(
            amount,
            nets[i],
            tuple(LineTax(x.code, bases[i][x.code], allocated[i][x.code]) for x in ls),
        )
        for i, (amount, ls) in enumerate(lines)
    ]


def tax_lines(
    lines: Sequence[tuple[int, Sequence[TaxLabel]]], rounding: TaxRounding
) -> tuple[list[TaxedLine], list[TaxTotal]]:
    """The taxed lines of one invoice, in order, and the totals per label (in label order).

    Every line is ``(amount as charged, its labels)``; a label appears in the totals when some
    line carries it. In both modes a label's total is the sum of its line taxes.
    """
    rounding = TaxRounding(rounding)
    ordered = [(amount, sort_labels(labels)) for amount, labels in lines]
    by_code: dict[str, TaxLabel] = {}
    for _, labels in ordered:
        codes = [label.code for label in labels]
        if len(set(codes)) != len(codes):
            raise ValueError(f"a line carries a tax code twice: {codes}")
        for label in labels:
            if by_code.setdefault(label.code, label) != label:
                raise ValueError(f"two different tax labels share the code {label.code!r}")
    if rounding is TaxRounding.PER_LINE:
        taxed = [tax_line(amount, labels) for amount, labels in ordered]
    elif rounding is TaxRounding.PER_INVOICE:
        taxed = _per_invoice(ordered)
    else:
        raise ValueError(f"unknown tax rounding {rounding!r}")
    totals = []
    for label in sort_labels(by_code.values()):
        mine = [t for line in taxed for t in line.taxes if t.code == label.code]
        totals.append(
            TaxTotal(
                label.code,
                label.name,
                label.rate,
                label.inclusive,
                sum(t.base for t in mine),
                sum(t.amount for t in mine),
            )
        )
    return taxed, totals
