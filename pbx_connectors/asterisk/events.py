"""Reading the AMI event fields that charging depends on, without floats and without trusting
the peer: a malformed timestamp or number is treated as absent, never as zero."""

from __future__ import annotations

import re

from pbx_connectors.asterisk.ami_protocol import Message

_TS_RE = re.compile(r"^(\d{1,12})(?:\.(\d{1,9}))?$")
_INT_RE = re.compile(r"^\d{1,9}$")
# Fields that differ between two copies of one event (or are per-connection) and so do not
# identify it: a duplicated event is the same event whatever these say.
_VOLATILE = frozenset({"timestamp", "privilege", "sequencenumber", "actionid", "eventtv"})


def timestamp_us(msg: Message) -> int | None:
    """``Timestamp: 1795374840.519879`` (timestampevents = yes) as integer microseconds."""
    raw = msg.get("Timestamp")
    if not raw:
        return None
    m = _TS_RE.match(raw.strip())
    if m is None:
        return None
    frac = (m.group(2) or "").ljust(6, "0")[:6]
    return int(m.group(1)) * 1_000_000 + int(frac)


def timestamp_ms(msg: Message) -> int | None:
    us = timestamp_us(msg)
    return None if us is None else us // 1000


def tvdiff_ms(end_us: int, start_us: int) -> int:
    """Asterisk's ``ast_tvdiff_ms``: whole seconds apart times 1000 plus the microsecond parts'
    difference truncated toward zero. CDR BillableSeconds is this divided by 1000, so billing
    the same way agrees with the CDR to the second."""
    es, eu = divmod(end_us, 1_000_000)
    ss, su = divmod(start_us, 1_000_000)
    du = eu - su
    return (es - ss) * 1000 + (abs(du) // 1000 if du >= 0 else -(abs(du) // 1000))


def seconds(msg: Message, key: str) -> int | None:
    raw = msg.get(key)
    if raw is None or not _INT_RE.match(raw.strip()):
        return None
    return int(raw.strip())


def identity(msg: Message) -> tuple[tuple[str, str], ...]:
    """The event's content without its delivery details: equal for duplicated copies."""
    return tuple(sorted((k.lower(), v) for k, v in msg.pairs if k.lower() not in _VOLATILE))


def uniqueid(msg: Message) -> str | None:
    return msg.get("Uniqueid") or msg.get("UniqueID") or None
