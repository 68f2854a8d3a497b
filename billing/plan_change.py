"""Plan changes (pure): a request's life, and the figures shown before anyone confirms.

A change is requested (by the customer, or by staff for them), then approved or rejected by
staff; an approved change is applied at once (the rest of the open period on the new plan,
both plans prorated by days, exactly as the invoice run will bill it) or at the next period
start. The preview is computed by the same fee rule the invoice uses (``fees``), so what the
customer is shown is what the invoice will say. Money and credit stay with the account: the
preview shows them carried over to the new plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from billing.fees import PlanSegment, PlanTerms, recurring_charges

__all__ = [
    "TRANSITIONS",
    "PlanChangeRefused",
    "Preview",
    "State",
    "Transition",
    "next_state",
    "preview",
]

State = Literal["requested", "approved", "rejected", "cancelled", "applied"]
Transition = Literal["approve", "reject", "cancel", "apply"]
TRANSITIONS: Final[dict[tuple[State, Transition], State]] = {
    ("requested", "approve"): "approved",
    ("requested", "reject"): "rejected",
    ("requested", "cancel"): "cancelled",
    ("approved", "apply"): "applied",
    ("approved", "cancel"): "cancelled",
}
Effective = Literal["now", "boundary"]


class PlanChangeRefused(ValueError):
    """A transition the request's state does not allow."""


_DONE: Final = {"approve": "approved", "reject": "rejected", "cancel": "cancelled",
                "apply": "applied"}


def next_state(state: State, transition: Transition) -> State:
    try:
        return TRANSITIONS[(state, transition)]
    except KeyError:
        raise PlanChangeRefused(f"a request {state} cannot be {_DONE[transition]}") from None


@dataclass(frozen=True, slots=True)
class Preview:
    effective_on: date
    period_start: date
    period_end: date
    current_fees: int  # this period's recurring fees if nothing changes (minor units)
    fees_with_change: int  # this period's recurring fees with the change
    difference: int  # what the change adds to (or, negative, takes off) this period
    next_period_fees: int  # a full period on the new plan
    carried_balance: int  # micros of prepaid money moving over with the account
    carried_credit: int  # minor units of billing credit moving over


def _total(segments: list[PlanSegment], start: date, end: date, reference: int | None) -> int:
    return sum(c.amount for c in recurring_charges(segments, start, end, (), reference))


def preview(current: PlanTerms, new: PlanTerms, *, extensions: int, seats: int,
            period_start: date, period_end: date, today: date, effective: Effective,
            reference_days: int | None = None, balance: int = 0,
            credit: int = 0) -> Preview:  # fmt: skip
    """The figures of changing from ``current`` to ``new`` in the period
    ``[period_start, period_end)`` on ``today``."""
    if not period_start <= today < period_end:
        raise ValueError("today must fall inside the open period")
    when = today if effective == "now" else period_end
    unchanged = [PlanSegment(current, period_start, period_end, extensions, seats)]
    if effective == "now":
        changed = [PlanSegment(current, period_start, today, extensions, seats),
                   PlanSegment(new, today, period_end, extensions, seats)]  # fmt: skip
    else:
        changed = unchanged
    before = _total(unchanged, period_start, period_end, reference_days)
    after = _total(changed, period_start, period_end, reference_days)
    full = _total([PlanSegment(new, period_start, period_end, extensions, seats)],
                  period_start, period_end, None)  # fmt: skip
    return Preview(when, period_start, period_end, before, after, after - before, full,
                   balance, credit)  # fmt: skip
