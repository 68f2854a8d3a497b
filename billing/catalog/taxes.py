"""Tax labels (``tax_labels``): a tenant's taxes, applied in ``ord`` order by code.

A rate is a percent 0..100 with at most four decimals. A label stays while a plan, an
account's billing or an unbilled one-time charge names it: an invoice could not be composed
with a code that no longer exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import asyncpg

from billing.catalog.lookups import Conn, percent, with_changes
from billing.errors import AlreadyExists, BillingNotFound, InUse, InvalidBillingInput

__all__ = ["TaxLabelRow", "TaxSpec", "create", "delete", "get", "page", "update"]

CODE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MAX_ORD: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class TaxSpec:
    name: str
    rate: Decimal  # percent
    inclusive: bool = False
    compound: bool = False
    ord: int = 0


SPEC_FIELDS: Final = ("name", "rate", "inclusive", "compound", "ord")


@dataclass(frozen=True, slots=True)
class TaxLabelRow:
    code: str
    spec: TaxSpec


def validate(spec: TaxSpec) -> TaxSpec:
    if not spec.name.strip():
        raise InvalidBillingInput("a tax label needs a name")
    if not -MAX_ORD <= spec.ord <= MAX_ORD:
        raise InvalidBillingInput(f"ord must be between {-MAX_ORD} and {MAX_ORD}")
    return TaxSpec(spec.name, percent(spec.rate, "rate"), spec.inclusive, spec.compound,
                   spec.ord)


def _row(r: asyncpg.Record) -> TaxLabelRow:
    return TaxLabelRow(r["code"], TaxSpec(r["name"], Decimal(r["rate"]), r["inclusive"],
                                          r["compound"], r["ord"]))


_SELECT: Final = "SELECT code, name, rate, inclusive, compound, ord FROM tax_labels"


async def get(conn: Conn, tenant_id: str, code: str, *, lock: bool = False) -> TaxLabelRow:
    r = await conn.fetchrow(
        _SELECT + " WHERE tenant_id = $1 AND code = $2" + (" FOR UPDATE" if lock else ""),
        tenant_id, code,
    )
    if r is None:
        raise BillingNotFound("tax label", code)
    return _row(r)


async def page(
    conn: Conn, tenant_id: str, after: tuple[int, str] | None, limit: int
) -> list[TaxLabelRow]:
    """Labels in application order (``ord``, then code), those after ``after``."""
    rows = await conn.fetch(
        _SELECT + " WHERE tenant_id = $1 AND ($2::int IS NULL OR (ord, code) > ($2, $3))"
        " ORDER BY ord, code LIMIT $4",
        tenant_id, after[0] if after else None, after[1] if after else None, limit,
    )
    return [_row(r) for r in rows]


async def create(conn: Conn, tenant_id: str, code: str, spec: TaxSpec) -> TaxLabelRow:
    if not CODE.match(code):
        raise InvalidBillingInput("a tax code is 1-32 letters, digits or . _ -")
    spec = validate(spec)
    done = await conn.fetchval(
        "INSERT INTO tax_labels (tenant_id, code, name, rate, inclusive, compound, ord)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1",
        tenant_id, code, spec.name, spec.rate, spec.inclusive, spec.compound, spec.ord,
    )
    if done is None:
        raise AlreadyExists("tax label", code)
    return TaxLabelRow(code, spec)


async def update(
    conn: Conn, tenant_id: str, code: str, changes: Mapping[str, Any]
) -> tuple[TaxLabelRow, TaxLabelRow]:
    """PATCH a label; -> (before, after). Invoices already made keep the rate they used."""
    old = await get(conn, tenant_id, code, lock=True)
    spec = validate(with_changes(old.spec, changes, SPEC_FIELDS))
    await conn.execute(
        "UPDATE tax_labels SET name = $3, rate = $4, inclusive = $5, compound = $6, ord = $7"
        " WHERE tenant_id = $1 AND code = $2",
        tenant_id, code, spec.name, spec.rate, spec.inclusive, spec.compound, spec.ord,
    )
    return old, TaxLabelRow(code, spec)


async def users(conn: Conn, tenant_id: str, code: str) -> list[str]:
    """What names the code (plans, account billing, unbilled charges), for a refusal."""
    rows = await conn.fetch(
        "SELECT 'bill plan ' || plan_id AS what FROM bill_plans"
        " WHERE tenant_id = $1 AND $2 = ANY(tax_codes)"
        " UNION ALL SELECT 'account ' || account_id FROM billing_accounts"
        " WHERE tenant_id = $1 AND $2 = ANY(tax_codes)"
        " UNION ALL SELECT 'charge ' || charge_id FROM one_time_charges"
        " WHERE tenant_id = $1 AND invoice_id IS NULL AND $2 = ANY(tax_codes)"
        " ORDER BY 1 LIMIT 5", tenant_id, code,
    )
    return [r["what"] for r in rows]


async def delete(conn: Conn, tenant_id: str, code: str) -> TaxLabelRow:
    old = await get(conn, tenant_id, code, lock=True)
    using = await users(conn, tenant_id, code)
    if using:
        raise InUse(f"tax label {code!r} is used by {', '.join(using)}")
    await conn.execute("DELETE FROM tax_labels WHERE tenant_id = $1 AND code = $2",
                       tenant_id, code)
    return old
