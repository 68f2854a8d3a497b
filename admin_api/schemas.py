"""Types shared by the admin API's request and response models.

Requests refuse unknown fields and loose types (``extra="forbid"``, strict); amounts travel as
decimal strings in major units and are turned into int micros on the way in, never floats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Self

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)

from charging_engine.money import parse_amount

ID_PATTERN: Final = r"^[A-Za-z0-9_.\-]{1,64}$"
# At most 9 whole digits: every string the pattern allows is within money.MAX_AMOUNT.
AMOUNT_PATTERN: Final = r"^[0-9]{1,9}(\.[0-9]{1,6})?$"
SIGNED_AMOUNT_PATTERN: Final = r"^[+-]?[0-9]{1,9}(\.[0-9]{1,6})?$"
KEY_ID_PATTERN: Final = r"^[A-Za-z0-9_.\-]{1,64}$"
MAX_LIMIT: Final = 500


class Body(BaseModel):
    """Request bodies: unknown fields and loose types refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Out(BaseModel):
    """Response bodies."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Self:
        """From a database row holding (at least) every field of the body."""
        return cls(**{k: row[k] for k in cls.model_fields})


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# Free text: no NUL (PostgreSQL text cannot hold it) and no other control characters.
_TEXT: Final = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Name = Annotated[str, StringConstraints(max_length=200, pattern=_TEXT)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=_TEXT)]
Note = Annotated[str, StringConstraints(max_length=500, pattern=_TEXT)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_TEXT)]


def _micros(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError('amount must be a decimal string such as "12.50"')
    return parse_amount(value)


def _signed_micros(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError('amount must be a decimal string such as "-12.50"')
    return parse_amount(value, allow_negative=True)


Micros = Annotated[
    int,
    PlainValidator(_micros),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["12.50"]}),
]
"""A non-negative amount: a decimal string in, int micros inside."""

SignedMicros = Annotated[
    int,
    PlainValidator(_signed_micros),
    WithJsonSchema({"type": "string", "pattern": SIGNED_AMOUNT_PATTERN, "examples": ["-2.50"]}),
]
"""A signed amount: a decimal string in, int micros inside."""

Amount = Annotated[str, Field(description="Decimal string in major units", examples=["12.50"])]
"""An amount in a response."""

# Path parameters
TenantPath = Annotated[str, Path(pattern=ID_PATTERN, description="Tenant id")]
AccountPath = Annotated[str, Path(pattern=ID_PATTERN, description="Account id")]
PlanPath = Annotated[str, Path(pattern=ID_PATTERN, description="Rate plan id")]
KeyPath = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="API key id")]
RowIdPath = Annotated[int, Path(ge=1, le=2**62, description="Row id")]

def _storable(at: datetime) -> datetime:
    """An aware time Postgres and Python can both hold in UTC (years 1970-9999)."""
    try:
        utc = at.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range") from None
    if not 1970 <= utc.year <= 9998:
        raise ValueError("time must lie between 1970 and 9998")
    return at


def _rfc3339_text(value: object) -> object:
    """Only RFC 3339 text, as the schema says: pydantic alone would also take a number (or
    numeric text such as ``86400``) as Unix seconds."""
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and not _RFC3339_START.match(value)
    ):
        raise ValueError("expected an RFC 3339 date-time such as 2026-11-01T00:00:00Z")
    return value


_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")

Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_storable)]
"""An aware timestamp (RFC 3339 with offset) within 1970-9998."""

# Query parameters
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None,
    Query(max_length=256, description="`next_cursor` of the previous page"),
]
From = Annotated[
    Time | None,
    Query(alias="from", description="Inclusive lower bound (RFC 3339 with offset)"),
]
To = Annotated[
    Time | None,
    Query(alias="to", description="Exclusive upper bound (RFC 3339 with offset)"),
]


def check_range(start: datetime | None, end: datetime | None) -> None:
    from admin_api.problems import invalid

    if start is not None and end is not None and end < start:
        raise invalid("'to' must not be before 'from'")


class Page(Out):
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next one."""

    next_cursor: str | None = None
