"""Collections, the pure rules: what a visit outcome means for its task, which presets a tenant
may declare, which agent a new task goes to, and what a renewal costs the customer at the door.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from billing.errors import InvalidBillingInput

__all__ = ["DEFAULT_PRESETS", "METHODS", "Preset", "Quote", "check_presets", "check_visit",
           "pick_agent", "quote", "status_after"]

Outcome = Literal["collected", "absent", "promised", "refused", "other"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("collected", "absent", "promised", "refused", "other")
METHODS: Final = ("cash", "cheque", "card")  # what an agent takes at the door
MAX_PRESETS: Final = 30
MAX_COMMENT: Final = 500
_CODE: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True)
class Preset:
    code: str
    label: str
    outcome: Outcome


DEFAULT_PRESETS: Final = (
    Preset("collected", "Collected", "collected"),
    Preset("customer_absent", "Customer absent", "absent"),
    Preset("promised_to_pay", "Promised to pay on a date", "promised"),
    Preset("refused", "Refused to pay", "refused"),
)

# A task's state after a visit with this outcome; a collected or cancelled task is closed.
_AFTER: Final[dict[Outcome, str]] = {
    "collected": "collected", "promised": "promised", "absent": "visited",
    "refused": "visited", "other": "visited",
}
CLOSED: Final = frozenset({"collected", "cancelled"})


def status_after(outcome: Outcome) -> str:
    return _AFTER[outcome]


def check_presets(presets: Sequence[Preset]) -> None:
    """A tenant's presets: distinct codes, known outcomes, and one ``collected`` preset at least
    (a collection is recorded under it)."""
    if not presets or len(presets) > MAX_PRESETS:
        raise InvalidBillingInput(f"give 1 to {MAX_PRESETS} presets")
    codes = [p.code for p in presets]
    if len(set(codes)) != len(codes):
        raise InvalidBillingInput("preset codes must be distinct")
    for p in presets:
        if not _CODE.match(p.code):
            raise InvalidBillingInput(f"preset code {p.code!r}: lowercase letters, digits and _")
        if p.outcome not in OUTCOMES:
            raise InvalidBillingInput(f"preset outcome must be one of {', '.join(OUTCOMES)}")
        if not p.label.strip() or len(p.label) > 100:
            raise InvalidBillingInput("a preset's label has 1-100 characters")
    if not any(p.outcome == "collected" for p in presets):
        raise InvalidBillingInput("one preset at least has the outcome 'collected'")


def check_visit(preset: Preset, promised_on: date | None, comment: str, today: date,
                *, collecting: bool) -> None:  # fmt: skip
    """A visit as recorded: a promise names a day from today on; only a collection (with its
    payment) uses a ``collected`` preset; a comment is bounded."""
    if len(comment) > MAX_COMMENT:
        raise InvalidBillingInput(f"a comment has at most {MAX_COMMENT} characters")
    if (preset.outcome == "collected") != collecting:
        raise InvalidBillingInput(
            "record a collection with its payment (POST .../collections)" if not collecting
            else f"preset {preset.code!r} is not a collection")  # fmt: skip
    if preset.outcome == "promised":
        if promised_on is None:
            raise InvalidBillingInput(f"preset {preset.code!r} needs promised_on")
        if promised_on < today:
            raise InvalidBillingInput("promised_on is today or later")
    elif promised_on is not None:
        raise InvalidBillingInput(f"preset {preset.code!r} takes no promised_on")


@dataclass(frozen=True, slots=True)
class Candidate:
    agent_id: str
    area: str
    open_tasks: int


def pick_agent(area: str, agents: Iterable[Candidate]) -> str | None:
    """The assignment rule: the agent of the task's area with the fewest open tasks (then the
    smallest id, so the choice is repeatable); None when no agent covers the area."""
    if not area:
        return None
    found = [a for a in agents if a.area == area]
    if not found:
        return None
    return min(found, key=lambda a: (a.open_tasks, a.agent_id)).agent_id


@dataclass(frozen=True, slots=True)
class Quote:
    """What the agent asks for (minor units): ``owed`` open invoices plus a renewal's ``price``,
    less what the account's own money covers of the price (``transferred``)."""

    owed: int
    price: int
    available: int
    transferred: int
    to_collect: int
    left_over: int


def quote(owed: int, price: int, available: int) -> Quote:
    """The balance transfer of a renewal: the account's money (prepaid balance or billing
    credit, ``available``) pays the renewal's price first; the rest and what is owed are
    collected. Open invoices are not paid from it here: the receivables allocation did that."""
    if min(owed, price) < 0:
        raise InvalidBillingInput("amounts are not negative")
    usable = max(available, 0)
    transferred = min(usable, price)
    return Quote(owed, price, available, transferred, owed + price - transferred,
                 usable - transferred)
