"""Auto top-up decisions (pure): whether a balance that fell through its line is charged now.

A crossing of the line (an alert) is the only trigger, and it is answered once: a charge only
when no attempt is pending, fewer than ``cap`` attempts were made in the last ``window``, and
the card's last declines are behind their backoff (doubling per consecutive decline, at most
``max_backoff``): a declined card is never retried every cycle. The amount is the configured
one, or what brings the balance up to the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

__all__ = ["Attempt", "Decision", "Limits", "decide"]

Status = Literal["pending", "succeeded", "declined", "failed"]
MAX_BACKOFF: Final = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Limits:
    cap: int = 3  # charges per window at most
    window: timedelta = timedelta(hours=1)
    backoff: timedelta = timedelta(hours=1)  # after a decline; doubles per consecutive one
    max_backoff: timedelta = MAX_BACKOFF


@dataclass(frozen=True, slots=True)
class Attempt:
    at: datetime
    status: Status


@dataclass(frozen=True, slots=True)
class Decision:
    amount: int | None  # micros to charge; None: not now
    reason: str


def _declines(attempts: Sequence[Attempt]) -> tuple[int, datetime | None]:
    """Consecutive declines (and failures) since the last success, and the latest's time."""
    n, last = 0, None
    for a in sorted(attempts, key=lambda a: a.at, reverse=True):
        if a.status in ("declined", "failed"):
            n += 1
            last = last or a.at
        elif a.status == "succeeded":
            break
    return n, last


def decide(limits: Limits, attempts: Sequence[Attempt], *, balance: int, threshold: int,
           amount: int, target: int | None, now: datetime) -> Decision:  # fmt: skip
    """``attempts``: this account's recent ones (at least the last ``window`` and every
    decline since the last success)."""
    if balance >= threshold:
        return Decision(None, "recovered: the balance is back at the line")
    if any(a.status == "pending" for a in attempts):
        return Decision(None, "pending: an attempt is under way")
    recent = [a for a in attempts if a.at > now - limits.window]
    if len(recent) >= limits.cap:
        return Decision(None, f"capped: {limits.cap} attempts in {limits.window}")
    n, last = _declines(attempts)
    if n and last is not None:
        wait = min(limits.backoff * (2 ** (n - 1)), limits.max_backoff)
        if now < last + wait:
            return Decision(None, f"backoff: declined {n}x, next try after {last + wait}")
    charge = max(target - balance, 0) if target is not None else amount
    if charge <= 0:
        return Decision(None, "nothing to charge")
    return Decision(charge, "charge")
