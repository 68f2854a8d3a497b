"""The document model: what an invoice, credit note or receipt shows, as plain frozen data.

Plain data only (str, int, Decimal, date, datetime, tuples) so a ``Document`` pickles cheaply to
the PDF worker processes and templates cannot reach anything but values. Amounts are integer
minor units of ``Document.currency`` (ISO 4217: JPY 0 decimals, USD 2, KWD 3); call amounts are
engine micros. Validation here is limited to what would otherwise render a wrong page or let
data break out of its place in the markup (a CSS colour, a logo media type, a link).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final

from billing.minor_units import exponent

__all__ = [
    "DEFAULT_BRANDING",
    "LOGO_TYPES",
    "Branding",
    "CallRow",
    "DocLine",
    "DocTax",
    "Document",
    "DocumentKind",
    "Party",
]

_HEX_COLOUR: Final = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
LOGO_TYPES: Final = frozenset(("image/png", "image/svg+xml", "image/jpeg"))
# The CSV link goes into an href: a web URL or a path on our own site, never javascript:.
_LINK: Final = re.compile(r"(?:https?://|/(?!/))[^\s\"'<>]*")


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    RECEIPT = "receipt"
    CREDIT_NOTE = "credit_note"


def _check_int(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int (minor units), not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    address_lines: tuple[str, ...] = ()
    tax_ids: tuple[str, ...] = ()
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Branding:
    """A tenant's look: logo (raw bytes, embedded as a data URI), footer text, accent colour."""

    logo: bytes | None = None
    logo_type: str = "image/png"
    footer: str = ""
    accent: str = "#1f4e79"

    def __post_init__(self) -> None:
        if not isinstance(self.accent, str) or not _HEX_COLOUR.fullmatch(self.accent):
            raise ValueError(f"accent must be a CSS hex colour like #1f4e79: {self.accent!r}")
        if self.logo_type not in LOGO_TYPES:
            raise ValueError(
                f"logo_type must be one of {', '.join(sorted(LOGO_TYPES))}: {self.logo_type!r}"
            )
        if self.logo is not None and not isinstance(self.logo, bytes):
            raise TypeError("logo must be bytes or None")


DEFAULT_BRANDING: Final = Branding()


@dataclass(frozen=True, slots=True)
class DocLine:
    description: str
    amount: int  # minor units
    quantity: Decimal | None = None
    unit: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        _check_int(self.amount, "DocLine.amount")


@dataclass(frozen=True, slots=True)
class DocTax:
    name: str
    rate: Decimal  # 0.19 for 19 %
    base: int  # minor units
    amount: int  # minor units
    inclusive: bool

    def __post_init__(self) -> None:
        _check_int(self.base, "DocTax.base")
        _check_int(self.amount, "DocTax.amount")


@dataclass(frozen=True, slots=True)
class CallRow:
    started_at: datetime  # aware; a naive value is taken as UTC
    destination: str
    seconds: int
    amount_micros: int

    def __post_init__(self) -> None:
        _check_int(self.seconds, "CallRow.seconds")
        _check_int(self.amount_micros, "CallRow.amount_micros")
        if self.seconds < 0:
            raise ValueError("CallRow.seconds must not be negative")


@dataclass(frozen=True, slots=True)
class Document:
    """One rendered document. ``number`` None is a draft (the page says DRAFT).

    ``period_end`` is exclusive (the page shows ``period_end - 1 day``); ``calls`` is the
    appendix, ``calls_total`` how many calls exist in all (more than shown: the appendix says so
    and links ``calls_csv_url``; less than shown is read as ``len(calls)``).
    """

    kind: DocumentKind
    number: str | None
    issued_on: date
    currency: str
    locale: str
    timezone: str
    seller: Party
    buyer: Party
    account_id: str
    lines: tuple[DocLine, ...]
    taxes: tuple[DocTax, ...]
    subtotal: int
    tax_total: int
    total: int
    credit_applied: int = 0
    amount_due: int = 0
    period_start: date | None = None
    period_end: date | None = None
    due_on: date | None = None
    payment_text: str = ""
    calls: tuple[CallRow, ...] = ()
    calls_total: int = 0
    calls_csv_url: str | None = None
    status: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        exponent(self.currency)  # raises ValueError on a malformed or non-invoiceable code
        for name in ("subtotal", "tax_total", "total", "credit_applied", "amount_due",
                     "calls_total"):  # fmt: skip
            _check_int(getattr(self, name), f"Document.{name}")
        if not isinstance(self.kind, DocumentKind):
            raise TypeError(f"kind must be a DocumentKind, not {self.kind!r}")
        if (self.period_start is not None and self.period_end is not None
                and self.period_end <= self.period_start):  # fmt: skip
            raise ValueError("period_end is exclusive and must be after period_start")
        if self.calls_total < 0:
            raise ValueError("calls_total must not be negative")
        if self.calls_csv_url is not None and not _LINK.fullmatch(self.calls_csv_url):
            raise ValueError("calls_csv_url must be an http(s) URL or a path starting with /")

    @property
    def is_draft(self) -> bool:
        return self.number is None

    @property
    def period_last_day(self) -> date | None:
        """The last day of the period, as printed (``period_end`` is exclusive)."""
        return None if self.period_end is None else self.period_end - timedelta(days=1)

    @property
    def calls_omitted(self) -> int:
        """How many calls exist beyond those in the appendix."""
        return max(0, self.calls_total - len(self.calls))
