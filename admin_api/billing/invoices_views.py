"""Invoice rows -> response models (amounts in the invoice currency's own digits)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from admin_api.billing.invoices_schemas import (
    InvoiceDetail,
    InvoiceLineOut,
    InvoiceOut,
    InvoiceTaxOut,
)
from billing.amounts import format_minor


def _q(value: Any) -> str:
    d = Decimal(value)
    return format(d.normalize(), "f") if d == d.to_integral() else format(d, "f")


def invoice_out(r: Any) -> InvoiceOut:
    cur = r["currency"].strip()
    return InvoiceOut(
        invoice_id=r["invoice_id"], kind=r["kind"], number=r["number"],
        account_id=r["account_id"], status=r["status"], currency=cur,
        total=format_minor(r["total"], cur), amount_due=format_minor(r["amount_due"], cur),
        due_on=r["due_on"], issued_on=r["issued_on"], period_start=r["period_start"],
        period_end=r["period_end"], subtotal=format_minor(r["subtotal"], cur),
        tax_total=format_minor(r["tax_total"], cur),
        credit_applied=format_minor(r["credit_applied"], cur), review_until=r["review_until"],
        finalized_at=r["finalized_at"], voided_at=r["voided_at"], void_reason=r["void_reason"],
        payment_text=r["payment_text"], created_at=r["created_at"],
    )


def line_out(r: Any, cur: str) -> InvoiceLineOut:
    return InvoiceLineOut(
        position=r["position"], kind=r["kind"], description=r["description"],
        quantity=_q(r["quantity"]), unit=r["unit"], amount=format_minor(r["amount"], cur),
        net=format_minor(r["net"], cur), tax=format_minor(r["tax_amount"], cur),
        tax_codes=list(r["tax_codes"]), calls=r["calls"], seconds=r["seconds"], ref=r["ref"],
        manual=r["manual"], reason=r["reason"],
    )


def tax_out(r: Any, cur: str) -> InvoiceTaxOut:
    return InvoiceTaxOut(
        code=r["code"], name=r["name"], rate=_q(r["rate"]), inclusive=r["inclusive"],
        base=format_minor(r["base"], cur), amount=format_minor(r["amount"], cur),
    )


def detail_out(r: Any, lines: list[Any], taxes: list[Any]) -> InvoiceDetail:
    cur = r["currency"].strip()
    return InvoiceDetail(
        **invoice_out(r).model_dump(),
        lines=[line_out(x, cur) for x in lines], taxes=[tax_out(x, cur) for x in taxes],
    )
