"""Requests and responses of the billing catalogue: bill plans, tax labels, discounts, DIDs,
one-time charges and billing settings.

Amounts are decimal strings in major units of the plan's, account's or tenant's currency, with
no more decimals than it has (JPY "1250", USD "12.50", KWD "1.250"): more are refused, never
rounded. Inside they are integer minor units (DID inbound rates: micros, like rates). In a
PATCH body only the fields sent change; ``null`` clears a field that may be empty and is
refused for the others.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Final

from fastapi import Path
from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema

from admin_api.schemas import ID_PATTERN, Body, Id, Micros, Name, Out, Page
from billing.catalog.dids import DidState
from billing.catalog.discounts import Kind as DiscountKind
from billing.catalog.discounts import Scope as DiscountScope
from billing.catalog.one_time import ChargeKind
from billing.catalog.plans import Period
from billing.catalog.settings import Finalization, KindSwitch, TaxRounding

PLAN_ID_PATTERN: Final = r"^[A-Za-z0-9_.:\-]{1,64}$"
TAX_CODE_PATTERN: Final = r"^[A-Za-z0-9_.\-]{1,32}$"
DID_PATTERN: Final = r"^[0-9]{3,15}$"
_TEXT: Final = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # tabs and newlines allowed
_LINE: Final = r"^[^\x00-\x1f\x7f]*$"

MoneyIn = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}(\.[0-9]{1,6})?$"), Field(
    description="Decimal string in major units; at most the currency's decimals",
    examples=["12.50"],
)]
PercentIn = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,3}(\.[0-9]{1,8})?$"), Field(
    description="Percent 0-100, at most 4 decimals", examples=["18.5"],
)]
ValueIn = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}(\.[0-9]{1,6})?$"), Field(
    description="percent: 0-100 (at most 4 decimals); fixed: an amount in the target's"
    " currency", examples=["10"],
)]
QuantityIn = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}(\.[0-9]{1,3})?$"), Field(
    examples=["1", "2.5"],
)]
BillPlanId = Annotated[str, StringConstraints(pattern=PLAN_ID_PATTERN)]
TaxCode = Annotated[str, StringConstraints(pattern=TAX_CODE_PATTERN)]
TaxCodes = Annotated[list[TaxCode], Field(max_length=10)]
DidNumber = Annotated[str, StringConstraints(pattern=DID_PATTERN)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_LINE)]
LongText = Annotated[str, StringConstraints(max_length=2000, pattern=_TEXT)]
Line = Annotated[str, StringConstraints(max_length=200, pattern=_LINE)]
Ord = Annotated[int, Field(ge=-1_000_000, le=1_000_000, description="Application order")]
TermDays = Annotated[int, Field(
    ge=0, le=3650, description="Days from enrollment during which a termination by the"
    " suspension ladder charges the cancellation fee; 0: no minimum term")]
CancellationFee = Annotated[MoneyIn, Field(
    description="Charged on the final invoice when the suspension ladder terminates the"
    " account inside its minimum term", examples=["50.00"])]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: object) -> object:
    """Only ``YYYY-MM-DD`` text (strict models would refuse text; Python alone would also
    take ``20260301``), years 1970-9998."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError("expected a date such as 2026-03-01")
    day = date.fromisoformat(value)
    if not 1970 <= day.year <= 9998:
        raise ValueError("date must lie between 1970 and 9998")
    return day


Day = Annotated[date, BeforeValidator(_day),
                WithJsonSchema({"type": "string", "format": "date", "examples": ["2026-03-01"]})]


# Bill plans


class BillPlanCreate(Body):
    plan_id: BillPlanId
    name: Name = ""
    currency: Currency | None = Field(None, description="Default: the tenant's currency")
    period: Period = "monthly"
    anchor_month: Annotated[int, Field(ge=1, le=12)] = 1
    payment_terms_days: Annotated[int, Field(ge=0, le=365)] = 14
    fees_in_advance: bool = False
    usage_in_arrears: bool = True
    rate_plan_id: Id | None = None
    plan_fee: MoneyIn = "0"
    per_extension_fee: MoneyIn = "0"
    per_seat_fee: MoneyIn = "0"
    minimum_spend: MoneyIn = "0"
    invoice_when_empty: bool = False
    tax_codes: TaxCodes = Field(default_factory=list)
    payment_text: LongText = ""
    minimum_term_days: TermDays = 0
    cancellation_fee: CancellationFee = "0"


