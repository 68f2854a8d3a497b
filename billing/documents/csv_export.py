"""The call-detail CSV behind a document's appendix link (all calls, not only those shown).

Machine-readable first: instants in ISO 8601 with their UTC offset, durations in seconds, amounts
as exact decimals of the major unit (micros have 6 digits, so nothing is rounded) or as integer
micros when no currency is given. A cell that a spreadsheet would run as a formula (``=``,
``@``, or ``+``/``-`` not followed by a plain phone number) is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from datetime import UTC
from decimal import Decimal
from zoneinfo import ZoneInfo

from billing.documents.model import CallRow
from billing.minor_units import exponent

__all__ = ["calls_csv"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PHONE_LIKE = re.compile(r"[+\-]?[0-9 ().\-*#]+")


def _safe(text: str) -> str:
    if text.startswith(_FORMULA_START) and not _PHONE_LIKE.fullmatch(text):
        return "'" + text
    return text


def calls_csv(rows: Iterable[CallRow], currency: str | None = None, timezone: str = "UTC"
              ) -> str:  # fmt: skip
    """CSV text (header first, CRLF line ends) of ``rows``, times shown in ``timezone``."""
    zone = ZoneInfo(timezone)
    if currency is not None:
        exponent(currency)  # refuse a malformed code before writing anything
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if currency is None:
        writer.writerow(("started_at", "destination", "seconds", "amount_micros"))
    else:
        writer.writerow(("started_at", "destination", "seconds", "amount", "currency"))
    for row in rows:
        started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)
        cells: list[object] = [started.astimezone(zone).isoformat(), _safe(row.destination),
                               row.seconds]  # fmt: skip
        if currency is None:
            cells.append(row.amount_micros)
        else:
            cells += [f"{Decimal(row.amount_micros).scaleb(-6):f}", currency]
        writer.writerow(cells)
    return out.getvalue()
