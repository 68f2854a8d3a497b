"""The real-time API's request and response models: strict (unknown fields and loose types
refused) and small (the largest valid body is well under 1 KiB)."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from charging_engine.realtime.problems import Problem
from charging_engine.sessions.model import Reason

API_VERSION: Final = "1.0.0"
MAX_BODY_BYTES: Final = 16 * 1024  # the largest valid body is well under 1 KiB
MAX_EPOCH_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_BILLABLE_SECONDS: Final = 604_800  # 7 days, the pricing module's MAX_CALL_SECONDS
MAX_SEQUENCE: Final = 100_000

ACCOUNT_PATTERN: Final = r"^[A-Za-z0-9_.\-]+$"

AccountId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=ACCOUNT_PATTERN),
    Field(description="Account id within the key's tenant", examples=["1001"]),
]
CallId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$"),
    Field(description="The PBX's call id (printable ASCII, no spaces)", examples=["1712.42"]),
]
EpochMs = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS, description="Unix time in milliseconds")]
Amount = Annotated[str, Field(description="Decimal string in major units", examples=["12.50"])]


class _Body(BaseModel):
    """Request bodies: unknown fields and loose types (``"60"``, ``60.0``, ``true``) rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AuthorizeRequest(_Body):
    account: AccountId
    call_id: CallId
    destination: Annotated[
        str,
        StringConstraints(min_length=1, max_length=32),
        Field(
            description="Dialled number; normalised to E.164 digits", examples=["+44 20 7946 0000"]
        ),
    ]
    caller: Annotated[
        str | None,
        Field(max_length=64, description="Calling number, for the record only"),
    ] = None


class AnswerRequest(_Body):
    account: AccountId
    call_id: CallId
    answered_at_ms: EpochMs | None = None


class ExtendRequest(_Body):
    account: AccountId
    call_id: CallId
    sequence: Annotated[
        int,
        Field(ge=1, le=MAX_SEQUENCE, description="1, 2, ... per call; a retry repeats it"),
    ]


class EndRequest(_Body):
    account: AccountId
    call_id: CallId
    billable_seconds: Annotated[
        int | None,
        Field(ge=0, le=MAX_BILLABLE_SECONDS, description="The PBX's billed seconds, if known"),
    ] = None
    ended_at_ms: EpochMs | None = None


class DecisionOut(BaseModel):
    allowed: bool
    reason: Reason
    max_seconds: int
    max_ms: int
    reserved: Amount
    destination: str
    rate_prefix: str | None
    detail: str


class DecisionProblem(Problem):
    """A refused authorization that is also a problem (unknown account): both shapes at once."""

    allowed: bool = False
    max_seconds: int = 0
    max_ms: int = 0
    reserved: Amount = "0.00"
    destination: str = ""
    rate_prefix: str | None = None


class AnsweredOut(BaseModel):
    answered_at_ms: int
    max_seconds: int


class ExtensionOut(BaseModel):
    extended: bool
    reason: Reason
    max_seconds: int
    seconds_left: int | None


class ChargeOut(BaseModel):
    reason: Reason
    cost: Amount
    balance: Amount
    billed_seconds: int
    duration: int


class BalanceOut(BaseModel):
    account: str
    currency: str
    balance: Amount
    credit_limit: Amount
    reserved: Amount
    available: Amount
    status: str


class HealthOut(BaseModel):
    status: str
