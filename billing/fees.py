"""Recurring, DID and one-time charges of one bill period, as invoice charges (pure).

A recurring fee is charged for the days of the period it covers: whole when one plan ran all
period, prorated by days used / days in the actual period for each plan segment when the plan
(or its extension and seat counts) changed mid-period. DID monthly fees follow the DID's
assignment the same way; a DID's setup fee is charged once, on the first invoice after it was
assigned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from billing.composition import Charge, LineKind
from billing.cycles import BillingPeriod
from billing.proration import prorate

__all__ = [
    "DidTerms", "OneTimeCharge", "PlanSegment", "PlanTerms", "did_charges", "final_settlement",
    "one_time_charges", "recurring_charges",
]

# A DID's fee is monthly; other periods charge it this many times (weekly: 12/52 of a month).
_MONTHS: dict[BillingPeriod, Decimal] = {
    BillingPeriod.WEEKLY: Decimal(12) / Decimal(52), BillingPeriod.MONTHLY: Decimal(1),
    BillingPeriod.QUARTERLY: Decimal(3), BillingPeriod.YEARLY: Decimal(12),
}


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """The fees of a bill plan, in minor units per period."""

    plan_id: str
    name: str
    plan_fee: int = 0
    per_extension_fee: int = 0
    per_seat_fee: int = 0


@dataclass(frozen=True, slots=True)
class PlanSegment:
    """A plan (with its counts) in force on the dates ``[start, end)``."""

    terms: PlanTerms
    start: date
    end: date
    extensions: int = 0
    seats: int = 0


@dataclass(frozen=True, slots=True)
class DidTerms:
    number: str
    description: str
    setup_fee: int
    monthly_fee: int
    assigned_on: date | None
    released_on: date | None
    setup_billed: bool


@dataclass(frozen=True, slots=True)
class OneTimeCharge:
    charge_id: str
    kind: str
    description: str
    amount: int
    quantity: Decimal
    tax_codes: tuple[str, ...] | None


def _overlap(a0: date, a1: date, b0: date, b1: date) -> int:
    return max(0, (min(a1, b1) - max(a0, b0)).days)


def _dates(start: date, end: date) -> str:
    return f"{start.isoformat()} to {(end - timedelta(days=1)).isoformat()}"


def share(amount: int, used: int, days: int) -> int:
    """``amount * used / days`` half-up; ``used`` may exceed ``days`` (a period lengthened by
    a bill cycle day change is charged for every day it has)."""
    if used <= days:
        return prorate(amount, used, days)
    whole, rest = divmod(used, days)
    return amount * whole + prorate(amount, rest, days)


def recurring_charges(
    segments: Iterable[PlanSegment], start: date, end: date, tax_codes: tuple[str, ...],
    reference_days: int | None = None,
) -> list[Charge]:
    """The fees of the period ``[start, end)``: one line per fee and plan segment, prorated
    by days used / days of the actual period (``reference_days``: the length of the period
    the account would have had, for a period a bill cycle day change made shorter or
    longer)."""
    days = reference_days or (end - start).days
    out: list[Charge] = []
    for seg in segments:
        used = _overlap(seg.start, seg.end, start, end)
        if used == 0:
            continue
        s, e = max(seg.start, start), min(seg.end, end)
        note = "" if used == days else f" ({used}/{days} days)"
        fees = (
            ("Plan fee", seg.terms.plan_fee, 1, ""),
            ("Extensions", seg.terms.per_extension_fee, seg.extensions, "ext"),
            ("Seats", seg.terms.per_seat_fee, seg.seats, "seat"),
        )
        for label, unit_fee, count, unit in fees:
            if unit_fee == 0 or count == 0:
                continue
            amount = share(unit_fee * count, used, days)
            out.append(Charge(
                kind=LineKind.RECURRING,
                description=f"{label}: {seg.terms.name or seg.terms.plan_id}, "
                            f"{_dates(s, e)}{note}",
                amount=amount, tax_codes=tax_codes, quantity=Decimal(count), unit=unit,
                ref=seg.terms.plan_id,
            ))
    return out


def final_settlement(
    segments: Sequence[PlanSegment], start: date, end: date, billed_to: date,
    tax_codes: tuple[str, ...], reference_days: int | None = None,
) -> list[Charge]:
    """A final period ``[start, end)`` whose fees were billed in advance up to ``billed_to``:
    the fees of the days used (prorated like any period cut short) less what the advance
    invoice charged, so the days after the end are given back and nothing is billed ahead."""
    if not segments:
        return []
    first = segments[0]
    as_billed = PlanSegment(first.terms, start, billed_to, first.extensions, first.seats)
    out = recurring_charges(segments, start, end, tax_codes, reference_days)
    for c in recurring_charges((as_billed,), start, billed_to, tax_codes):
        out.append(Charge(
            kind=LineKind.RECURRING, description=f"Billed in advance: {c.description}",
            amount=-c.amount, tax_codes=c.tax_codes, quantity=c.quantity, unit=c.unit,
            ref=c.ref,
        ))
    return out


def did_charges(
    dids: Sequence[DidTerms], start: date, end: date, period: BillingPeriod,
    tax_codes: tuple[str, ...], reference_days: int | None = None,
) -> list[Charge]:
    """Setup fees not yet billed and the period's share of each DID's fee (``reference_days``:
    the length the period would have had, for a final period cut short)."""
    days = max(reference_days or 0, (end - start).days)
    out: list[Charge] = []
    for did in dids:
        if did.assigned_on is None:
            continue
        if not did.setup_billed and did.setup_fee and did.assigned_on < end:
            out.append(Charge(
                kind=LineKind.ONE_TIME, description=f"DID {did.number} setup",
                amount=did.setup_fee, tax_codes=tax_codes, ref=did.number,
            ))
        released = did.released_on or end
        used = _overlap(did.assigned_on, released, start, end)
        if used == 0 or did.monthly_fee == 0:
            continue
        per_period = int((did.monthly_fee * _MONTHS[period]).to_integral_value("ROUND_HALF_UP"))
        note = "" if used == days else f" ({used}/{days} days)"
        label = f"DID {did.number}" + (f" ({did.description})" if did.description else "")
        out.append(Charge(
            kind=LineKind.DID, description=f"{label}, {_dates(start, end)}{note}",
            amount=prorate(per_period, used, days), tax_codes=tax_codes, ref=did.number,
        ))
    return out


def one_time_charges(
    charges: Iterable[OneTimeCharge], default_tax_codes: tuple[str, ...]
) -> list[Charge]:
    return [
        Charge(
            kind=LineKind.ONE_TIME, description=c.description, amount=c.amount,
            tax_codes=c.tax_codes if c.tax_codes is not None else default_tax_codes,
            quantity=c.quantity, ref=c.charge_id,
        )
        for c in charges
    ]