class BillPlanUpdate(Body):
    """The currency is fixed; the period, anchor month and fee timing while accounts use it."""

    name: Name | None = None
    period: Period | None = None
    anchor_month: Annotated[int, Field(ge=1, le=12)] | None = None
    payment_terms_days: Annotated[int, Field(ge=0, le=365)] | None = None
    fees_in_advance: bool | None = None
    usage_in_arrears: bool | None = None
    rate_plan_id: Id | None = None
    plan_fee: MoneyIn | None = None
    per_extension_fee: MoneyIn | None = None
    per_seat_fee: MoneyIn | None = None
    minimum_spend: MoneyIn | None = None
    invoice_when_empty: bool | None = None
    tax_codes: TaxCodes | None = None
    payment_text: LongText | None = None
    minimum_term_days: TermDays | None = None
    cancellation_fee: CancellationFee | None = None


class BillPlanOut(Out):
    plan_id: str
    name: str
    currency: str
    period: Period
    anchor_month: int
    payment_terms_days: int
    fees_in_advance: bool
    usage_in_arrears: bool
    rate_plan_id: str | None
    plan_fee: str
    per_extension_fee: str
    per_seat_fee: str
    minimum_spend: str
    invoice_when_empty: bool
    tax_codes: list[str]
    payment_text: str
    minimum_term_days: int
    cancellation_fee: str
    accounts: int = Field(description="Accounts billed on this plan")
    created_at: datetime


class BillPlanPage(Page):
    items: list[BillPlanOut]


# Tax labels


class TaxLabelCreate(Body):
    code: TaxCode
    name: Label
    rate: PercentIn
    inclusive: bool = False
    compound: bool = Field(False, description="Charged on the net plus the taxes before it")
    ord: Ord = 0


class TaxLabelUpdate(Body):
    name: Label | None = None
    rate: PercentIn | None = None
    inclusive: bool | None = None
    compound: bool | None = None
    ord: Ord | None = None


class TaxLabelOut(Out):
    code: str
    name: str
    rate: str = Field(description="Percent", examples=["18.5"])
    inclusive: bool
    compound: bool
    ord: int


class TaxLabelPage(Page):
    items: list[TaxLabelOut]


# Discounts


class DiscountCreate(Body):
    discount_id: Id
    name: Label
    kind: DiscountKind
    value: ValueIn
    scope: DiscountScope
    account_id: Id | None = Field(None, description="For this account ...")
    plan_id: BillPlanId | None = Field(None, description="... or every account on this plan")
    starts_on: Day | None = None
    ends_on: Day | None = Field(None, description="Exclusive")
    ord: Ord = 0


class DiscountUpdate(Body):
    """The target (account or plan) is fixed; a new ``kind`` needs its ``value``."""

    name: Label | None = None
    kind: DiscountKind | None = None
    value: ValueIn | None = None
    scope: DiscountScope | None = None
    starts_on: Day | None = None
    ends_on: Day | None = None
    ord: Ord | None = None


class DiscountOut(Out):
    discount_id: str
    name: str
    kind: DiscountKind
    value: str = Field(description="A percent, or an amount in `currency`")
    currency: str
    scope: DiscountScope
    account_id: str | None
    plan_id: str | None
    starts_on: date | None
    ends_on: date | None
    ord: int


class DiscountPage(Page):
    items: list[DiscountOut]


# DIDs


class DidCreate(Body):
    number: DidNumber
    description: Name = ""
    setup_fee: MoneyIn = "0"
    monthly_fee: MoneyIn = "0"
    inbound_per_minute: Micros | None = Field(None, description="Up to 6 decimals; default 0")


class DidUpdate(Body):
    description: Name | None = None
    setup_fee: MoneyIn | None = None
    monthly_fee: MoneyIn | None = None
    inbound_per_minute: Micros | None = None


class DidAssign(Body):
    account_id: Id
    assigned_on: Day | None = Field(None, description="Default: today in the tenant's zone")


