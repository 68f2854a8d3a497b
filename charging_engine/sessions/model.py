"""What the charging service is asked and what it answers; transport-neutral."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from charging_engine.account_status import AccountStatus


class Reason(StrEnum):
    """Machine-readable outcome of a charging request."""

    OK = "ok"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    ACCOUNT_SUSPENDED = "account_suspended"
    OUTGOING_SUSPENDED = "outgoing_suspended"  # outgoing calls barred (dunning), inbound kept
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_TENANT = "unknown_tenant"
    NO_RATE = "no_rate"
    NO_RATE_PLAN = "no_rate_plan"
    ALREADY_ENDED = "already_ended"
    UNKNOWN_CALL = "unknown_call"
    DUPLICATE = "duplicate"
    MAX_CALL_DURATION = "max_call_duration"  # the longest call allowed is reached, not the money


def refusal_for(status: AccountStatus) -> Reason:
    """The reason a call is refused for ``status``: outgoing barring has its own."""
    if status is AccountStatus.OUTGOING_SUSPENDED:
        return Reason.OUTGOING_SUSPENDED
    return Reason.ACCOUNT_SUSPENDED


class InvalidRequest(ValueError):
    """Input that can never succeed (bad number, bad id, impossible duration): a 4xx."""


class NotFound(LookupError):
    """A tenant, account or call that does not exist: a 404 carrying a ``Reason``."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Decision(NamedTuple):
    """Authorization answer: may the call go ahead, and for how many answered seconds."""

    allowed: bool
    reason: Reason
    max_seconds: int  # covered by this call's reservation (one slice)
    reserved: int = 0
    destination: str = ""
    rate_prefix: str | None = None
    detail: str = ""
    # What all the account's available money would pay for, were this its only call: a hard
    # backstop limit for PBXs (Dial L()) while extensions keep the reservation ahead.
    # Priced only when asked for (``with_affordable``); otherwise equal to ``max_seconds``.
    affordable_seconds: int = 0


class Answered(NamedTuple):
    answered_at_ms: int
    max_seconds: int


class Extension(NamedTuple):
    """Result of extending an answered call's reservation by one slice."""

    extended: bool
    reason: Reason
    max_seconds: int  # total answered seconds now covered
    seconds_left: int | None  # from now, when answered; None before answer


@dataclass(frozen=True, slots=True)
class Correction:
    """Outcome of reconciling a settled call against the PBX's CDR."""

    corrected: bool
    reason: str  # corrected | within_tolerance | already_corrected | not_settled | unrated
    charged_seconds: int | None
    cdr_seconds: int
    delta: int  # micros added to the charge (negative: refunded)


class Charge(NamedTuple):
    """Result of ending a call: charged once, whatever the number of ends received."""

    reason: Reason  # OK, or DUPLICATE for a repeated end
    cost: int
    balance: int
    billed_seconds: int
    duration: int
