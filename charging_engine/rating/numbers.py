"""Dialled destinations to E.164 digits, so prefix matching sees one spelling per number.

PBXes hand us "+44 20 7946 0000", "0044-20-7946-0000" or "020 7946 0000"; the tariff is keyed
on "442079460000". Anything that is not clearly a phone number is rejected instead of guessed,
because a guessed destination would be rated at the wrong price.
"""

from __future__ import annotations

import re
from typing import Final

MAX_DIGITS: Final = 15  # E.164 ceiling, country code included
_SEPARATORS: Final = str.maketrans("", "", " \t-.()")
_DIGITS_RE: Final = re.compile(r"[0-9]+", re.ASCII)
_COUNTRY_CODE_RE: Final = re.compile(r"[1-9][0-9]{0,2}", re.ASCII)


class NumberError(ValueError):
    """A destination that cannot be read as a phone number."""


def normalize(number: str, default_country_code: str | None = None) -> str:
    """E.164 digits without '+' for a dialled ``number``.

    A leading '+' or '00' is the international prefix (a "(0)" after it is dropped). With
    ``default_country_code``, a single leading '0' is the national trunk prefix and is replaced
    by that country code; without it the number is taken as already international.
    """
    if not isinstance(number, str):
        raise NumberError(f"destination {number!r} is not a phone number")
    if default_country_code is not None and not _COUNTRY_CODE_RE.fullmatch(default_country_code):
        raise NumberError(
            f"default country code {default_country_code!r} must be 1-3 digits not starting with 0"
        )
    # Already-normalised input (the common case on the hot path) skips the separator pass.
    digits = number if number.isascii() and number.isdigit() else number.translate(_SEPARATORS)
    if "(0)" in number and digits.startswith(("+", "00")):
        # "+44 (0)20 ..." marks a trunk '0' that is not dialled internationally.
        digits = number.replace("(0)", "", 1).translate(_SEPARATORS)
    if not digits:
        raise NumberError(f"destination {number!r} is empty")
    if digits[0] == "+":
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    elif digits[0] == "0" and default_country_code is not None:
        digits = default_country_code + digits[1:]
    if not _DIGITS_RE.fullmatch(digits):
        raise NumberError(f"destination {number!r} is not a phone number")
    if len(digits) > MAX_DIGITS:
        raise NumberError(
            f"destination {number!r} has {len(digits)} digits; E.164 allows at most {MAX_DIGITS}"
        )
    return digits
