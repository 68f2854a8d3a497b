"""Request and response models of invoices, account billing and exports.

Invoice amounts are decimal strings with exactly the invoice currency's ISO 4217 digits.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from admin_api.schemas import Body, Id, Out, Reason

InvoiceStatus = Literal["draft", "finalized", "paid", "partially_paid", "void"]
DocumentKind = Literal["invoice", "receipt"]
LineKindIn = Literal["one_time", "recurring", "usage"]
MinorAmount = Annotated[str, StringConstraints(pattern=r"^[+-]?[0-9]{1,12}(\.[0-9]{1,4})?$")]
Description = Annotated[str, StringConstraints(min_length=1, max_length=200,
                                               pattern=r"^[^\x00-\x1f\x7f]*$")]
TaxCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}(\.[0-9]{1,3})?$")]


class LineTaxOut(Out):
    code: str
    amount: str


class InvoiceLineOut(Out):
    position: int
    kind: str
    description: str
    quantity: str
    unit: str
    amount: str
    net: str
    tax: str
    tax_codes: list[str]
    calls: int
    seconds: int
    ref: str | None
    manual: bool
    reason: str | None


class InvoiceTaxOut(Out):
    code: str
    name: str
    rate: str
    inclusive: bool
    base: str
    amount: str


class InvoiceOut(Out):
    invoice_id: str
    kind: DocumentKind
    number: str | None
    account_id: str
    status: InvoiceStatus
    currency: str
    total: str
    amount_due: str
    due_on: date | None
    issued_on: date
    period_start: date | None
    period_end: date | None = Field(description="exclusive: the first day of the next period")
    subtotal: str
    tax_total: str
    credit_applied: str
    review_until: datetime | None
    finalized_at: datetime | None
    voided_at: datetime | None
    void_reason: str | None
    payment_text: str
    created_at: datetime


class InvoiceDetail(InvoiceOut):
    lines: list[InvoiceLineOut]
    taxes: list[InvoiceTaxOut]


class InvoicePage(Out):
    items: list[InvoiceOut]
    next_cursor: str | None


class LineChangeIn(Body):
    op: Literal["add", "change", "remove"]
    position: int | None = Field(default=None, ge=1, le=10_000)
    description: Description | None = None
    amount: MinorAmount | None = None
    quantity: Quantity | None = None
    tax_codes: list[TaxCode] | None = Field(default=None, max_length=10)
    kind: LineKindIn = "one_time"


class CorrectionIn(Body):
    changes: list[LineChangeIn] = Field(min_length=1, max_length=100)
    reason: Reason


class VoidIn(Body):
    reason: Reason


class UsageGroupOut(Out):
    description: str
    late: bool
    calls: int
    seconds: int
    amount: str = Field(description="exact, in the engine's 6 decimals")


class PreviewOut(Out):
    account_id: str
    currency: str
    period_start: date
    period_end: date
    starts_at: datetime
    ends_at: datetime
    total: str
    subtotal: str
    tax_total: str
    credit_applied: str
    amount_due: str
    due_on: date
    lines: list[InvoiceLineOut]
    taxes: list[InvoiceTaxOut]


class UnbilledOut(Out):
    account_id: str
    currency: str
    period_start: date
    period_end: date
    usage: list[UsageGroupOut]
    usage_total: str = Field(description="settled usage of the open period, 6 decimals")
    balance: str | None = Field(description="live Redis balance (negative: owed)")
    reserved: str | None = Field(description="held by calls in progress")
    available: str | None = Field(description="what calls may still spend")


class BillingIn(Body):
    plan_id: Id
    bcd: int | None = Field(default=None, ge=1, le=31)
    extensions: int = Field(default=0, ge=0, le=1_000_000)
    seats: int = Field(default=0, ge=0, le=1_000_000)
    tax_codes: list[TaxCode] | None = Field(default=None, max_length=10)


class BillingPatch(Body):
    plan_id: Id | None = None
    extensions: int | None = Field(default=None, ge=0, le=1_000_000)
    seats: int | None = Field(default=None, ge=0, le=1_000_000)
    effective: Literal["now", "boundary"] = "now"


class CycleDayIn(Body):
    bcd: int = Field(ge=1, le=31)


class KindSwitchIn(Body):
    kind: Literal["prepaid", "postpaid"]
    effective: Literal["now", "boundary"] | None = Field(
        default=None, description="default: the tenant's billing setting kind_switch")


class BillingOut(Out):
    account_id: str
    plan_id: str
    bcd: int
    extensions: int
    seats: int
    tax_codes: list[str] | None
    credit_balance: str
    open_period_start: date
    open_period_end: date
    open_starts_at: datetime
    open_ends_at: datetime
    pending_kind: str | None
    kind: str
