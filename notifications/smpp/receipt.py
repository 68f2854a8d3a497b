"""The SMSC delivery receipt's text (SMPP 3.4 Appendix B), sans I/O.

``id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
err:E text:...``: the format is only "recommended", so it is read leniently (any case,
``Text:`` too, dates with or without seconds, ids longer than ten characters, no ``text:``);
a text that does not match gives None and the caller falls back to the TLVs
(receipted_message_id, message_state) that a v3.4 SMSC also sends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_RECEIPT = re.compile(
    r"id:(?P<id>\S+)\s+sub:(?P<sub>\d+)\s+dlvrd:(?P<dlvrd>\d+)\s+"
    r"submit date:(?P<submit>\d{10}(?:\d\d)?)\s+done date:(?P<done>\d{10}(?:\d\d)?)\s+"
    r"stat:(?P<stat>\w+)\s+err:(?P<err>\w+)(?:\s+text:(?P<text>.*))?\Z",
    re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A parsed receipt; dates are the SMSC's local time as it sends them (no zone)."""

    message_id: str
    submitted: int
    delivered: int
    submit_date: datetime | None
    done_date: datetime | None
    state: str
    error: str
    text: str = ""


def _date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M")
    except ValueError:
        return None


def parse_receipt(text: str) -> Receipt | None:
    m = _RECEIPT.match(text.strip())
    if m is None:
        return None
    return Receipt(m["id"], int(m["sub"]), int(m["dlvrd"]), _date(m["submit"]),
                   _date(m["done"]), m["stat"].upper(), m["err"], m["text"] or "")


def format_receipt(r: Receipt) -> str:
    def when(d: datetime | None) -> str:
        return (d or datetime(2000, 1, 1)).strftime("%y%m%d%H%M")

    return (f"id:{r.message_id} sub:{r.submitted:03d} dlvrd:{r.delivered:03d} "
            f"submit date:{when(r.submit_date)} done date:{when(r.done_date)} "
            f"stat:{r.state} err:{r.error} text:{r.text}")
