"""Discounts (``discounts``): a percent or a fixed amount off usage, recurring fees or the whole
invoice, for one account or for every account on a bill plan, optionally within dates.

A fixed value is minor units of the target's currency (the account's, or the plan's); the
target is fixed at creation, so the currency a stored value means never changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final, Literal, get_args

import asyncpg

from billing.catalog.lookups import Conn, account, check_minor, percent, with_changes
from billing.discounts import Discount, DiscountKind, DiscountScope
from billing.errors import AlreadyExists, BillingNotFound, InvalidBillingInput

__all__ = [
    "DiscountRow", "DiscountSpec", "Kind", "Scope", "create", "delete", "get", "page", "update",
]

DISCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_FIXED: Final = 10**14  # numeric(18, 4) holds 14 whole digits
MAX_ORD: Final = 1_000_000
Kind = Literal["percent", "fixed"]
Scope = Literal["usage", "recurring", "invoice"]
KINDS: Final = get_args(Kind)
SCOPES: Final = get_args(Scope)


@dataclass(frozen=True, slots=True)
class DiscountSpec:
    """``value``: a Decimal percent for ``percent``, int minor units for ``fixed``."""

    name: str
    kind: Kind
    value: Decimal | int
    scope: Scope
    starts_on: date | None = None
    ends_on: date | None = None  # exclusive
    ord: int = 0


SPEC_FIELDS: Final = ("name", "kind", "value", "scope", "starts_on", "ends_on", "ord")


@dataclass(frozen=True, slots=True)
class DiscountRow:
    discount_id: str
    account_id: str | None
    plan_id: str | None
    currency: str  # of a fixed value: the target's
    spec: DiscountSpec


def validate(discount_id: str, spec: DiscountSpec) -> DiscountSpec:
    """The invoice composer's own rules (``billing.discounts.Discount``), with clear words."""
    if not DISCOUNT_ID.match(discount_id):
        raise InvalidBillingInput("a discount id is 1-64 letters, digits or . _ -")
    if not spec.name.strip():
        raise InvalidBillingInput("a discount needs a name")
    if spec.kind not in KINDS:
        raise InvalidBillingInput(f"kind must be one of {', '.join(KINDS)}")
    if spec.scope not in SCOPES:
        raise InvalidBillingInput(f"scope must be one of {', '.join(SCOPES)}")
    if not -MAX_ORD <= spec.ord <= MAX_ORD:
        raise InvalidBillingInput(f"ord must be between {-MAX_ORD} and {MAX_ORD}")
    value: Decimal | int
    if spec.kind == DiscountKind.PERCENT.value:
        if not isinstance(spec.value, Decimal):
            raise InvalidBillingInput("a percent discount's value is a percent such as \"10\"")
        value = percent(spec.value, "value")
    else:
        if isinstance(spec.value, Decimal):
            raise InvalidBillingInput("a fixed discount's value is an amount such as \"5.00\"")
        value = check_minor(spec.value, "value", limit=MAX_FIXED)
    if spec.starts_on and spec.ends_on and spec.ends_on <= spec.starts_on:
        raise InvalidBillingInput("ends_on must be after starts_on")
    try:
        Discount(discount_id, spec.name, DiscountKind(spec.kind), value,
                 DiscountScope(spec.scope), spec.starts_on, spec.ends_on)
    except (TypeError, ValueError) as exc:
        raise InvalidBillingInput(str(exc)) from None
    return DiscountSpec(spec.name, spec.kind, value, spec.scope, spec.starts_on, spec.ends_on,
                        spec.ord)


_SELECT: Final = (
    "SELECT d.*, coalesce(p.currency, a.currency) AS currency FROM discounts d"
    " LEFT JOIN bill_plans p ON p.tenant_id = d.tenant_id AND p.plan_id = d.plan_id"
    " LEFT JOIN accounts a ON a.tenant_id = d.tenant_id AND a.account_id = d.account_id"
)


def _row(r: asyncpg.Record) -> DiscountRow:
    raw = Decimal(r["value"])
    value: Decimal | int = raw if r["kind"] == DiscountKind.PERCENT.value else int(raw)
    return DiscountRow(
        r["discount_id"], r["account_id"], r["plan_id"], (r["currency"] or "").strip(),
        DiscountSpec(r["name"], r["kind"], value, r["scope"], r["starts_on"], r["ends_on"],
                     r["ord"]),
    )


