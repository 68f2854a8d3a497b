"""One set of rules for pricing a duration and for the longest duration an amount pays for.

Authorization, interim extensions, the final charge and re-rating all call these functions, so a
session's cost and its CDR's cost cannot disagree.

Billed time: answered calls shorter than ``grace_seconds`` (and zero-length calls) are free;
otherwise the duration is raised to ``min_duration`` and then to whole increments: the first
block of ``first_increment`` seconds, then blocks of ``next_increment``. The *charged boundaries*
are the billed durations a call can end on: ``X0 = billed(max(grace, 1))`` and ``X0 + k * next``.
"""

from __future__ import annotations

import functools

from charging_engine.money import quantum, round_div
from charging_engine.rating.model import Rate

MAX_CALL_SECONDS = 7 * 86_400  # hard ceiling for free or zero-priced destinations


def billed_seconds(rate: Rate, duration: int) -> int:
    """Seconds the call is billed for, after grace, minimum duration and increments."""
    if duration <= 0 or duration < rate.grace_seconds:
        return 0
    b = max(duration, rate.min_duration)
    first, nxt = rate.first_increment, rate.next_increment
    if b <= first:
        return first
    return first + -(-(b - first) // nxt) * nxt


def price_of_billed(rate: Rate, billed: int) -> int:
    """Cost in micros of ``billed`` seconds (already on a boundary), connect fee included."""
    if billed <= 0:
        return 0
    q = quantum(rate.decimals)
    return rate.connect_fee + round_div(rate.price_per_minute * billed, 60 * q, rate.rounding) * q


def cost(rate: Rate, duration: int) -> int:
    """Cost in micros of an answered call lasting ``duration`` whole seconds."""
    return price_of_billed(rate, billed_seconds(rate, duration))


def first_boundary(rate: Rate) -> int:
    """The shortest charged duration's billed seconds (X0)."""
    return billed_seconds(rate, max(rate.grace_seconds, 1))


def free_seconds(rate: Rate) -> int:
    """The longest answered duration that costs nothing (grace - 1, or 0)."""
    return max(rate.grace_seconds - 1, 0)


def boundary_at_or_below(rate: Rate, seconds: int) -> int:
    """The longest duration <= ``seconds`` that ends on a charged boundary (or is free)."""
    x0 = first_boundary(rate)
    if seconds < x0:
        return min(free_seconds(rate), max(seconds, 0))
    return x0 + (seconds - x0) // rate.next_increment * rate.next_increment


def next_boundary(rate: Rate, seconds: int) -> int:
    """The first charged boundary strictly above ``seconds``."""
    x0 = first_boundary(rate)
    if seconds < x0:
        return x0
    return x0 + ((seconds - x0) // rate.next_increment + 1) * rate.next_increment


def extension_target(rate: Rate, granted: int, slice_seconds: int, cap: int) -> int:
    """The duration a call granted ``granted`` seconds is extended to by one slice.

    The last boundary within ``granted + slice_seconds``, but at least the next boundary
    above ``granted``: a slice shorter than an increment would otherwise round back down to
    ``granted`` and the call could never be extended. Never beyond the last boundary within
    ``cap``; a result <= ``granted`` means the cap leaves nothing to extend.
    """
    target = max(boundary_at_or_below(rate, granted + slice_seconds), next_boundary(rate, granted))
    return min(target, boundary_at_or_below(rate, cap))


@functools.lru_cache(maxsize=16_384)
def reservation_terms(rate: Rate, seconds: int) -> tuple[int, int, int]:
    """(slice, its cost, least affordable cost) for reserving about ``seconds`` of a call.

    The slice is cut to a boundary but never shorter than the first block (as
    ``extension_target`` from 0: a slice shorter than the first block still grants it); the
    least cost is the first block's, below which a call cannot be authorized. Cached: rates
    are immutable.
    """
    x0 = first_boundary(rate)
    slice_s = max(boundary_at_or_below(rate, seconds), x0)
    return slice_s, price_of_billed(rate, billed_seconds(rate, slice_s)), price_of_billed(rate, x0)


def max_duration(rate: Rate, amount: int, cap: int = MAX_CALL_SECONDS) -> int:
    """The longest answered duration (on a boundary, <= ``cap``) whose cost is <= ``amount``.

    Guarantees cost(result) <= amount and, unless ``cap`` bound it,
    amount < cost(next_boundary(result)).
    """
    cap_b = boundary_at_or_below(rate, cap)
    x0 = first_boundary(rate)
    if amount < price_of_billed(rate, x0) or cap_b < x0:
        return min(free_seconds(rate), cap_b)
    nxt = rate.next_increment
    k_cap = (cap_b - x0) // nxt
    if rate.price_per_minute == 0 or price_of_billed(rate, cap_b) <= amount:
        return cap_b
    # Estimate k from the unrounded price, then binary-search the exact answer around it: the
    # rounding moves a cost by less than one quantum, a bounded number of blocks.
    secs = (amount - rate.connect_fee) * 60 // rate.price_per_minute
    k_est = max(0, (secs - x0) // nxt)
    slack = quantum(rate.decimals) * 60 // (rate.price_per_minute * nxt) + 2
    lo, hi = max(0, k_est - slack), min(k_cap, k_est + slack)
    if lo > hi or price_of_billed(rate, x0 + lo * nxt) > amount:
        lo = 0  # estimate overshot the cap or the rounding: fall back to the full range
    if hi < k_cap and price_of_billed(rate, x0 + (hi + 1) * nxt) <= amount:
        hi = k_cap
    while lo < hi:  # invariant: cost(X_lo) <= amount; answer in [lo, hi]
        mid = (lo + hi + 1) // 2
        if price_of_billed(rate, x0 + mid * nxt) <= amount:
            lo = mid
        else:
            hi = mid - 1
    return x0 + lo * nxt
