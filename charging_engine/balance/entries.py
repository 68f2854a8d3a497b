"""The ledger entry each balance mutation appends to its bucket's stream, as settlement reads it."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

KINDS = frozenset(
    {
        "reserve", "extend", "commit", "release", "expire",
        "topup", "adjust", "withdraw", "provision", "correction",
        "billed",  # usage handed to an invoice: a postpaid balance gets it back
        "expiry",  # prepaid money past its validity leaving the balance
    }
)


class LedgerEntry(NamedTuple):
    """One mutation of one account (a NamedTuple: settlement builds one per entry, and a
    frozen dataclass costs several times more to construct).

    ``seq`` numbers the account's entries from 1 without gaps: (tenant, account, seq) is the
    entry's identity in Postgres, and a Redis balance at seq N equals the sum of ``amount`` over
    entries 1..N. ``amount`` is the balance delta (negative for charges), ``reserved`` the
    reservation delta; ``extra`` carries call details (CDR) or payment metadata.
    """

    stream_id: str
    tenant: str
    account: str
    seq: int
    kind: str
    amount: int
    reserved: int
    balance_after: int
    idem_key: str
    ts_ms: int
    call_id: str
    extra: dict[str, Any]


_unpackb = msgpack.unpackb


_pack = msgpack.Packer(use_bin_type=True).pack  # one per process: packb builds one per call


def pack_extra(extra: dict[str, Any] | None) -> bytes:
    return _pack(extra or {})  # type: ignore[no-any-return]


def parse_entry(stream_id: bytes | str, fields: dict[bytes, bytes]) -> LedgerEntry:
    """Decode one XREADGROUP entry written by the ``append`` helper of charging.lua.

    Entries are ``e`` (a msgpack array of the entry's columns) + ``x`` (extra); entries of the
    first format, one stream field per column, are still read, so streams written before an
    upgrade settle as they are.
    """
    sid = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    raw = fields.get(b"x")
    extra: dict[str, Any] = _unpackb(raw) if raw else {}  # str keys and values (raw=False)
    packed = fields.get(b"e")
    if packed is not None:
        t, a, s, k, amt, rsv, bal, idem, ts, call = _unpackb(packed)
        if not (type(t) is type(a) is type(k) is type(idem) is type(call) is str):
            raise ValueError("ledger entry text fields must be strings")
        return LedgerEntry(sid, t, a, int(s), k, int(amt), int(rsv), int(bal), idem, int(ts),
                           call, extra)
    return LedgerEntry(
        stream_id=sid,
        tenant=fields[b"t"].decode(),
        account=fields[b"a"].decode(),
        seq=int(fields[b"s"]),
        kind=fields[b"k"].decode(),
        amount=int(fields[b"amt"]),
        reserved=int(fields[b"rsv"]),
        balance_after=int(fields[b"bal"]),
        idem_key=fields[b"idem"].decode(),
        ts_ms=int(fields[b"ts"]),
        call_id=fields[b"call"].decode(),
        extra=extra,
    )
