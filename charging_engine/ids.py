"""Identifier rules: what may name a tenant, account, plan or call.

Ids become parts of Redis keys and Postgres rows, so they are checked once, where they enter
(API bodies, data files, connector configuration), with an error that names the field.
"""

from __future__ import annotations

import re
from typing import Final

ID_RE: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
CALL_ID_RE: Final = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces


class InvalidId(ValueError):
    """An identifier that cannot be part of a key (braces, spaces, too long)."""


def check_id(kind: str, value: str) -> str:
    """Validate a tenant or account id: letters, digits, '_', '.', '-', at most 64."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InvalidId(f"{kind} {value!r} must be 1-64 of letters, digits, '_', '.', '-'")
    return value


def check_call_id(value: str) -> str:
    """Validate a PBX call id (Asterisk uniqueids, SIP Call-IDs, UUIDs)."""
    if not isinstance(value, str) or not CALL_ID_RE.match(value):
        raise InvalidId(f"call_id {value!r} must be 1-128 printable ASCII characters, no spaces")
    return value
