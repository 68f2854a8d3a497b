"""One account's invoice for one period, from what the run gathered (pure).

The run and the preview both call ``build``: a preview is the same computation on the open
period, so it equals the invoice the run then makes from the same ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from billing.composition import (
    Charge,
    ComposedInvoice,
    InvoiceInputs,
    LineKind,
    UsageGroup,
    compose,
    usage_charge,
)
from billing.cycles import BillCycle, BillingPeriod, PeriodSpan, period_of
from billing.discounts import Discount, active
from billing.fees import (
    DidTerms,
    OneTimeCharge,
    PlanSegment,
    PlanTerms,
    did_charges,
    one_time_charges,
    recurring_charges,
)
from billing.taxes import TaxLabel, TaxRounding

__all__ = ["AccountToBill", "Built", "PlanRules", "build", "consolidate"]


@dataclass(frozen=True, slots=True)
class PlanRules:
    """A bill plan's rules (its fees are ``terms``)."""

    terms: PlanTerms
    period: BillingPeriod
    anchor_month: int
    currency: str
    payment_terms_days: int
    fees_in_advance: bool
    usage_in_arrears: bool
    minimum_spend: int
    invoice_when_empty: bool
    tax_codes: tuple[str, ...]
    payment_text: str


@dataclass(frozen=True, slots=True)
class AccountToBill:
    """An account and the period being billed (``[start_date, end_date)`` local,
    ``[starts_at, ends_at)`` UTC)."""

    tenant_id: str
    account_id: str
    currency: str
    plan: PlanRules
    bcd: int
    index: int
    start_date: date
    end_date: date
    starts_at: datetime
    ends_at: datetime
    tax_codes: tuple[str, ...]
    credit_balance: int
    fees_billed_to: date | None
    segments: tuple[PlanSegment, ...]  # the plan history over this period
    extensions: int = 0
    seats: int = 0
    reference_days: int | None = None  # see fees.recurring_charges

    @property
    def cycle(self) -> BillCycle:
        return BillCycle(self.plan.period, self.bcd, self.plan.anchor_month)


@dataclass(frozen=True, slots=True)
class Built:
    inputs: InvoiceInputs
    composed: ComposedInvoice
    issued_on: date
    due_on: date
    fees_billed_to: date | None
    empty: bool  # nothing to bill: no invoice unless the plan asks for one
    usage_micros: int  # the exact ledger sum the usage lines came from
    one_time_ids: tuple[str, ...] = ()
    setup_dids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def consolidate(
    rows: Sequence[tuple[str, bool, int, int, int]]
) -> list[UsageGroup]:
    """(group name, late, calls, seconds, micros) rows -> one group per name and lateness,
    named groups first by amount, late groups last (several prefixes share a name)."""
    merged: dict[tuple[str, bool], list[int]] = {}
    for name, late, calls, seconds, micros in rows:
        acc = merged.setdefault((name, late), [0, 0, 0])
        acc[0] += calls
        acc[1] += seconds
        acc[2] += micros
    groups = [
        UsageGroup(description=name, calls=c, seconds=s, amount_micros=-m, late=late)
        for (name, late), (c, s, m) in merged.items()
    ]
    groups.sort(key=lambda g: (g.late, -g.amount_micros, g.description))
    return groups


def _fees(a: AccountToBill) -> tuple[list[Charge], date | None]:
    """Recurring fees and up to where they are now billed."""
    codes = a.tax_codes
    if not a.plan.fees_in_advance:
        return recurring_charges(a.segments, a.start_date, a.end_date, codes,
                                 a.reference_days), a.end_date
    nxt = period_of(a.cycle, a.end_date)
    nxt = PeriodSpan(nxt.index, a.end_date, nxt.end, a.cycle)
    ahead = PlanSegment(a.plan.terms, nxt.start, nxt.end, a.extensions, a.seats)
    out: list[Charge] = []
    billed_to = a.fees_billed_to
    if billed_to is None or billed_to <= a.start_date:
        # This period was never billed in advance (the account's first invoice): bill it now.
        out += recurring_charges(a.segments, a.start_date, a.end_date, codes,
                                 a.reference_days)
    elif a.segments and (len(a.segments) > 1 or a.segments[0].terms != a.plan.terms):
        # Billed ahead at the plan of its start; a change since is settled now, by segment.
        first = a.segments[0]
        as_billed = PlanSegment(first.terms, a.start_date, a.end_date, first.extensions,
                                first.seats)
        for c in recurring_charges(a.segments, a.start_date, a.end_date, codes):
            out.append(c)
        for c in recurring_charges((as_billed,), a.start_date, a.end_date, codes):
            out.append(Charge(
                kind=LineKind.RECURRING, description=f"Billed in advance: {c.description}",
                amount=-c.amount, tax_codes=c.tax_codes, quantity=c.quantity, unit=c.unit,
                ref=c.ref,
            ))
    out += recurring_charges((ahead,), nxt.start, nxt.end, codes)
    return out, nxt.end


def build(
    a: AccountToBill,
    usage: Sequence[UsageGroup],
    *,
    dids: Sequence[DidTerms] = (),
    one_times: Sequence[OneTimeCharge] = (),
    discounts: Sequence[Discount] = (),
    taxes: Sequence[TaxLabel] = (),
    rounding: TaxRounding = TaxRounding.PER_LINE,
) -> Built:
    """The invoice of ``a``'s period: usage (in arrears), fees, DIDs, one-time charges,
    discounts active at the period's start, taxes, and the account's credit."""
    charges: list[Charge] = []
    if a.plan.usage_in_arrears:
        charges += [usage_charge(g, a.currency, a.tax_codes) for g in usage]
    fees, billed_to = _fees(a)
    charges += fees
    charges += did_charges(dids, a.start_date, a.end_date, a.plan.period, a.tax_codes)
    charges += one_time_charges(one_times, a.tax_codes)
    charges = [c for c in charges if c.amount != 0 or c.calls]
    live = tuple(d for d in discounts if active(d, a.start_date, a.end_date))
    inputs = InvoiceInputs(
        currency=a.currency, charges=tuple(charges), discounts=live, taxes=tuple(taxes),
        rounding=rounding, credit_available=a.credit_balance,
        minimum_spend=a.plan.minimum_spend if charges or a.plan.invoice_when_empty else 0,
        minimum_spend_tax_codes=a.tax_codes,
    )
    composed = compose(inputs)
    issued = a.end_date
    return Built(
        inputs=inputs, composed=composed, issued_on=issued,
        due_on=issued + timedelta(days=a.plan.payment_terms_days),
        fees_billed_to=billed_to, empty=not charges,
        usage_micros=sum(g.amount_micros for g in usage) if a.plan.usage_in_arrears else 0,
        one_time_ids=tuple(c.charge_id for c in one_times),
        setup_dids=tuple(
            d.number for d in dids
            if not d.setup_billed and d.setup_fee and d.assigned_on is not None
            and d.assigned_on < a.end_date
        ),
    )
