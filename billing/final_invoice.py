"""The final invoice of an account whose billing ends (pure): ``invoice_build.build`` on the
period cut short at the end of billing, with what a last invoice must do differently.

The run marks the period ``final`` (``run_inputs.final_view``) and has already gathered every
settled usage entry and every unbilled one-time charge for it (a cancellation fee among them).
Here: nothing is billed ahead (a plan billing fees in advance is settled instead: the days used,
less what the advance invoice charged, so the days after the end are given back); DID fees and
the minimum spend are prorated to the days billed, like the recurring fees (by the length the
period would have had), instead of a whole period's for a shorter one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from billing.composition import Charge, UsageGroup, compose
from billing.discounts import Discount
from billing.fees import DidTerms, OneTimeCharge, did_charges, final_settlement
from billing.invoice_build import AccountToBill, Built, build
from billing.proration import prorate
from billing.taxes import TaxLabel, TaxRounding

__all__ = ["build_final"]


def build_final(
    a: AccountToBill,
    usage: Sequence[UsageGroup],
    *,
    dids: Sequence[DidTerms] = (),
    one_times: Sequence[OneTimeCharge] = (),
    discounts: Sequence[Discount] = (),
    taxes: Sequence[TaxLabel] = (),
    rounding: TaxRounding = TaxRounding.PER_LINE,
) -> Built:
    """The final invoice of ``a``'s period (same arguments as ``build``)."""
    billed_to = a.fees_billed_to
    ahead = a.plan.fees_in_advance and billed_to is not None and billed_to > a.start_date
    plain = replace(a, plan=replace(a.plan, fees_in_advance=False),
                    segments=() if ahead else a.segments)  # fmt: skip
    b = build(plain, usage, one_times=one_times, discounts=discounts, taxes=taxes,
              rounding=rounding)  # fmt: skip
    extra: list[Charge] = []
    if ahead:
        assert billed_to is not None
        extra += final_settlement(a.segments, a.start_date, a.end_date, billed_to, a.tax_codes,
                                  a.reference_days)  # fmt: skip
    extra += did_charges(dids, a.start_date, a.end_date, a.plan.period, a.tax_codes,
                         a.reference_days)  # fmt: skip
    charges = tuple(c for c in (*b.inputs.charges, *extra) if c.amount != 0 or c.calls)
    spend = 0
    if charges or a.plan.invoice_when_empty:
        days = (a.end_date - a.start_date).days
        spend = a.plan.minimum_spend
        if a.reference_days and days < a.reference_days:
            spend = prorate(spend, days, a.reference_days)
    inputs = replace(b.inputs, charges=charges, minimum_spend=spend)
    return replace(
        b, inputs=inputs, composed=compose(inputs), empty=not charges,
        fees_billed_to=a.end_date,
        setup_dids=tuple(d.number for d in dids if not d.setup_billed and d.setup_fee
                         and d.assigned_on is not None and d.assigned_on < a.end_date),
    )  # fmt: skip
