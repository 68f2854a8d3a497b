"""Prepaid periods (pure): which money has expired, and where a dormant account stands.

Money is spent oldest first, so what is left of a balance is always its newest money: walking
the inflows (top-ups, credits) from the newest back, each keeps as much of the spendable
balance as it brought, until the balance is used up. A top-up past its ``valid_until`` then
expires exactly the part of it that is still there, and nothing already spent. An inflow that
has expired before takes nothing (its remainder left the balance then).

Dormancy counts the days a balance has stayed at zero (or below): ``inactivate_after`` days
make the account inactive, ``terminate_after`` more days close it; a warning goes out
``warn_days`` before each step and before a top-up expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

__all__ = ["Dormancy", "Expiring", "Inflow", "Policy", "PolicyInvalid", "dormancy_step",
           "expiring", "expiring_soon", "parse_policy", "policy_doc", "remaining"]  # fmt: skip

MAX_DAYS: Final = 3650
Step = Literal["inactivation_warning", "inactivate", "termination_warning", "terminate"]


class PolicyInvalid(ValueError):
    """A prepaid policy document that cannot be applied."""


@dataclass(frozen=True, slots=True)
class Policy:
    validity_days: int | None = None  # a top-up's default validity; None: money never expires
    warn_days: int = 7  # warnings this many days before an expiry or a dormancy step
    inactivate_after: int | None = None  # days at zero before inactivation; None: never
    terminate_after: int | None = None  # days inactive (at zero) before termination

    def valid_until(self, topped_at: datetime, days: int | None = None) -> datetime | None:
        """When money topped up at ``topped_at`` expires (``days`` overrides the default)."""
        d = self.validity_days if days is None else days
        return None if d is None else topped_at + timedelta(days=d)


def _days(doc: Mapping[str, Any], name: str, *, low: int, optional: bool) -> int | None:
    v = doc.get(name)
    if v is None:
        if optional:
            return None
        raise PolicyInvalid(f"{name} is required")
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= MAX_DAYS:
        raise PolicyInvalid(f"{name} must be a whole number of days, {low}-{MAX_DAYS}")
    return v


def parse_policy(doc: Mapping[str, Any]) -> Policy:
    unknown = set(doc) - {"validity_days", "warn_days", "inactivate_after", "terminate_after"}
    if unknown:
        raise PolicyInvalid(f"unknown fields: {', '.join(sorted(unknown))}")
    warn = _days(doc, "warn_days", low=0, optional=True)
    p = Policy(
        validity_days=_days(doc, "validity_days", low=1, optional=True),
        warn_days=7 if warn is None else warn,
        inactivate_after=_days(doc, "inactivate_after", low=1, optional=True),
        terminate_after=_days(doc, "terminate_after", low=1, optional=True),
    )
    if p.terminate_after is not None and p.inactivate_after is None:
        raise PolicyInvalid("terminate_after needs inactivate_after (termination follows it)")
    return p


def policy_doc(p: Policy) -> dict[str, int | None]:
    return {"validity_days": p.validity_days, "warn_days": p.warn_days,
            "inactivate_after": p.inactivate_after, "terminate_after": p.terminate_after}


@dataclass(frozen=True, slots=True)
class Inflow:
    """Money that came into the balance: ``ref`` names it (its ledger seq)."""

    ref: int
    amount: int  # micros, above zero
    valid_until: datetime | None = None
    expired: bool = False  # its expiry ran already


@dataclass(frozen=True, slots=True)
class Expiring:
    ref: int
    amount: int  # what is still there of it: the expiry takes this (0: all of it was spent)
    valid_until: datetime


def remaining(inflows: Iterable[Inflow], spendable: int) -> dict[int, int]:
    """What is left of each inflow when ``spendable`` is all that is left (newest kept)."""
    left = max(spendable, 0)
    out: dict[int, int] = {}
    for f in sorted(inflows, key=lambda f: f.ref, reverse=True):
        keep = 0 if f.expired else min(f.amount, left)
        out[f.ref] = keep
        left -= keep
    return out


def expiring(inflows: Iterable[Inflow], spendable: int, now: datetime) -> list[Expiring]:
    """The top-ups due to expire at ``now`` (not expired yet), oldest first, with what is left
    of each; together they never take more than ``spendable``."""
    flows = list(inflows)
    left = remaining(flows, spendable)
    due = [f for f in flows if not f.expired and f.valid_until is not None
           and f.valid_until <= now]  # fmt: skip
    return [Expiring(f.ref, left[f.ref], f.valid_until) for f in sorted(due, key=lambda f: f.ref)
            if f.valid_until is not None]  # fmt: skip


def expiring_soon(inflows: Iterable[Inflow], spendable: int, now: datetime, warn_days: int
                  ) -> list[Expiring]:  # fmt: skip
    """Top-ups expiring within ``warn_days`` with money still left of them (to warn about)."""
    flows = list(inflows)
    left = remaining(flows, spendable)
    horizon = now + timedelta(days=warn_days)
    return [Expiring(f.ref, left[f.ref], f.valid_until) for f in sorted(flows, key=lambda f: f.ref)
            if not f.expired and f.valid_until is not None and now < f.valid_until <= horizon
            and left[f.ref] > 0]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Dormancy:
    step: Step
    on: date  # the day the step is due


def dormancy_step(policy: Policy, zero_since: date | None, today: date) -> list[Dormancy]:
    """The dormancy steps due by ``today`` for a balance at zero since ``zero_since`` (None:
    the balance is above zero, nothing is due), in the order they fall."""
    if zero_since is None or policy.inactivate_after is None:
        return []
    inactivate = zero_since + timedelta(days=policy.inactivate_after)
    warn = timedelta(days=policy.warn_days)
    steps = [Dormancy("inactivation_warning", inactivate - warn),
             Dormancy("inactivate", inactivate)]
    if policy.terminate_after is not None:
        terminate = inactivate + timedelta(days=policy.terminate_after)
        steps += [Dormancy("termination_warning", terminate - warn),
                  Dormancy("terminate", terminate)]  # fmt: skip
    return [s for s in steps if s.on <= today]
