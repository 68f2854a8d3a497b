"""The suspension ladder (pure): which dunning step an overdue postpaid account is on.

A tenant (or a bill plan) declares ordered steps, mildest first, e.g. reminder -> outgoing
suspension -> service suspension -> termination. Each has conditions that must
all hold (days since the oldest unpaid due date, open overdue amount at least X, number of
unpaid overdue invoices) and actions that run once per entry into it (a notice, a late fee on
the next invoice, an account status). As in Kill Bill's overdue states, the account is on the
worst step whose conditions hold, and in good standing when none does; re-evaluated on every
payment, credit note and invoice, and daily. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from charging_engine.account_status import AccountStatus

__all__ = [
    "Ladder",
    "LadderError",
    "LateFee",
    "Overdue",
    "Step",
    "late_fee",
    "parse_ladder",
    "step_for",
    "terminates",
    "wanted_status",
]  # fmt: skip

MAX_STEPS: Final = 10
# Mildest first. Termination bars service at once, ends billing with a final invoice and closes
# the account once its balance is settled (``billing.termination``): irreversible, so only the
# last step of a ladder may set it.
SETTABLE: Final = (AccountStatus.OUTGOING_SUSPENDED, AccountStatus.SUSPENDED,
                   AccountStatus.INACTIVE, AccountStatus.TERMINATED)  # fmt: skip


class LadderError(ValueError):
    """A ladder that cannot be used as declared (the message says why)."""


@dataclass(frozen=True, slots=True)
class LateFee:
    """``fixed`` minor units, or ``percent`` of the overdue amount (half-up to the unit)."""

    fixed: int = 0
    percent: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    min_days: int  # days past the oldest unpaid due date, >= 1
    min_amount: int = 0  # open overdue amount at least (minor units)
    min_invoices: int = 1  # unpaid overdue invoices at least
    status: AccountStatus | None = None  # the account status this step sets
    late_fee: LateFee | None = None
    notify: bool = True


@dataclass(frozen=True, slots=True)
class Ladder:
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.steps) <= MAX_STEPS:
            raise LadderError(f"a ladder has 1-{MAX_STEPS} steps")
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise LadderError("step names must be unique")
        days = [s.min_days for s in self.steps]
        if days != sorted(days) or any(d < 1 for d in days):
            raise LadderError("steps are listed mildest first: min_days >= 1, never decreasing")
        for s in self.steps:
            if not s.name or len(s.name) > 40 or not s.name.replace("_", "").isalnum():
                raise LadderError(f"step name {s.name!r}: 1-40 letters, digits or _")
            if s.min_amount < 0 or s.min_invoices < 1:
                raise LadderError(f"step {s.name}: min_amount >= 0 and min_invoices >= 1")
            if s.status is not None and s.status not in SETTABLE:
                raise LadderError(f"step {s.name}: status must be one of "
                                  f"{', '.join(x.value for x in SETTABLE)}")  # fmt: skip
            if s.status is AccountStatus.TERMINATED and s is not self.steps[-1]:
                raise LadderError(f"step {s.name}: terminated must be the last step")
            fee = s.late_fee
            if fee is not None and (fee.fixed < 0 or not 0 <= fee.percent <= 100
                                    or (fee.fixed == 0 and fee.percent == 0)):  # fmt: skip
                raise LadderError(f"step {s.name}: a late fee is fixed >= 0 and/or 0-100 %")
        worst = [s.status for s in self.steps if s.status is not None]
        order = {st: i for i, st in enumerate(SETTABLE)}
        if [order[x] for x in worst] != sorted(order[x] for x in worst):
            raise LadderError("statuses only get stricter down the ladder")


@dataclass(frozen=True, slots=True)
class Overdue:
    """What an account owes past due on the day evaluated."""

    oldest_due: date | None  # the oldest due date among unpaid invoices past due
    amount: int  # open amount of those invoices
    invoices: int  # how many


def terminates(ladder: Ladder, step: int | None) -> bool:
    """Whether ``step`` is the ladder's terminating step (only ever its last)."""
    return step is not None and ladder.steps[step].status is AccountStatus.TERMINATED


def wanted_status(ladder: Ladder, step: int | None) -> AccountStatus:
    """The status the ladder wants on ``step``: the strictest one set at or above it; on the
    terminating step, service barred (``suspended``, or ``inactive`` if a step set it) until
    the account can be closed."""
    wanted = AccountStatus.ACTIVE
    for s in ladder.steps[: (step + 1) if step is not None else 0]:
        if s.status is AccountStatus.TERMINATED:
            if wanted is not AccountStatus.INACTIVE:
                wanted = AccountStatus.SUSPENDED
        elif s.status is not None:
            wanted = s.status
    return wanted


def step_for(ladder: Ladder, overdue: Overdue, today: date) -> int | None:
    """The index of the worst step whose conditions all hold; None: good standing."""
    if overdue.oldest_due is None or overdue.amount <= 0 or overdue.invoices < 1:
        return None
    days = (today - overdue.oldest_due).days
    for i in range(len(ladder.steps) - 1, -1, -1):
        s = ladder.steps[i]
        if days >= s.min_days and overdue.amount >= s.min_amount \
                and overdue.invoices >= s.min_invoices:  # fmt: skip
            return i
    return None


def late_fee(fee: LateFee, overdue_amount: int) -> int:
    """The fee for entering a step with ``overdue_amount`` open (minor units)."""
    share = (Decimal(overdue_amount) * fee.percent / 100).quantize(Decimal(1), ROUND_HALF_UP)
    return fee.fixed + int(share)


def parse_ladder(doc: Sequence[Mapping[str, Any]]) -> Ladder:
    """A ladder from its stored / API form (a list of step objects)."""
    steps: list[Step] = []
    try:
        for raw in doc:
            fee = raw.get("late_fee")
            steps.append(Step(
                name=str(raw["name"]), min_days=int(raw["min_days"]),
                min_amount=int(raw.get("min_amount", 0)),
                min_invoices=int(raw.get("min_invoices", 1)),
                status=AccountStatus(raw["status"]) if raw.get("status") else None,
                late_fee=LateFee(int(fee.get("fixed", 0)), Decimal(str(fee.get("percent", 0))))
                if fee else None,
                notify=bool(raw.get("notify", True)),
            ))  # fmt: skip
    except (KeyError, TypeError, ValueError, ArithmeticError) as e:
        if isinstance(e, LadderError):
            raise
        raise LadderError(f"a step is malformed: {e!r}") from None
    return Ladder(tuple(steps))


def ladder_doc(ladder: Ladder) -> list[dict[str, Any]]:
    """The stored form of ``ladder`` (``parse_ladder`` reads it back)."""
    return [{"name": s.name, "min_days": s.min_days, "min_amount": s.min_amount,
             "min_invoices": s.min_invoices, "status": s.status.value if s.status else None,
             "late_fee": {"fixed": s.late_fee.fixed, "percent": str(s.late_fee.percent)}
             if s.late_fee else None, "notify": s.notify} for s in ladder.steps]  # fmt: skip


def entered(before: int | None, after: int | None) -> Iterable[int]:
    """The steps whose entry actions run when an account moves from ``before`` to ``after``:
    the new step only (a late evaluation does not charge the fees of steps it skipped)."""
    if after is not None and after != before:
        yield after
