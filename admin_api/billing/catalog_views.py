"""The billing catalogue at the API edge: amounts in and out, PATCH bodies, response models."""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from admin_api.billing.schemas import (
    BillPlanOut,
    ChargeOut,
    DidOut,
    DiscountOut,
    SettingsOut,
    TaxLabelOut,
)
from billing.amounts import format_minor, parse_minor
from billing.catalog.dids import Did
from billing.catalog.discounts import DiscountRow
from billing.catalog.lookups import format_decimal
from billing.catalog.one_time import Charge
from billing.catalog.plans import BillPlan
from billing.catalog.settings import BillingSettings
from billing.catalog.taxes import TaxLabelRow
from billing.errors import InvalidBillingInput
from charging_engine.money import format_amount


def minor_in(text: str, currency: str, what: str) -> int:
    """A decimal string of ``currency`` in minor units; more decimals than it has: 422."""
    try:
        return parse_minor(text, currency)
    except ValueError as exc:
        raise InvalidBillingInput(f"{what}: {exc}") from None


def given(body: BaseModel, nullable: Collection[str] = ()) -> dict[str, Any]:
    """The fields a PATCH body carried; ``null`` only where it clears a field."""
    out = {name: getattr(body, name) for name in body.model_fields_set}
    refused = sorted(n for n, v in out.items() if v is None and n not in nullable)
    if refused:
        raise InvalidBillingInput(f"{', '.join(refused)} cannot be null")
    return out


def plan_out(p: BillPlan) -> BillPlanOut:
    s, cur = p.spec, p.currency
    return BillPlanOut(
        plan_id=p.plan_id, name=s.name, currency=cur, period=s.period,
        anchor_month=s.anchor_month, payment_terms_days=s.payment_terms_days,
        fees_in_advance=s.fees_in_advance, usage_in_arrears=s.usage_in_arrears,
        rate_plan_id=s.rate_plan_id, plan_fee=format_minor(s.plan_fee, cur),
        per_extension_fee=format_minor(s.per_extension_fee, cur),
        per_seat_fee=format_minor(s.per_seat_fee, cur),
        minimum_spend=format_minor(s.minimum_spend, cur),
        invoice_when_empty=s.invoice_when_empty, tax_codes=list(s.tax_codes),
        payment_text=s.payment_text, minimum_term_days=s.minimum_term_days,
        cancellation_fee=format_minor(s.cancellation_fee, cur), accounts=p.accounts,
        created_at=p.created_at,
    )


def tax_out(t: TaxLabelRow) -> TaxLabelOut:
    s = t.spec
    return TaxLabelOut(code=t.code, name=s.name, rate=format_decimal(s.rate),
                       inclusive=s.inclusive, compound=s.compound, ord=s.ord)


def discount_value_in(kind: str, text: str, currency: str) -> Decimal | int:
    if kind == "percent":
        return Decimal(text)
    return minor_in(text, currency, "value")


def discount_out(d: DiscountRow) -> DiscountOut:
    s = d.spec
    value = (format_decimal(s.value) if isinstance(s.value, Decimal)
             else format_minor(s.value, d.currency))
    return DiscountOut(
        discount_id=d.discount_id, name=s.name, kind=s.kind,
        value=value, currency=d.currency, scope=s.scope,
        account_id=d.account_id, plan_id=d.plan_id, starts_on=s.starts_on, ends_on=s.ends_on,
        ord=s.ord,
    )


def did_out(d: Did, currency: str) -> DidOut:
    s = d.spec
    return DidOut(
        number=d.number, description=s.description, currency=currency,
        setup_fee=format_minor(s.setup_fee, currency),
        monthly_fee=format_minor(s.monthly_fee, currency),
        inbound_per_minute=format_amount(s.inbound_per_minute, currency),
        state=d.state, account_id=d.account_id,
        assigned_on=d.assigned_on, released_on=d.released_on, setup_invoice=d.setup_invoice,
    )


def charge_out(c: Charge, replayed: bool = False) -> ChargeOut:
    s = c.spec
    assert s.charge_on is not None
    return ChargeOut(
        charge_id=c.charge_id, account_id=c.account_id, kind=s.kind,
        description=s.description, amount=format_minor(s.amount, c.currency),
        quantity=format_decimal(s.quantity), currency=c.currency,
        tax_codes=list(s.tax_codes) if s.tax_codes is not None else None,
        charge_on=s.charge_on, invoice_id=c.invoice_id, created_at=c.created_at,
        created_by=c.created_by, replayed=replayed,
    )


def settings_out(s: BillingSettings) -> SettingsOut:
    return SettingsOut(
        number_prefix=s.number_prefix, number_pattern=s.number_pattern,
        finalization=s.finalization, review_hours=s.review_hours,
        tax_rounding=s.tax_rounding, default_bcd=s.default_bcd,
        kind_switch=s.kind_switch, locale=s.locale,
        seller_name=s.seller_name, seller_address=list(s.seller_address),
        seller_tax_ids=list(s.seller_tax_ids), footer=s.footer,
        template_source=s.template_source, updated_at=s.updated_at,
    )


def dump(model: BaseModel) -> dict[str, Any]:
    """A response model as the audit log stores it."""
    return model.model_dump(mode="json", exclude={"replayed"})
