"""How the demo prints: one tenant's money in one width, calls as lines, bands in words.

Amounts are micros formatted by ``charging_engine.money``; every amount carries its currency
code, and a tenant's amounts share one number of decimals so that columns line up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from charging_engine.ledger.reconcile import Difference
from charging_engine.loader import TenantData
from charging_engine.money import currency_exponent, format_amount
from charging_engine.rating.model import Rate, TimeBand
from charging_server.demo.pbx import Call

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
INDENT = " " * 9  # detail lines start under the destination


def _decimals(micros: int) -> int:
    return len(format_amount(micros).partition(".")[2])


@dataclass(frozen=True, slots=True)
class Money:
    """A tenant's amounts, all with as many decimals as its data needs (at least ISO 4217's)."""

    currency: str
    digits: int

    @classmethod
    def of(cls, data: TenantData) -> Money:
        amounts = [r.connect_fee for r in data.plan.rates]
        amounts += [a.opening_balance for a in data.accounts]
        amounts += [a.account.credit_limit for a in data.accounts]
        digits = max([currency_exponent(data.tenant.currency),
                      *(r.decimals for r in data.plan.rates), *map(_decimals, amounts)])
        return cls(data.tenant.currency, digits)

    def __call__(self, amount: int, width: int = 0) -> str:
        text = format_amount(amount, self.currency)  # never drops a digit, only pads
        whole, _, frac = text.partition(".")
        if len(frac) < self.digits:
            text = f"{whole}.{frac.ljust(self.digits, '0')}"
        return f"{text:>{width}} {self.currency}"

    def rate(self, per_minute: int) -> str:
        """A price per minute, exactly as quoted (no padding)."""
        return f"{format_amount(per_minute, self.currency)} {self.currency}/min"


def title(text: str) -> None:
    print(f"\n== {text}")


def call_line(c: Call, money: Money, why: str | None = None) -> str:
    """One line per call: what happened, what it cost, what is left (``why``: a denial)."""
    head = f"  {c.account:<6} {c.dst:<18}"
    if not c.allowed:
        http = f" (HTTP {c.http})" if c.http != 200 else ""
        return f"{head} DENIED {c.reason}{http}: {why or c.detail}"
    what = f"talk {c.talked:>4} s  billed {c.billed:>4} s"
    if not c.answered:
        what = f"{'no answer':<{len(what)}}"
    cost = money(c.cost, money.digits + 3)
    return f"{head} {what}  cost {cost}  balance {money(c.balance, money.digits + 5)}"


def _listing(values: list[int]) -> str:
    """Granted seconds after each slice; long lists keep their ends."""
    shown = [f"{v} s" for v in values]
    if len(shown) > 6:
        shown = [*shown[:3], "...", *shown[-2:]]
    return ", ".join(shown)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def slices_line(c: Call) -> str | None:
    """How a long call was extended, and where it was cut; None for a one-slice call."""
    n = len(c.grants)
    if n <= 1 and c.refused is None:
        return None
    text = f"{INDENT}{n} slice{'s' if n > 1 else ''} reserved: {_listing(c.grants)} granted"
    if c.refused is not None:
        text += f"; {_ordinal(n + 1)} refused ({c.refused}): cut at {c.talked} s"
    return text


def grace_line(c: Call, rate: Rate | None) -> str | None:
    """Why an answered call cost nothing, when the rate's grace period is the reason."""
    if rate is None or not c.answered or c.billed or not 0 < c.talked < rate.grace_seconds:
        return None
    return f"{INDENT}{c.talked} s is within the {rate.grace_seconds} s grace period: free"


def _weekdays(days: frozenset[int]) -> str:
    ordered = sorted(days)
    if len(ordered) == 7:
        return "every day"
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{DAYS[ordered[0]]}-{DAYS[ordered[-1]]}"
    return ",".join(DAYS[d] for d in ordered)


def window(band: TimeBand) -> str:
    """'Mon-Fri 08:00-18:00'"""
    if band.start == band.end == time(0, 0):
        return f"{_weekdays(band.weekdays)} all day"
    return f"{_weekdays(band.weekdays)} {band.start:%H:%M}-{band.end:%H:%M}"


def local_time(at: datetime, tz: ZoneInfo) -> str:
    return f"{at.astimezone(tz):%a %H:%M} {tz.key}"


def band_line(rate: Rate | None, rates: Iterable[Rate], at: datetime, tz: ZoneInfo,
              money: Money) -> str:
    """Which band of the tenant's tariff priced a call starting at ``at``, in local time."""
    when = local_time(at, tz)
    if rate is None:
        return f"{INDENT}no rate at {when}"
    price = f"rate {rate.prefix}, {money.rate(rate.price_per_minute)}"
    if rate.band is not None:
        return f"{INDENT}{rate.band.name} at {when} ({window(rate.band)}): {price}"
    bands = [f"{r.band.name} {window(r.band)}" for r in rates
             if r.prefix == rate.prefix and r.band is not None]
    if bands:
        return f"{INDENT}off-peak at {when} ({'; '.join(bands)}): {price}"
    return f"{INDENT}no time bands at {when}: {price} ({rate.description})"


def difference_line(d: Difference, money: Money) -> str:
    """One reconcile difference, in words."""
    def amount(v: int | None) -> str:
        return "missing" if v is None else money(v)

    return (f"  {d.tenant}/{d.account}: Redis {amount(d.redis_balance)} (seq {d.redis_seq}), "
            f"ledger {amount(d.ledger_balance)} (seq {d.ledger_seq}): {d.reason}")
