"""Opaque keyset cursors: the sort key of a page's last row, so pages stay stable while rows
are added (offsets would skip or repeat rows under concurrent writes)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, TypeVar

from admin_api.problems import ApiProblem

INVALID_CURSOR = "invalid_cursor"
T = TypeVar("T")


def encode(*key: Any) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, *types: type) -> tuple[Any, ...] | None:
    """The key encoded in ``cursor`` (each value of the given type or None), or 422."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if value is None:
                out.append(None)
            elif kind is datetime:
                at = datetime.fromisoformat(value)
                if at.tzinfo is None:
                    raise ValueError("naive time")
                out.append(at)
            elif isinstance(value, kind) and not isinstance(value, bool):
                out.append(value)
            else:
                raise ValueError("wrong type")
        return tuple(out)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiProblem(422, INVALID_CURSOR, "cursor is not one this API returned") from None


def created_key(cursor: str | None) -> tuple[datetime, str] | None:
    """A (created_at, id) cursor, every part required, or 422."""
    after = decode(cursor, datetime, str)
    if after is None:
        return None
    if after[0] is None or after[1] is None:
        raise ApiProblem(422, INVALID_CURSOR, "cursor is not one this API returned")
    return after[0], after[1]


def page(rows: list[T], limit: int) -> tuple[list[T], bool]:
    """Rows fetched with ``limit + 1``: (the page, whether more follow)."""
    return rows[:limit], len(rows) > limit
