"""Money as integers: one fixed sub-unit for every currency, and the one place rounding happens.

Every amount inside the engine is an ``int`` count of *micros*: 1/1,000,000 of the major unit
of the account's ISO 4217 currency (1 USD = 1_000_000 micros, 1 JPY = 1_000_000 micros). That is
fine enough for per-second rates (0.0001/min is 100 micros/min) and stays exact in Redis, whose
Lua numbers are doubles exact up to 2**53 micros (about 9 billion major units); ``MAX_AMOUNT``
keeps every amount well inside that.

Amounts cross the API boundary as decimal strings in major units ("12.50").
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Final

MICROS_PER_UNIT: Final = 1_000_000
MICRO_DIGITS: Final = 6
MAX_AMOUNT: Final = 10**15  # 1 billion major units; far below 2**53
_DECIMAL_RE: Final = re.compile(r"^([+-])?([0-9]{1,10})(?:\.([0-9]{1,6}))?$")

# ISO 4217 minor-unit exponents that differ from 2; used for display only.
_EXPONENTS: Final[dict[str, int]] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
_CURRENCY_RE: Final = re.compile(r"^[A-Z]{3}$")


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


class Rounding(StrEnum):
    """How a computed cost is brought to a rate's declared number of decimals."""

    UP = "up"  # towards +infinity: the operator never under-charges
    DOWN = "down"  # towards zero: the customer never over-pays
    HALF_UP = "half_up"  # nearest, ties away from zero (what people expect on paper)
    HALF_EVEN = "half_even"  # nearest, ties to even (banker's rounding)


def currency_exponent(currency: str) -> int:
    """ISO 4217 minor-unit exponent, validating the code's shape."""
    if not _CURRENCY_RE.match(currency):
        raise MoneyError(f"currency must be a 3-letter ISO 4217 code, got {currency!r}")
    return _EXPONENTS.get(currency, 2)


def parse_amount(text: str, *, allow_negative: bool = False) -> int:
    """Parse a decimal string in major units into micros, exactly or not at all."""
    if not isinstance(text, str):
        raise MoneyError("amount must be a decimal string such as \"12.50\"")
    m = _DECIMAL_RE.match(text.strip())
    if m is None:
        raise MoneyError(
            f"amount {text!r} is not a decimal with at most {MICRO_DIGITS} decimals"
        )
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    micros = int(whole) * MICROS_PER_UNIT + int(frac.ljust(MICRO_DIGITS, "0"))
    if sign == "-":
        micros = -micros
    if micros < 0 and not allow_negative:
        raise MoneyError(f"amount {text!r} must not be negative")
    if abs(micros) > MAX_AMOUNT:
        raise MoneyError(f"amount {text!r} exceeds the maximum of {format_amount(MAX_AMOUNT)}")
    return micros


def format_amount(micros: int, currency: str | None = None) -> str:
    """Render micros as a decimal string, keeping at least the currency's minor digits."""
    min_digits = currency_exponent(currency) if currency else 2
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_UNIT)
    digits = f"{frac:0{MICRO_DIGITS}d}".rstrip("0")
    digits = digits.ljust(min_digits, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def to_decimal(micros: int) -> Decimal:
    """Exact Decimal of an amount in major units, for reports."""
    return Decimal(micros).scaleb(-MICRO_DIGITS)


def round_div(numerator: int, denominator: int, mode: Rounding) -> int:
    """numerator / denominator rounded to an integer by ``mode``; both must be >= 0.

    This is the engine's only rounding primitive: rating calls it with the quantum of the rate's
    declared decimals, so every price is rounded once, the same way, live and on re-rating.
    """
    if numerator < 0 or denominator <= 0:
        raise MoneyError("round_div needs numerator >= 0 and denominator > 0")
    if mode.__class__ is not Rounding:
        mode = Rounding(mode)  # a plain string must not fall through to half-even
    q, r = divmod(numerator, denominator)
    if r == 0 or mode is Rounding.DOWN:
        return q
    if mode is Rounding.UP:
        return q + 1
    twice = 2 * r
    if twice > denominator:
        return q + 1
    if twice < denominator:
        return q
    if mode is Rounding.HALF_UP:
        return q + 1
    return q + int(q & 1)  # HALF_EVEN


def quantum(decimals: int) -> int:
    """Micros in one unit of the last kept decimal (decimals=2 -> 10_000 micros)."""
    if not 0 <= decimals <= MICRO_DIGITS:
        raise MoneyError(f"decimals must be between 0 and {MICRO_DIGITS}, got {decimals}")
    return _QUANTA[decimals]


_QUANTA: Final[tuple[int, ...]] = tuple(10 ** (MICRO_DIGITS - d) for d in range(7))
