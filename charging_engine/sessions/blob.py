"""The session record stored beside a reservation: what ending the call needs, in msgpack.

It carries the rate as priced at authorization, so the call is charged by the rate it was
authorized under even if the tariff changes mid-call or another engine process ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from charging_engine.money import Rounding
from charging_engine.rating.model import Rate


@dataclass(frozen=True, slots=True)
class SessionInfo:
    rate: Rate
    destination: str
    plan_id: str
    started_ms: int


# One packer for the process: ``msgpack.packb`` builds a new one per call, which costs more
# than packing this record (pack() is synchronous, so sharing it on the event loop is safe).
_pack = msgpack.Packer(use_bin_type=True).pack


def pack_session(info: SessionInfo) -> bytes:
    r = info.rate
    return _pack([  # type: ignore[no-any-return]
        1, info.destination, info.plan_id, info.started_ms,
        r.prefix, r.price_per_minute, r.connect_fee, r.min_duration, r.first_increment,
        r.next_increment, r.grace_seconds, r.rounding.value, r.decimals,
    ])


def call_detail(
    info: SessionInfo, answer_ms: int | None, end_ms: int, duration: int, billed: int,
    disposition: str,
) -> dict[str, Any]:
    """The CDR a settlement's ledger entry carries; settlement turns it into the calls row."""
    return {
        "dst": info.destination, "prefix": info.rate.prefix, "plan": info.plan_id,
        "start_ms": info.started_ms, "answer_ms": answer_ms, "end_ms": end_ms,
        "duration": duration, "billed": billed, "disposition": disposition,
    }


def unpack_session(blob: bytes) -> SessionInfo:
    v = msgpack.unpackb(blob, raw=False)
    if v[0] != 1:
        raise ValueError(f"unknown session record version {v[0]!r}")
    rate = Rate(
        prefix=v[4], price_per_minute=v[5], connect_fee=v[6], min_duration=v[7],
        first_increment=v[8], next_increment=v[9], grace_seconds=v[10],
        rounding=Rounding(v[11]), decimals=v[12],
    )
    return SessionInfo(rate=rate, destination=v[1], plan_id=v[2], started_ms=v[3])
