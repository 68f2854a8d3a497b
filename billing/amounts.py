"""Invoice amounts at the API edge: integer minor units <-> decimal strings with exactly the
currency's ISO 4217 digits ("12.50" USD, "1250" JPY, "1.250" KWD). A string with more digits
than the currency has is refused, never rounded: a client must not lose money silently."""

from __future__ import annotations

import re
from typing import Final

from billing.minor_units import exponent

_AMOUNT: Final = re.compile(r"^([+-]?)([0-9]{1,12})(?:\.([0-9]+))?$")


def format_minor(minor: int, currency: str) -> str:
    e = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**e)
    return f"{sign}{whole}" + (f".{frac:0{e}d}" if e else "")


def parse_minor(text: str, currency: str, *, allow_negative: bool = False) -> int:
    """``text`` in major units -> minor units; ValueError with a clear message."""
    m = _AMOUNT.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f'amount must be a decimal string such as "12.50", not {text!r}')
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    e: int = exponent(currency)
    if len(frac) > e:
        raise ValueError(f"{currency} amounts have {e} decimal(s); {text!r} has {len(frac)}")
    if sign == "-" and not allow_negative:
        raise ValueError("amount must not be negative")
    value: int = int(whole) * 10**e + int(frac.ljust(e, "0") or 0)
    return -value if sign == "-" else value
