"""Discounts: what a percent or fixed discount takes from the lines of its scope.

Amounts are in the terms of the lines they discount: minor units *as charged* (tax-inclusive
for lines whose taxes are inclusive), so "5.00 off" takes 5.00 off what the customer is charged
and a discount line can be taxed exactly like the charges it reduces.

* A percent discount takes ``value`` % of what remains of its scope, rounded half-up.
* A fixed discount takes ``min(value, what remains)``: no scope is ever discounted below zero.
* Several discounts on one scope apply in the given order, each to what the earlier ones left.
* A scope is a set of *groups* (its lines with the same tax codes): the taken amount is split
  over the groups pro rata to what remains of each (largest remainder, ``minor_units.allocate``,
  so the shares sum exactly and each group moves toward zero without crossing it).

Everything is symmetric: a discount moves a scope toward zero, so on a credit note (a negative
scope) it takes the mirror amount, and a credit note that reverses an invoice reverses its
discounts exactly. A scope that nets to zero takes nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Generic, TypeVar

from billing.minor_units import allocate, half_up

__all__ = [
    "Discount",
    "DiscountKind",
    "DiscountScope",
    "DiscountShare",
    "active",
    "apply_discounts",
    "reduction",
    "split_pro_rata",
]

K = TypeVar("K", bound=Hashable)


class DiscountKind(StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


class DiscountScope(StrEnum):
    USAGE = "usage"  # usage and late-usage lines
    RECURRING = "recurring"  # recurring fees and DID lines
    INVOICE = "invoice"  # every charge line


@dataclass(frozen=True)
class Discount:
    """A discount: ``value`` is a ``Decimal`` percent (0..100) for ``PERCENT`` and an ``int`` of
    minor units of the invoice currency (>= 0) for ``FIXED``; ``[starts, ends)`` is when it
    applies (``None`` is open-ended)."""

    code: str
    name: str
    kind: DiscountKind
    value: Decimal | int
    scope: DiscountScope
    starts: date | None = None
    ends: date | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code:
            raise ValueError(f"a discount code must be a non-empty string, not {self.code!r}")
        object.__setattr__(self, "kind", DiscountKind(self.kind))
        object.__setattr__(self, "scope", DiscountScope(self.scope))
        if self.kind is DiscountKind.PERCENT:
            if not isinstance(self.value, Decimal):
                kind = type(self.value).__name__
                raise TypeError(f"discount {self.code}: a percent must be a Decimal, not {kind}")
            if not self.value.is_finite() or not Decimal(0) <= self.value <= Decimal(100):
                raise ValueError(f"discount {self.code}: percent {self.value} is not in 0..100")
        else:
            if not isinstance(self.value, int) or isinstance(self.value, bool):
                kind = type(self.value).__name__
                raise TypeError(f"discount {self.code}: a fixed value must be an int, not {kind}")
            if self.value < 0:
                raise ValueError(f"discount {self.code}: fixed value {self.value} is negative")
        if self.starts is not None and self.ends is not None and self.ends < self.starts:
            raise ValueError(f"discount {self.code}: ends {self.ends} before starts {self.starts}")


@dataclass(frozen=True)
class DiscountShare(Generic[K]):
    """The part of ``discount`` that falls on group ``key``: ``amount`` is the (signed) change
    to the group, negative on a positive group."""

    discount: Discount
    key: K
    amount: int


def active(d: Discount, period_start: date, period_end: date) -> bool:
    """Whether ``d`` applies to the period ``[period_start, period_end)``: its start must lie in
    ``[starts, ends)``. A discount starting mid-period first applies to the next period."""
    if period_end < period_start:
        raise ValueError(f"period end {period_end} is before its start {period_start}")
    return (d.starts is None or d.starts <= period_start) and (
        d.ends is None or period_start < d.ends
    )


def reduction(d: Discount, remaining: int) -> int:
    """What ``d`` takes from a scope with ``remaining`` left: same sign, never more than it."""
    if d.kind is DiscountKind.PERCENT:
        return half_up(Fraction(d.value) / 100 * remaining)
    magnitude = min(int(d.value), abs(remaining))
    return magnitude if remaining >= 0 else -magnitude


def split_pro_rata(amount: int, weights: Sequence[int]) -> list[int]:
    """``amount`` cut pro rata to ``weights`` (any signs, nonzero sum), summing exactly to it.

    With ``0 <= amount / sum(weights) <= 1`` every part lies between 0 and its weight.
    """
    whole = sum(weights)
    if whole == 0:
        if amount:
            raise ValueError("cannot split a nonzero amount over weights that sum to zero")
        return [0] * len(weights)
    return allocate(Fraction(amount * w, whole) for w in weights)


def apply_discounts(
    discounts: Sequence[Discount], remaining: Mapping[K, int]
) -> tuple[list[DiscountShare[K]], dict[K, int]]:
    """Apply ``discounts`` in order to one scope's groups (``remaining`` per group key).

    Returns the nonzero shares (per discount, then per group in the mapping's order) and what
    remains of each group afterwards. The caller has checked that the discounts fit the scope.
    """
    left = dict(remaining)
    shares: list[DiscountShare[K]] = []
    for d in discounts:
        keys = list(left)
        taken = reduction(d, sum(left.values()))
        parts = split_pro_rata(taken, [left[k] for k in keys])
        for key, part in zip(keys, parts, strict=True):
            if part:
                left[key] -= part
                shares.append(DiscountShare(d, key, -part))
    return shares, left