async def get(conn: Conn, tenant_id: str, discount_id: str, *, lock: bool = False
              ) -> DiscountRow:
    r = await conn.fetchrow(
        _SELECT + " WHERE d.tenant_id = $1 AND d.discount_id = $2"
        + (" FOR UPDATE OF d" if lock else ""), tenant_id, discount_id,
    )
    if r is None:
        raise BillingNotFound("discount", discount_id)
    return _row(r)


async def page(
    conn: Conn, tenant_id: str, after: tuple[int, str] | None, limit: int, *,
    account_id: str | None = None, plan_id: str | None = None,
) -> list[DiscountRow]:
    """Discounts in application order (``ord``, then id), optionally of one target."""
    rows = await conn.fetch(
        _SELECT + " WHERE d.tenant_id = $1"
        " AND ($2::int IS NULL OR (d.ord, d.discount_id) > ($2, $3))"
        " AND ($4::text IS NULL OR d.account_id = $4) AND ($5::text IS NULL OR d.plan_id = $5)"
        " ORDER BY d.ord, d.discount_id LIMIT $6",
        tenant_id, after[0] if after else None, after[1] if after else None, account_id,
        plan_id, limit,
    )
    return [_row(r) for r in rows]


async def target_currency(
    conn: Conn, tenant_id: str, account_id: str | None, plan_id: str | None
) -> str:
    """The currency of the discount's one target, which must exist in the tenant."""
    if (account_id is None) == (plan_id is None):
        raise InvalidBillingInput("a discount applies to exactly one of account_id, plan_id")
    if account_id is not None:
        return (await account(conn, tenant_id, account_id, referenced=True)).currency
    cur = await conn.fetchval(
        "SELECT currency FROM bill_plans WHERE tenant_id = $1 AND plan_id = $2",
        tenant_id, plan_id,
    )
    if cur is None:
        raise InvalidBillingInput(f"bill plan {plan_id!r} does not exist")
    return str(cur).strip()


async def create(
    conn: Conn, tenant_id: str, discount_id: str, spec: DiscountSpec, *,
    account_id: str | None = None, plan_id: str | None = None,
) -> DiscountRow:
    await target_currency(conn, tenant_id, account_id, plan_id)
    spec = validate(discount_id, spec)
    done = await conn.fetchval(
        "INSERT INTO discounts (tenant_id, discount_id, name, kind, value, scope, account_id,"
        " plan_id, starts_on, ends_on, ord) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
        " $11) ON CONFLICT DO NOTHING RETURNING 1",
        tenant_id, discount_id, spec.name, spec.kind, Decimal(spec.value), spec.scope,
        account_id, plan_id, spec.starts_on, spec.ends_on, spec.ord,
    )
    if done is None:
        raise AlreadyExists("discount", discount_id)
    return await get(conn, tenant_id, discount_id)


async def update(
    conn: Conn, tenant_id: str, discount_id: str, changes: Mapping[str, Any]
) -> tuple[DiscountRow, DiscountRow]:
    """PATCH a discount (its target stays); -> (before, after). Invoices made keep theirs."""
    old = await get(conn, tenant_id, discount_id, lock=True)
    spec = validate(discount_id, with_changes(old.spec, changes, SPEC_FIELDS))
    await conn.execute(
        "UPDATE discounts SET name = $3, kind = $4, value = $5, scope = $6, starts_on = $7,"
        " ends_on = $8, ord = $9 WHERE tenant_id = $1 AND discount_id = $2",
        tenant_id, discount_id, spec.name, spec.kind, Decimal(spec.value), spec.scope,
        spec.starts_on, spec.ends_on, spec.ord,
    )
    return old, await get(conn, tenant_id, discount_id)


async def delete(conn: Conn, tenant_id: str, discount_id: str) -> DiscountRow:
    old = await get(conn, tenant_id, discount_id, lock=True)
    await conn.execute("DELETE FROM discounts WHERE tenant_id = $1 AND discount_id = $2",
                       tenant_id, discount_id)
    return old
