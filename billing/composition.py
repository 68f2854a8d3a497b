"""The invoice of one account for one bill period: lines, discounts, taxes and totals.

Pure: the invoice run gathers ``InvoiceInputs`` and stores the ``ComposedInvoice``. Every amount
is in ISO 4217 minor units of ``currency`` (rounding rule: ``billing.minor_units``).

Composition, in this order:

1. one line per charge, in the given order (usage groups become charges via ``usage_charge``,
   their micros rounded once per line);
2. the ``USAGE`` and ``RECURRING`` discounts, each in the given order, on what remains of their
   scope (``billing.discounts``);
3. the minimum spend: when ``minimum_spend > 0`` and the usage lines net of the usage discounts
   (amounts as charged) are below it, a ``MINIMUM_SPEND`` line with the difference, taxed with
   ``minimum_spend_tax_codes``;
4. the ``INVOICE`` discounts, in the given order, on what remains of every charge line
   (including the minimum spend, after the scoped discounts);
5. the taxes of every line (``billing.taxes``) in the inputs' rounding mode.

Line positions: charge lines, then the minimum spend line, then the discount lines in the order
they were applied. A discount is one ``DISCOUNT`` line per tax-code group it falls on (pro rata,
summing exactly), carrying that group's codes, so tax is computed on the discounted base.

``discounts`` must already be the ones active in the period (filter them with
``billing.discounts.active``); ``compose`` applies every discount it is given.

Credit notes are composed the same way from negated charges: with ``minimum_spend == 0`` and
``credit_available == 0``, negating every charge amount negates every figure of the invoice,
exactly, in both rounding modes. To reverse an invoice that had a minimum spend line, pass that
line as a ``MINIMUM_SPEND`` charge (negated) and ``minimum_spend=0``.

Invariants: ``subtotal == sum(line.net)``, ``tax_total == sum(t.amount for t in tax_totals)``,
``total == subtotal + tax_total``, a label's total is the sum of its line taxes, and
``amount_due == total - credit_applied``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from billing.discounts import Discount, DiscountScope, DiscountShare, apply_discounts
from billing.minor_units import exponent, half_up, micros_to_minor
from billing.taxes import (
    LineTax,
    TaxLabel,
    TaxRounding,
    TaxTotal,
    label_table,
    resolve,
    tax_lines,
)

__all__ = [
    "Charge",
    "ComposedInvoice",
    "InvoiceInputError",
    "InvoiceInputs",
    "InvoiceLine",
    "LineKind",
    "UsageGroup",
    "compose",
    "usage_charge",
]

MINIMUM_SPEND_DESCRIPTION = "Minimum spend adjustment"


class InvoiceInputError(ValueError):
    """The inputs cannot make an invoice (unknown tax code, bad currency, negative credit...)."""


class LineKind(StrEnum):
    USAGE = "usage"
    LATE_USAGE = "late_usage"
    RECURRING = "recurring"
    DID = "did"
    ONE_TIME = "one_time"
    MINIMUM_SPEND = "minimum_spend"
    DISCOUNT = "discount"


_SCOPE_KINDS = {
    DiscountScope.USAGE: frozenset({LineKind.USAGE, LineKind.LATE_USAGE}),
    DiscountScope.RECURRING: frozenset({LineKind.RECURRING, LineKind.DID}),
    # every charge line, net of the USAGE and RECURRING discounts already taken from it
    DiscountScope.INVOICE: frozenset(LineKind),
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_count(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvoiceInputError(f"{name} must be an int >= 0, not {value!r}")


@dataclass(frozen=True)
class Charge:
    """One thing billed: ``amount`` in minor units as charged (gross when its taxes are
    inclusive; negative for a credit)."""

    kind: LineKind
    description: str
    amount: int
    tax_codes: tuple[str, ...] = ()
    quantity: Decimal = Decimal(1)
    unit: str = ""
    calls: int = 0
    seconds: int = 0
    ref: str | None = None  # the one-time charge id, the DID number, ...

    def __post_init__(self) -> None:
        try:
            kind = LineKind(self.kind)
        except ValueError:
            raise InvoiceInputError(f"unknown line kind {self.kind!r}") from None
        if kind is LineKind.DISCOUNT:
            raise InvoiceInputError("discount lines are computed from Discounts, not charged")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "tax_codes", tuple(self.tax_codes))
        if not _is_int(self.amount):
            raise InvoiceInputError(f"charge {self.description!r}: amount must be an int")
        if not isinstance(self.quantity, Decimal) or not self.quantity.is_finite():
            raise InvoiceInputError(f"charge {self.description!r}: quantity must be a Decimal")
        _check_count(self.calls, "calls")
        _check_count(self.seconds, "seconds")


@dataclass(frozen=True)
class UsageGroup:
    """Rated calls of one destination group, in engine micros (``late``: from earlier periods)."""

    description: str
    calls: int
    seconds: int
    amount_micros: int
    late: bool = False


def usage_charge(group: UsageGroup, currency: str, tax_codes: tuple[str, ...] = ()) -> Charge:
    """The usage line of ``group``: minutes to 2 places (half-up), micros rounded once."""
    _check_count(group.calls, "calls")
    _check_count(group.seconds, "seconds")
    if not _is_int(group.amount_micros):
        raise InvoiceInputError("amount_micros must be an int")
    try:
        amount = micros_to_minor(group.amount_micros, currency)
    except ValueError as e:
        raise InvoiceInputError(str(e)) from e
    if group.late:
        kind = LineKind.LATE_USAGE
        description = f"Late usage: calls to {group.description} from earlier periods"
    else:
        kind, description = LineKind.USAGE, f"Calls to {group.description}"
    minutes = Decimal(half_up(Fraction(group.seconds * 100, 60)))  # hundredths of a minute
    return Charge(
        kind=kind,
        description=description,
        amount=amount,
        tax_codes=tuple(tax_codes),
        quantity=minutes.scaleb(-2),
        unit="min",
        calls=group.calls,
        seconds=group.seconds,
    )


@dataclass(frozen=True)
class InvoiceInputs:
    """Everything one invoice is made of. ``discounts`` are those active in the period, in the
    order they apply; ``taxes`` are the labels the tax codes refer to."""

    currency: str
    charges: tuple[Charge, ...] = ()
    discounts: tuple[Discount, ...] = ()
    taxes: tuple[TaxLabel, ...] = ()
    rounding: TaxRounding = TaxRounding.PER_LINE
    credit_available: int = 0  # account credit from earlier invoices / credit notes, >= 0
    minimum_spend: int = 0  # 0: no minimum
    minimum_spend_tax_codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("charges", "discounts", "taxes", "minimum_spend_tax_codes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        try:
            object.__setattr__(self, "rounding", TaxRounding(self.rounding))
        except ValueError:
            raise InvoiceInputError(f"unknown tax rounding {self.rounding!r}") from None


@dataclass(frozen=True)
class InvoiceLine:
    """A line as shown: ``amount`` as charged, ``net`` excluding every tax, ``taxes`` per label."""

    position: int
    kind: LineKind
    description: str
    quantity: Decimal
    unit: str
    amount: int
    net: int
    taxes: tuple[LineTax, ...]
    tax_codes: tuple[str, ...]
    calls: int = 0
    seconds: int = 0
    ref: str | None = None

    @property
    def tax_amount(self) -> int:
        return sum(t.amount for t in self.taxes)

    @property
    def gross(self) -> int:
        """The line with every tax: what it adds to the invoice total."""
        return self.net + self.tax_amount


@dataclass(frozen=True)
class ComposedInvoice:
    currency: str
    lines: tuple[InvoiceLine, ...] = ()
    tax_totals: tuple[TaxTotal, ...] = ()
    subtotal: int = 0
    tax_total: int = 0
    total: int = 0
    credit_applied: int = 0
    amount_due: int = 0


@dataclass
class _Draft:
    kind: LineKind
    description: str
    amount: int
    labels: tuple[TaxLabel, ...]
    quantity: Decimal = Decimal(1)
    unit: str = ""
    calls: int = 0
    seconds: int = 0
    ref: str | None = None
    key: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.key = tuple(label.code for label in self.labels)


def _validate(inputs: InvoiceInputs) -> dict[str, TaxLabel]:
    try:
        exponent(inputs.currency)
    except ValueError as e:
        raise InvoiceInputError(str(e)) from None
    for name in ("credit_available", "minimum_spend"):
        _check_count(getattr(inputs, name), name)
    for charge in inputs.charges:
        if not isinstance(charge, Charge):
            raise InvoiceInputError(f"expected a Charge, not {type(charge).__name__}")
    seen: set[str] = set()
    for d in inputs.discounts:
        if not isinstance(d, Discount):
            raise InvoiceInputError(f"expected a Discount, not {type(d).__name__}")
        if d.code in seen:
            raise InvoiceInputError(f"discount {d.code!r} is given twice")
        seen.add(d.code)
    try:
        return label_table(inputs.taxes)
    except (TypeError, ValueError) as e:
        raise InvoiceInputError(str(e)) from None


def _labels(codes: tuple[str, ...], table: dict[str, TaxLabel], what: str) -> tuple[TaxLabel, ...]:
    try:
        return resolve(codes, table)
    except ValueError as e:
        raise InvoiceInputError(f"{what}: {e}") from None


def _groups(drafts: Sequence[_Draft], scope: DiscountScope) -> dict[tuple[str, ...], int]:
    """What remains of ``scope`` per tax-code group (discount lines count on their group)."""
    kinds = _SCOPE_KINDS[scope]
    groups: dict[tuple[str, ...], int] = {}
    for draft in drafts:
        if draft.kind in kinds:
            groups[draft.key] = groups.get(draft.key, 0) + draft.amount
    return groups


def _discount_lines(
    shares: Sequence[DiscountShare[tuple[str, ...]]], labels: dict[tuple[str, ...], _Draft]
) -> list[_Draft]:
    return [
        _Draft(LineKind.DISCOUNT, s.discount.name, s.amount, labels[s.key].labels,
               ref=s.discount.code)
        for s in shares
    ]


def compose(inputs: InvoiceInputs) -> ComposedInvoice:
    """The invoice of ``inputs`` (see the module docstring for the order of composition)."""
    table = _validate(inputs)
    charges = [
        _Draft(
            c.kind, c.description, c.amount,
            _labels(c.tax_codes, table, f"charge {i} ({c.description!r})"),
            c.quantity, c.unit, c.calls, c.seconds, c.ref,
        )
        for i, c in enumerate(inputs.charges, start=1)
    ]
    by_key = {draft.key: draft for draft in charges}

    def discount(scope: DiscountScope, drafts: Sequence[_Draft]) -> tuple[list[_Draft], int]:
        mine = [d for d in inputs.discounts if d.scope is scope]
        remaining = _groups(drafts, scope)
        shares, left = apply_discounts(mine, remaining)
        return _discount_lines(shares, by_key), sum(left.values())

    usage_discounts, usage_left = discount(DiscountScope.USAGE, charges)
    # USAGE and RECURRING scopes are disjoint, so applying them in the given order is the same
    # as applying each scope's discounts in order; keep the given order for the line positions.
    recurring_discounts, _ = discount(DiscountScope.RECURRING, charges)
    order = {d.code: i for i, d in enumerate(inputs.discounts)}
    scoped = sorted(usage_discounts + recurring_discounts, key=lambda x: order[str(x.ref)])

    extra: list[_Draft] = []
    if inputs.minimum_spend > 0 and usage_left < inputs.minimum_spend:
        labels = _labels(inputs.minimum_spend_tax_codes, table, "minimum spend")
        extra.append(
            _Draft(LineKind.MINIMUM_SPEND, MINIMUM_SPEND_DESCRIPTION,
                   inputs.minimum_spend - usage_left, labels)
        )
        by_key.setdefault(extra[0].key, extra[0])

    charged = charges + extra
    invoice_discounts, _ = discount(DiscountScope.INVOICE, charged + scoped)
    drafts = charged + scoped + invoice_discounts

    taxed, totals = tax_lines([(d.amount, d.labels) for d in drafts], inputs.rounding)
    lines = tuple(
        InvoiceLine(
            position=i,
            kind=d.kind,
            description=d.description,
            quantity=d.quantity,
            unit=d.unit,
            amount=d.amount,
            net=t.net,
            taxes=t.taxes,
            tax_codes=d.key,
            calls=d.calls,
            seconds=d.seconds,
            ref=d.ref,
        )
        for i, (d, t) in enumerate(zip(drafts, taxed, strict=True), start=1)
    )
    subtotal = sum(line.net for line in lines)
    tax_total = sum(t.amount for t in totals)
    total = subtotal + tax_total
    credit = min(inputs.credit_available, max(total, 0))
    return ComposedInvoice(
        currency=inputs.currency,
        lines=lines,
        tax_totals=tuple(totals),
        subtotal=subtotal,
        tax_total=tax_total,
        total=total,
        credit_applied=credit,
        amount_due=total - credit,
    )
