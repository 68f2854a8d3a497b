"""Sample documents: the preview a tenant sees while editing its template, and the documents a
template is validated against (every optional field set; receipt, credit note, JPY, KWD)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from billing.documents.model import (
    Branding,
    CallRow,
    DocLine,
    DocTax,
    Document,
    DocumentKind,
    Party,
)

__all__ = ["sample_document", "samples"]


def samples() -> list[tuple[Document, Branding]]:
    full = sample_document()
    branded = Branding(logo=b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                       logo_type="image/svg+xml",
                       footer="Example Telecom Ltd, registered in England no. 01234567")
    draft_receipt = Document(
        kind=DocumentKind.RECEIPT, number=None, issued_on=full.issued_on, currency="JPY",
        locale="de_DE", timezone="Europe/Berlin", seller=full.seller,
        buyer=Party("Erika Mustermann"), account_id=full.account_id,
        lines=(DocLine("Guthabenaufladung", 5000),), taxes=(), subtotal=5000, tax_total=0,
        total=5000, amount_due=0,
    )
    credit = Document(
        kind=DocumentKind.CREDIT_NOTE, number="CN-1", issued_on=full.issued_on, currency="KWD",
        locale="en_US", timezone="Asia/Kuwait", seller=full.seller, buyer=full.buyer,
        account_id=full.account_id, lines=(DocLine("Refund", -1250),), taxes=(),
        subtotal=-1250, tax_total=0, total=-1250, amount_due=-1250, calls_total=3,
        calls_csv_url="https://billing.example.com/calls.csv",
    )
    return [(full, branded), (full, Branding()), (draft_receipt, Branding()), (credit, branded)]


def sample_document() -> Document:
    """A complete invoice (every optional field set) for previews and template validation."""
    start = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    calls = tuple(
        CallRow(start + timedelta(hours=7 * i, minutes=13 * i), f"+44 20 7946 {i:04d}",
                30 + 37 * i, 12_345 * (i + 1))
        for i in range(20)
    )  # fmt: skip
    lines = (
        DocLine("Business line, monthly fee", 2_500, Decimal(1), "month", "1–31 May 2026"),
        DocLine("Extra number +44 20 7946 0000", 300, Decimal(1), "month"),
        DocLine("Calls to UK landlines", 1_234, Decimal("312.5"), "min"),
        DocLine("Calls to UK mobiles", 2_045, Decimal("120"), "min"),
        DocLine("International calls", 987, Decimal("41.2"), "min", "Zone 1 and 2"),
        DocLine("Voicemail to e-mail", 150),
        DocLine("Call recording storage", 400, Decimal(20), "GB"),
        DocLine("Hunt group", 500, Decimal(1), "month"),
        DocLine("Loyalty discount", -600, detail="10 % on the monthly fees"),
        DocLine("Proration: plan change on 12 May", 377),
    )
    subtotal = sum(line.amount for line in lines)
    tax = (subtotal * 20 + 50) // 100
    return Document(
        kind=DocumentKind.INVOICE, number="INV-2026-000123", issued_on=date(2026, 6, 1),
        currency="USD", locale="en_US", timezone="Europe/London",
        seller=Party("Example Telecom Ltd", ("1 Long Street", "London EC1A 1AA", "United Kingdom"),
                     ("GB123456789",), "billing@example.com"),
        buyer=Party("Acme Widgets plc", ("Unit 4, Riverside Park", "Leeds LS1 4AP"),
                    ("GB987654321",), "accounts@acme.example"),
        account_id="ACC-000042", lines=lines,
        taxes=(DocTax("VAT", Decimal("0.20"), subtotal, tax, inclusive=False),),
        subtotal=subtotal, tax_total=tax, total=subtotal + tax, credit_applied=500,
        amount_due=subtotal + tax - 500, period_start=date(2026, 5, 1),
        period_end=date(2026, 6, 1), due_on=date(2026, 6, 15),
        payment_text="Direct debit on or just after 15 June from the account ending 1234",
        calls=calls, calls_total=57, calls_csv_url="https://billing.example.com/inv/123/calls.csv",
        status="issued", notes="Thank you for your business.",
    )  # fmt: skip
