"""Inbound SMS keywords, the pure rules: a number as E.164, a text as a keyword, and the
per-number rate limit of replies. ``keywords`` applies them to what the SMSC delivers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final, Literal

__all__ = ["BUILTIN", "Aliases", "Meaning", "allowed", "balance_word", "keyword", "normalise"]

Meaning = Literal["balance", "help"]
Aliases = Mapping[str, tuple[Meaning, str]]  # word -> (meaning, language)

# The built-in keywords (English); a tenant's aliases come on top of them.
BUILTIN: Final[Aliases] = {
    "BALANCE": ("balance", "en"),
    "HELP": ("help", "en"),
}

_SEPARATORS: Final = re.compile(r"[\s\-()]")
_MAX_DIGITS: Final = 15  # E.164
_MIN_INTERNATIONAL: Final = 8  # fewer digits without a "+" is a short code or a national number


def normalise(number: str) -> str | None:
    """``number`` as E.164 (``+4915100000001``) where it is an international number, else its
    digits (a short code, a national number); None when it is not a number at all.

    Spaces, dashes and parentheses are dropped; ``00`` is ``+``; digits without a ``+`` (as an
    SMSC often gives an international number) are international when there are 8 to 15 of them
    and the first is not 0 (a country code never starts with 0)."""
    s = _SEPARATORS.sub("", number)
    international = s.startswith("+")
    if international:
        s = s[1:]
    elif s.startswith("00"):
        s, international = s[2:], True
    if not (s.isascii() and s.isdigit()) or len(s) > _MAX_DIGITS:
        return None
    if international:
        return None if s.startswith("0") else "+" + s
    if len(s) >= _MIN_INTERNATIONAL and not s.startswith("0"):
        return "+" + s
    return s


def _fold(word: str) -> str:
    return unicodedata.normalize("NFKC", word).casefold()


def keyword(text: str, aliases: Aliases | None = None) -> tuple[Meaning, str] | None:
    """(meaning, language) of a text that is one keyword (case and surrounding whitespace do not
    matter; two words are none): the tenant's ``aliases`` first,
    then the built-in ones."""
    word = text.strip()
    if not word or any(c.isspace() for c in word):
        return None
    folded = _fold(word)
    for table in (aliases or {}, BUILTIN):
        for key, found in table.items():
            if _fold(key) == folded:
                return found
    return None


def balance_word(language: str, aliases: Aliases | None = None) -> str:
    """The word to text for a balance in ``language``: the tenant's alias, else BALANCE."""
    for key, (meaning, lang) in (aliases or {}).items():
        if meaning == "balance" and lang == language:
            return key.upper()
    return "BALANCE"


def allowed(recent_count: int, per_hour: int) -> bool:
    """May a number be answered, having had ``recent_count`` replies in the last hour?"""
    return recent_count < per_hour