class DidRelease(Body):
    released_on: Day | None = Field(
        None, description="First day no longer charged; default: today in the tenant's zone"
    )


class DidOut(Out):
    number: str
    description: str
    currency: str = Field(description="The tenant's: DID prices are in it")
    setup_fee: str
    monthly_fee: str
    inbound_per_minute: str
    state: DidState
    account_id: str | None
    assigned_on: date | None
    released_on: date | None
    setup_invoice: str | None = Field(description="The invoice that charged the setup fee")


class DidPage(Page):
    items: list[DidOut]


# One-time charges


class ChargeCreate(Body):
    kind: ChargeKind = "manual"
    description: Label
    amount: MoneyIn = Field(description="Per unit, in the account's currency")
    quantity: QuantityIn = "1"
    tax_codes: TaxCodes | None = Field(None, description="Default: the account's taxes")
    charge_on: Day | None = Field(
        None, description="Billed on the invoice of the period containing it; default today"
    )


class ChargeOut(Out):
    charge_id: str
    account_id: str
    kind: ChargeKind
    description: str
    amount: str
    quantity: str
    currency: str
    tax_codes: list[str] | None
    charge_on: date
    invoice_id: str | None = Field(description="The invoice that billed it")
    created_at: datetime
    created_by: str | None
    replayed: bool = Field(False, description="Answered from an earlier request with the key")


class ChargePage(Page):
    items: list[ChargeOut]


# Billing settings

Prefix = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{0,20}$")]
NumberPattern = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_LINE),
                          Field(examples=["{prefix}-{year}-{seq:06d}"])]
Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$"),
                   Field(examples=["en_US", "de_DE"])]
Lines = Annotated[list[Line], Field(max_length=10)]
ReviewHours = Annotated[int, Field(ge=0, le=8760)]
Bcd = Annotated[int, Field(ge=1, le=31)]
Template = Annotated[str, StringConstraints(max_length=60_000)]


class SettingsIn(Body):
    """The whole settings (PUT): a field left out takes its default."""

    number_prefix: Prefix = "INV"
    number_pattern: NumberPattern = "{prefix}-{year}-{seq:06d}"
    finalization: Finalization = "auto"
    review_hours: ReviewHours = 0
    tax_rounding: TaxRounding = "per_line"
    default_bcd: Bcd | None = Field(None, description="Default: each account's creation day")
    kind_switch: KindSwitch = "boundary"
    locale: Locale = "en_US"
    seller_name: Name = ""
    seller_address: Lines = Field(default_factory=list)
    seller_tax_ids: Lines = Field(default_factory=list)
    footer: LongText = ""
    template_source: Template | None = Field(None, description="Default: the built-in one")


class SettingsPatch(Body):
    number_prefix: Prefix | None = None
    number_pattern: NumberPattern | None = None
    finalization: Finalization | None = None
    review_hours: ReviewHours | None = None
    tax_rounding: TaxRounding | None = None
    default_bcd: Bcd | None = None
    kind_switch: KindSwitch | None = None
    locale: Locale | None = None
    seller_name: Name | None = None
    seller_address: Lines | None = None
    seller_tax_ids: Lines | None = None
    footer: LongText | None = None
    template_source: Template | None = None


class SettingsOut(Out):
    number_prefix: str
    number_pattern: str
    finalization: Finalization
    review_hours: int
    tax_rounding: TaxRounding
    default_bcd: int | None
    kind_switch: KindSwitch
    locale: str
    seller_name: str
    seller_address: list[str]
    seller_tax_ids: list[str]
    footer: str
    template_source: str | None
    updated_at: datetime | None = Field(description="null: never set (these are the defaults)")


# Path parameters (distinct from ``{plan_id}``, which names a rate plan)

BillPlanPath = Annotated[str, Path(pattern=PLAN_ID_PATTERN, description="Bill plan id")]
TaxCodePath = Annotated[str, Path(pattern=TAX_CODE_PATTERN, description="Tax label code")]
DiscountPath = Annotated[str, Path(pattern=ID_PATTERN, description="Discount id")]
DidPath = Annotated[str, Path(pattern=DID_PATTERN, description="DID number")]
ChargePath = Annotated[str, Path(pattern=ID_PATTERN, description="One-time charge id")]
