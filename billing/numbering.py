"""Invoice numbers: a tenant's pattern filled with its gapless sequence (pure).

Patterns are parsed by our own small grammar, not ``str.format``: a tenant-supplied format
string could otherwise reach attributes (``{seq.__class__}``). Placeholders: ``{prefix}``,
``{year}``, ``{month}``, ``{seq}`` and ``{seq:0Nd}`` (zero-padded to N digits, N <= 12).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

__all__ = ["NumberPatternError", "format_number", "validate_pattern"]

_TOKEN: Final = re.compile(r"\{([a-z]+)(?::0(\d{1,2})d)?\}")
_LITERAL: Final = re.compile(r"^[A-Za-z0-9_./ -]*$")
_MAX_LEN: Final = 64


class NumberPatternError(ValueError):
    """A number pattern that cannot make valid, unique numbers."""


def _parts(pattern: str) -> list[tuple[str, str, int]]:
    """(literal before, field, width) per placeholder, then the tail as ("tail", "", 0)."""
    out: list[tuple[str, str, int]] = []
    pos = 0
    for m in _TOKEN.finditer(pattern):
        field, width = m.group(1), int(m.group(2) or 0)
        if field not in ("prefix", "year", "month", "seq"):
            raise NumberPatternError(f"unknown placeholder {{{field}}} in number pattern")
        if width and field != "seq":
            raise NumberPatternError("only {seq} takes a width, as {seq:06d}")
        if width > 12:
            raise NumberPatternError("{seq} width must be at most 12")
        out.append((pattern[pos:m.start()], field, width))
        pos = m.end()
    out.append((pattern[pos:], "tail", 0))
    for literal, _, _ in out:
        if "{" in literal or "}" in literal or not _LITERAL.match(literal):
            raise NumberPatternError(
                "number pattern literals may hold letters, digits, '-', '_', '.', '/' and spaces"
            )
    return out


def validate_pattern(pattern: str) -> None:
    """Refuse patterns that cannot guarantee unique numbers: exactly one ``{seq}``."""
    if not isinstance(pattern, str) or not 0 < len(pattern) <= _MAX_LEN:
        raise NumberPatternError(f"number pattern must be 1-{_MAX_LEN} characters")
    fields = [f for _, f, _ in _parts(pattern)]
    if fields.count("seq") != 1:
        raise NumberPatternError("number pattern must contain {seq} exactly once")


def format_number(pattern: str, *, prefix: str, seq: int, issued_on: date) -> str:
    """The number of document ``seq`` (1, 2, ...) issued on ``issued_on``."""
    if seq < 1:
        raise ValueError("document sequence numbers start at 1")
    out: list[str] = []
    for literal, field, width in _parts(pattern):
        out.append(literal)
        if field == "prefix":
            out.append(prefix)
        elif field == "year":
            out.append(f"{issued_on.year:04d}")
        elif field == "month":
            out.append(f"{issued_on.month:02d}")
        elif field == "seq":
            out.append(str(seq).zfill(width))
    return "".join(out)
