"""How sessions are held: slice sizes, TTLs, the longest call, what expiry does; the clock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum


class ExpiryPolicy(StrEnum):
    """What the sweeper does with a session whose end never arrived."""

    CHARGE_GRANTED = "charge_granted"  # answered: charge the seconds it was allowed; else release
    RELEASE = "release"  # charge nothing, free the reservation


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    slice_seconds: int = 300  # reserved per authorization/extension
    ring_allowance_s: int = 120  # how long an unanswered authorization may wait
    ttl_margin_s: int = 60  # reservation outlives its granted time by this much
    max_call_seconds: int = 4 * 3600
    expiry: ExpiryPolicy = ExpiryPolicy.CHARGE_GRANTED


def wall_ms() -> int:
    """The engine's clock: Unix milliseconds (services take another for tests and demos)."""
    return time.time_ns() // 1_000_000
