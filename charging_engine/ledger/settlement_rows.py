"""Settlement's pure mapping: ledger entries -> ``ledger_entries`` and ``calls`` rows (no I/O).

Every column is made from a loosely typed stream field without ever raising: a value Postgres
could not hold (a NUL in text, a non-number, a time out of range) becomes NULL or is kept
verbatim in the ledger row's jsonb ``extra``, so one odd entry never fails a batch. Times are
Unix milliseconds; on settlement's own connections (``epoch_ms_codec``) they travel as ints,
else as datetimes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from charging_engine.balance.entries import LedgerEntry
from charging_engine.streams.consumer import Delivered

SETTLE_KINDS: Final = frozenset({"commit", "release", "expire"})

LEDGER_COLUMNS: Final = (
    "tenant_id", "account_id", "seq", "kind", "amount", "reserved", "balance_after",
    "idem_key", "call_id", "stream_id", "bucket", "ts", "extra",
)
CALL_COLUMNS: Final = (
    "tenant_id", "call_id", "account_id", "destination", "rate_prefix", "plan_id",
    "started_at", "answered_at", "ended_at", "duration", "billed_seconds", "cost",
    "disposition", "settled_by",
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INT32: Final = 2**31 - 1
# Times are Unix milliseconds within datetime's range (what both Python and Postgres hold).
_MIN_MS: Final = -62_135_596_800_000  # 0001-01-01T00:00:00Z
_MAX_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_PG_EPOCH_US: Final = 946_684_800_000_000  # 2000-01-01T00:00:00Z, PostgreSQL's epoch

Row = tuple[Any, ...]
Correction = tuple[str, str, int | None]  # tenant, call id, CDR seconds (if from a CDR)


def pg_time(ms: int) -> tuple[int]:
    """Encoder of ``epoch_ms_codec``: Unix ms -> PostgreSQL's binary timestamptz tuple."""
    return (ms * 1000 - _PG_EPOCH_US,)


def unix_ms(value: tuple[int]) -> int:
    """Decoder of ``epoch_ms_codec``: PostgreSQL's binary timestamptz tuple -> Unix ms."""
    return (value[0] + _PG_EPOCH_US) // 1000


def batch_rows(
    items: Iterable[Delivered[LedgerEntry]], ms: bool
) -> tuple[list[Row], list[Row], list[Correction]]:
    """The ledger rows, call rows (the last settlement of a call wins) and CDR corrections of
    a batch; items without an entry (deleted, undecodable) are skipped."""
    ledger: list[Row] = []
    calls: dict[tuple[str, str], Row] = {}
    corrections: list[Correction] = []
    for item in items:
        e = item.entry
        if e is None:
            continue
        if e.kind in SETTLE_KINDS and e.call_id:
            call = calls[(e.tenant, e.call_id)] = call_row(e, ms)
            ledger.append(ledger_row(e, item.bucket, ledger_extra(e.extra, call), ms))
            continue
        ledger.append(ledger_row(e, item.bucket, e.extra, ms))
        if e.kind == "correction" and e.call_id:
            cdr = e.extra.get("to_seconds") if e.extra.get("source") == "cdr" else None
            corrections.append((e.tenant, e.call_id, _int(cdr)))
    return ledger, list(calls.values()), corrections


def ledger_row(e: LedgerEntry, bucket: int, extra: Any, ms: bool = False) -> Row:
    return (
        e.tenant, e.account, e.seq, e.kind, e.amount, e.reserved, e.balance_after,
        _text(e.idem_key), _text(e.call_id) or None, e.stream_id, bucket,
        _ts_or(e.ts_ms, None, ms), _extra_json(extra) if extra else "{}",
    )


# Where each CDR field of a settlement's extra lands in the calls row (see call_row).
_CDR_COLUMNS: Final = {
    "dst": 3, "prefix": 4, "plan": 5, "start_ms": 6, "answer_ms": 7, "end_ms": 8,
    "duration": 9, "billed": 10, "disposition": 12,
}
_CDR_TIMES: Final = frozenset({"start_ms", "answer_ms", "end_ms"})


def ledger_extra(extra: Any, call: Row) -> dict[Any, Any]:
    """A call settlement's extra without the CDR its calls row now holds: the CDR is stored
    once (jsonb parsing was half of the COPY's cost). A key the row has no column for, or a
    value it could not hold as it was (a NUL, a non-number), stays in the ledger verbatim."""
    if not isinstance(extra, dict):
        return {"extra": extra}
    rest: dict[Any, Any] = {}
    for key, value in extra.items():
        col = _CDR_COLUMNS.get(key)
        if col is not None and (
            (value is None or (type(value) is int and call[col] is not None))
            if key in _CDR_TIMES else call[col] == value
        ):
            continue
        rest[key] = value
    return rest


def call_row(e: LedgerEntry, ms: bool = False) -> Row:
    x: dict[Any, Any] = e.extra if isinstance(e.extra, dict) else {}
    return (
        e.tenant, _text(e.call_id), e.account,
        _opt_text(x.get("dst")), _opt_text(x.get("prefix")), _opt_text(x.get("plan")),
        _ts(x.get("start_ms"), ms), _ts(x.get("answer_ms"), ms),
        _ts_or(x.get("end_ms"), e.ts_ms, ms),  # an end time is always known
        _int(x.get("duration")), _int(x.get("billed")),
        -e.amount, _opt_text(x.get("disposition")), e.kind,
    )


# -- column values ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    """Text Postgres accepts: decoded, without NUL."""
    if type(value) is str and "\x00" not in value:  # the usual case, first and cheap
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").replace("\x00", "")
    return "" if value is None else str(value).replace("\x00", "")


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _int(value: Any, limit: int = _INT32) -> int | None:
    """An integer column from a loosely typed CDR field; NULL when absent or unusable."""
    if type(value) is int:  # the usual case, first and cheap
        return value if -limit <= value <= limit else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        n = int(value) if not isinstance(value, float) else (
            int(value) if math.isfinite(value) else None
        )
    except (TypeError, ValueError):
        return None
    return n if n is not None and -limit <= n <= limit else None


def _ts(value: Any, ms: bool = False) -> datetime | int | None:
    """A time column from Unix milliseconds: an int on an ``epoch_ms_codec`` connection, else
    a datetime; NULL when absent, unusable or out of range."""
    n = _int(value, _MAX_MS)
    if n is None or n < _MIN_MS:
        return None
    return n if ms else _EPOCH + timedelta(0, 0, 0, n)  # positional ms: no keyword parsing


def _ts_or(value: Any, fallback: Any, ms: bool) -> datetime | int:
    t = _ts(value, ms)
    if t is not None:
        return t
    t = _ts(fallback, ms)
    return t if t is not None else (0 if ms else _EPOCH)


def _jsonable(value: Any) -> Any:
    """What jsonb accepts: text without NUL, finite numbers, string keys."""
    if isinstance(value, dict):
        return {_text(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes | str):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(value)


def _extra_json(extra: Any) -> str:
    """jsonb text of an entry's extra: orjson for the usual plain dict (fast), the sanitising
    path for anything it refuses or that carries a NUL jsonb would reject."""
    try:
        out = orjson.dumps(extra).decode()
    except TypeError:
        out = "\\u0000"
    if "\\u0000" in out:
        return json.dumps(_jsonable(extra), separators=(",", ":"))
    return out
