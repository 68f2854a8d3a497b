"""What the catalogue modules share: tenant and account facts, tax code checks, percents.

A referenced row that is not in the tenant (another tenant's included) reads exactly like one
that does not exist, so no answer tells a tenant about another tenant's ids.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from billing.errors import BillingNotFound, InvalidBillingInput
from billing.minor_units import exponent
from charging_engine.ledger.catalog_repo import Conn

__all__ = [
    "MAX_MINOR",
    "AccountFacts",
    "Conn",
    "TenantFacts",
    "account",
    "check_currency",
    "check_minor",
    "check_tax_codes",
    "format_decimal",
    "percent",
    "tenant",
    "with_changes",
]

MAX_MINOR: Final = 10**15  # minor units; far below bigint, above any real fee
PERCENT_DIGITS: Final = 4  # numeric(9, 4) / numeric(18, 4)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TenantFacts:
    currency: str
    timezone: str

    def today(self, now: datetime) -> date:
        """The tenant's calendar day at ``now`` (an aware time)."""
        return now.astimezone(ZoneInfo(self.timezone)).date()


@dataclass(frozen=True, slots=True)
class AccountFacts:
    account_id: str
    currency: str
    status: str


async def tenant(conn: Conn, tenant_id: str) -> TenantFacts:
    r = await conn.fetchrow(
        "SELECT currency, timezone FROM tenants WHERE tenant_id = $1", tenant_id
    )
    if r is None:
        raise BillingNotFound("tenant", tenant_id)
    return TenantFacts(r["currency"].strip(), r["timezone"])


async def account(
    conn: Conn, tenant_id: str, account_id: str, *, referenced: bool = False
) -> AccountFacts:
    """The account, or BillingNotFound (the path named it) / InvalidBillingInput
    (``referenced``: a request body named it)."""
    r = await conn.fetchrow(
        "SELECT currency, status FROM accounts WHERE tenant_id = $1 AND account_id = $2",
        tenant_id, account_id,
    )
    if r is None:
        if referenced:
            raise InvalidBillingInput(f"account {account_id!r} does not exist")
        raise BillingNotFound("account", account_id)
    return AccountFacts(account_id, r["currency"].strip(), r["status"])


async def check_tax_codes(conn: Conn, tenant_id: str, codes: Iterable[str] | None) -> None:
    """Every code names one of the tenant's tax labels, none twice (the labels are share
    locked: a concurrent delete waits for the caller's transaction, then sees the use)."""
    if codes is None:
        return
    wanted = list(codes)
    if len(set(wanted)) != len(wanted):
        raise InvalidBillingInput("a tax code is listed twice")
    if not wanted:
        return
    found = {r["code"] for r in await conn.fetch(
        "SELECT code FROM tax_labels WHERE tenant_id = $1 AND code = ANY($2::text[])"
        " FOR SHARE",
        tenant_id, wanted,
    )}
    missing = [c for c in wanted if c not in found]
    if missing:
        raise InvalidBillingInput(f"unknown tax label(s): {', '.join(missing)}")


def check_currency(currency: str) -> str:
    """An ISO 4217 code that has minor units (invoices are counted in them)."""
    try:
        exponent(currency)
    except ValueError as exc:
        raise InvalidBillingInput(str(exc)) from None
    return currency


def check_minor(value: int, what: str, *, positive: bool = False, limit: int = MAX_MINOR) -> int:
    """A whole number of minor units, >= 0 (> 0 when ``positive``) and below ``limit``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidBillingInput(f"{what} must be an integer number of minor units")
    if value < 0 or (positive and value == 0):
        raise InvalidBillingInput(f"{what} must be {'positive' if positive else '>= 0'}")
    if value >= limit:
        raise InvalidBillingInput(f"{what} is too large")
    return value


def percent(value: Decimal | str, what: str) -> Decimal:
    """A percent 0..100 with at most four decimals ("18.5" is 18.5 %)."""
    try:
        d = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidBillingInput(f"{what} must be a decimal such as \"18.5\"") from None
    if not d.is_finite() or not Decimal(0) <= d <= Decimal(100):
        raise InvalidBillingInput(f"{what} must be between 0 and 100, not {value}")
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    if exp < -PERCENT_DIGITS and d != d.quantize(Decimal(1).scaleb(-PERCENT_DIGITS)):
        raise InvalidBillingInput(f"{what} has at most {PERCENT_DIGITS} decimals: {value}")
    return d


def format_decimal(value: Decimal) -> str:
    """A stored numeric as plain text without trailing zeros ("18.5", "100", "0")."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def with_changes(current: T, changes: Mapping[str, Any], allowed: Iterable[str]) -> T:
    """``current`` (a dataclass) with ``changes`` applied: PATCH semantics, unknown names
    refused."""
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise InvalidBillingInput(f"cannot change: {', '.join(unknown)}")
    return dataclasses.replace(current, **changes)  # type: ignore[type-var]
