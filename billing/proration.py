"""Proration: the share of a recurring charge for part of a bill period, in integer minor units.

The share is days used / days in the actual period (never a notional 30-day month), computed in
Decimal and rounded half-up explicitly: Decimal's default context rounds half-even, which bills
half a cent as 0 and 2.5 cents as 2, a discrepancy customers notice and auditors ask about.
Decimal's ROUND_HALF_UP rounds ties away from zero, so a credit (negative amount) is always the
exact mirror of the same charge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext

__all__ = ["days_between", "prorate", "split"]


def _check_int(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def _round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` to the nearest integer, ties away from zero.

    The context is wide enough that the quotient keeps more fractional digits than the
    denominator has, so a value just below or above .5 can never be rounded onto .5 first.
    """
    with localcontext() as ctx:
        ctx.prec = len(str(abs(numerator))) + len(str(denominator)) + 4
        quotient = Decimal(numerator) / Decimal(denominator)
        return int(quotient.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def days_between(start: date, end: date) -> int:
    """Days in the half-open range ``[start, end)``: a period's length, or the days used."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return (end - start).days


def prorate(amount_minor: int, used_days: int, period_days: int) -> int:
    """``amount_minor * used_days / period_days`` rounded half-up (away from zero) to minor units.

    ``prorate(x, d, d) == x`` and ``prorate(x, 0, d) == 0``; monotone in ``used_days``.
    """
    _check_int(amount_minor, "amount_minor")
    _check_int(used_days, "used_days")
    _check_int(period_days, "period_days")
    if period_days <= 0:
        raise ValueError(f"period_days must be positive, not {period_days}")
    if not 0 <= used_days <= period_days:
        raise ValueError(f"used_days must be within 0..{period_days}, not {used_days}")
    return _round_half_up(amount_minor * used_days, period_days)


def split(amount_minor: int, parts_days: Sequence[int]) -> list[int]:
    """Split ``amount_minor`` over consecutive parts of one period (the period is their sum).

    Rule: cumulative half-up. Every cut point is prorated once,
    ``part_k = prorate(A, d_1 + ... + d_k, D) - prorate(A, d_1 + ... + d_(k-1), D)``, so

    * the parts telescope to exactly ``A`` (the last part is whatever is left);
    * each part is the floor or the ceiling of its exact share, never off by a whole unit (a plain
      "round each part, last takes the remainder" piles every rounding error onto the last part);
    * the first ``k`` parts always sum to ``prorate(A, their days, D)``, however those days were
      cut: a later mid-period change never re-prices what an earlier invoice already billed;
    * no tie-break is needed (largest remainder needs one) and credits mirror charges exactly.
    """
    _check_int(amount_minor, "amount_minor")
    if not parts_days:
        raise ValueError("split needs at least one part")
    for days in parts_days:
        _check_int(days, "parts_days item")
        if days < 0:
            raise ValueError(f"a part cannot have negative days ({days})")
    total = sum(parts_days)
    if total == 0:
        raise ValueError("the parts cover no days")
    out: list[int] = []
    billed = elapsed = 0
    for days in parts_days:
        elapsed += days
        upto = prorate(amount_minor, elapsed, total)
        out.append(upto - billed)
        billed = upto
    return out
