"""The shapes of XREADGROUP / XAUTOCLAIM replies, whichever client produced them.

A stream consumer's transport may be a raw RESP connection parsed by hiredis (lists of bytes)
or a redis-py pipeline (RESP2: lists of ``(id, {field: value})``; RESP3: a map of stream key
to entries, with or without redis-py's legacy shaping). These helpers give one view of all of
them, so a consumer never depends on its transport's reply shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis.exceptions


def text(value: Any) -> str:
    """A stream key, id or cursor as ``str`` (raw replies carry bytes)."""
    if type(value) is str:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def is_nogroup(res: object) -> bool:
    """The reply of a read on a stream whose group is gone (the stream was flushed)."""
    return isinstance(res, redis.exceptions.ResponseError) and "NOGROUP" in str(res)


def streams(res: Any) -> Iterator[tuple[Any, list[Any]]]:
    """(stream key, entries) of an XREADGROUP reply: RESP2 list or RESP3 map, redis-py's or
    raw; nothing for a nil reply (no entries, or a blocking read that timed out)."""
    if not res:
        return
    pairs = res.items() if isinstance(res, dict) else ((s[0], s[1]) for s in res)
    for key, entries in pairs:
        # RESP3 without legacy shaping wraps each stream's list in one more list (a raw
        # RESP2 reply's single entry is also a one-element list, but of [id, fields]).
        if (len(entries) == 1 and isinstance(entries[0], list)
                and (not entries[0] or isinstance(entries[0][0], list | tuple))):
            entries = entries[0]
        yield key, entries


def read_entries(res: Any) -> list[tuple[Any, Any]]:
    """(id, fields) of the entries of a one-stream XREADGROUP reply."""
    return [(e[0], e[1]) for _, entries in streams(res) for e in entries]


def claimed(res: Any) -> tuple[str, list[Any]]:
    """(next cursor, claimed entries) of an XAUTOCLAIM reply; the ids of entries deleted
    while pending (Redis 7's third element) are dropped from the pending list by Redis."""
    return text(res[0]) or "0-0", res[1]


def field_map(fields: Any) -> dict[Any, Any]:
    """An entry's fields as a dict: raw replies give ``field, value, field, value, ...``."""
    if isinstance(fields, dict):
        return fields
    if len(fields) == 4:  # the two-field entries the engine writes: no iterator machinery
        return {fields[0]: fields[1], fields[2]: fields[3]}
    pairs = iter(fields)
    return dict(zip(pairs, pairs, strict=False))
