"""Account requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints

from admin_api.schemas import Amount, Body, Id, Micros, Name, Out, Page, Reason, SignedMicros

MAX_THRESHOLDS: Final = 5

Kind = Literal["prepaid", "postpaid"]
OpenStatus = Literal["active", "outgoing_suspended", "suspended", "inactive"]
Status = Literal["active", "outgoing_suspended", "suspended", "inactive", "terminated"]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Mobile = Annotated[
    str, StringConstraints(pattern=r"^\+?[0-9]{6,15}$"),
    Field(description="E.164 digits, optionally with a leading +", examples=["+447700900123"]),
]
Email = Annotated[
    str,
    StringConstraints(
        pattern=r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,190}\.[^@\s.\x00-\x1f\x7f]{1,63}$"
    ),
    Field(examples=["ops@example.com"]),
]
Thresholds = Annotated[
    list[SignedMicros],
    Field(max_length=MAX_THRESHOLDS,
          description="Low-balance alert lines (the balance falling below one raises an alert)"),
]


class AccountCreate(Body):
    account_id: Id
    kind: Kind = "prepaid"
    currency: Currency | None = Field(None, description="Default: the tenant's currency")
    credit_limit: Micros | None = Field(None, description="Overdraft allowed; default 0")
    min_balance: Micros | None = Field(
        None, description="Balance calls may not spend below (default 0)"
    )
    rate_plan_id: Id | None = None
    status: OpenStatus = "active"
    name: Name = ""
    primary_mobile: Mobile | None = None
    alternate_mobile: Mobile | None = None
    email: Email | None = None
    low_balance_thresholds: Thresholds = Field(default_factory=list)
    low_balance_hysteresis: Micros | None = Field(
        None,
        description="How far the balance must rise above a line before it can fire again;"
        " default a tenth of the highest line",
    )


class AccountUpdate(Body):
    """Only the fields present change; ``null`` clears the nullable ones."""

    kind: Kind | None = None
    credit_limit: Micros | None = None
    min_balance: Micros | None = None
    rate_plan_id: Id | None = None
    name: Name | None = None
    primary_mobile: Mobile | None = None
    alternate_mobile: Mobile | None = None
    email: Email | None = None
    low_balance_thresholds: Thresholds | None = None
    low_balance_hysteresis: Micros | None = None


class StatusChange(Body):
    status: OpenStatus
    reason: Reason


class CloseRequest(Body):
    reason: Reason


class AutoTopup(Body):
    """Stored for the billing work: top up ``amount`` when the balance falls below
    ``threshold``."""

    enabled: bool
    threshold: SignedMicros | None = None
    amount: Micros | None = None


class AutoTopupOut(Out):
    enabled: bool
    threshold: Amount | None
    amount: Amount | None


class BalanceOut(Out):
    currency: str
    balance: Amount
    credit_limit: Amount = Field(description="Credit limit minus minimum balance, as enforced")
    reserved: Amount = Field(description="Held by calls in progress")
    available: Amount
    status: str


class AccountOut(Out):
    tenant_id: str
    account_id: str
    kind: Kind
    currency: str
    status: Status
    credit_limit: Amount
    min_balance: Amount
    rate_plan_id: str | None
    name: str
    primary_mobile: str | None
    alternate_mobile: str | None
    email: str | None
    low_balance_thresholds: list[Amount]
    low_balance_hysteresis: Amount
    auto_topup: AutoTopupOut
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    balance: BalanceOut | None = Field(
        description="Live balance from Redis; null if the account has no balance record"
    )


class AccountPage(Page):
    items: list[AccountOut]


class StatusChangeOut(Out):
    id: int
    from_status: str | None
    to_status: str
    reason: str
    changed_at: datetime
    changed_by: str | None


class StatusHistoryPage(Page):
    items: list[StatusChangeOut]
