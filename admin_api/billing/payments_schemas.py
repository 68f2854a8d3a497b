"""Request and response bodies of the payment routes (amounts as decimal strings)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import Field, StringConstraints

from admin_api.billing.schemas import Day, Label, Line, MoneyIn
from admin_api.schemas import Body, Out, Page

Method = Literal["cash", "cheque", "card", "bank_transfer", "online", "direct_debit"]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
InvoiceRef = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                              pattern=r"^[A-Za-z0-9_\-]+$")]  # fmt: skip
PaymentPath = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{32}$")]


class AllocationIn(Body):
    invoice_id: InvoiceRef
    amount: MoneyIn


class PaymentCreate(Body):
    method: Method
    amount: MoneyIn
    currency: Currency = Field(description="Must be the account's currency")
    received_on: Day | None = Field(None, description="Default: today in the tenant's zone")
    reference: Line = ""
    allocations: list[AllocationIn] | None = Field(
        None, min_length=1, max_length=100,
        description="Explicit allocations; default: open invoices, oldest due date first. "
        "Whatever is not allocated becomes account credit.",
    )  # fmt: skip


class PaymentUndo(Body):
    reason: Label


class AllocationOut(Out):
    invoice_id: str
    amount: str
    live: bool = Field(description="False once the payment was reversed or refunded")


class PaymentOut(Out):
    payment_id: str
    account_id: str
    method: Method
    amount: str
    currency: str
    received_on: date
    reference: str
    collected_by: str
    status: Literal["recorded", "reversed", "refunded"]
    allocations: list[AllocationOut]
    credited: str = Field(description="The part that went to the account's credit")
    shortfall: str = Field(description="Credit already spent when the payment was undone")
    undo_reason: str | None
    created_at: datetime
    topped_up: bool = Field(False, description="A prepaid account's payment: its balance got it")
    replayed: bool = False


class PaymentPage(Page):
    items: list[PaymentOut]


class OpenInvoiceOut(Out):
    invoice_id: str
    number: str | None
    issued_on: date
    due_on: date | None
    amount_due: str
    allocated: str
    open: str
    days_past_due: int


class ReceivablesOut(Out):
    account_id: str
    currency: str
    open_total: str
    credit: str
    invoices: list[OpenInvoiceOut]
