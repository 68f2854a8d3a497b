"""Bill plans (``bill_plans``): the period, payment terms, fees and taxes an account bills with.

Fees are minor units of the plan's currency, which is fixed at creation (a changed currency
would silently change what every stored amount means). A plan stays while anything still
bills with it: accounts on it, accounts that were on it (their open periods are billed from
the plan history) and discounts that target it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Literal, get_args

import asyncpg

from billing.catalog.lookups import (
    Conn,
    check_currency,
    check_minor,
    check_tax_codes,
    with_changes,
)
from billing.errors import AlreadyExists, BillingNotFound, InUse, InvalidBillingInput

__all__ = ["PERIODS", "BillPlan", "Period", "PlanSpec", "create", "delete", "get", "page", "update"]

Period = Literal["weekly", "monthly", "quarterly", "yearly"]
PERIODS: Final = get_args(Period)
PLAN_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
FEES: Final = ("plan_fee", "per_extension_fee", "per_seat_fee", "minimum_spend",
                "cancellation_fee")
MAX_TERM_DAYS: Final = 3650
# What shapes the bill cycle of the accounts on a plan, and when their fees are billed (a
# switch from advance to arrears would bill a period twice): fixed while accounts are on it.
LOCKED_FIELDS: Final = ("period", "anchor_month", "fees_in_advance", "usage_in_arrears")


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """What a bill plan says; amounts in minor units of its currency."""

    name: str = ""
    period: Period = "monthly"
    anchor_month: int = 1
    payment_terms_days: int = 14
    fees_in_advance: bool = False
    usage_in_arrears: bool = True
    rate_plan_id: str | None = None
    plan_fee: int = 0
    per_extension_fee: int = 0
    per_seat_fee: int = 0
    minimum_spend: int = 0
    invoice_when_empty: bool = False
    tax_codes: tuple[str, ...] = field(default_factory=tuple)
    payment_text: str = ""
    # Terminating an account (its ladder's last step) before ``minimum_term_days`` since it
    # enrolled charges ``cancellation_fee`` on its final invoice.
    minimum_term_days: int = 0
    cancellation_fee: int = 0


SPEC_FIELDS: Final = tuple(f.name for f in fields(PlanSpec))


@dataclass(frozen=True, slots=True)
class BillPlan:
    plan_id: str
    currency: str
    spec: PlanSpec
    accounts: int  # billing accounts on the plan now
    created_at: datetime


def validate(spec: PlanSpec) -> PlanSpec:
    """The rules a plan's own fields must satisfy (references are checked against the DB)."""
    if spec.period not in PERIODS:
        raise InvalidBillingInput(f"period must be one of {', '.join(PERIODS)}")
    if not 1 <= spec.anchor_month <= 12:
        raise InvalidBillingInput("anchor_month must be between 1 and 12")
    if not 0 <= spec.payment_terms_days <= 365:
        raise InvalidBillingInput("payment_terms_days must be between 0 and 365")
    term = spec.minimum_term_days
    if not isinstance(term, int) or isinstance(term, bool) or not 0 <= term <= MAX_TERM_DAYS:
        raise InvalidBillingInput(f"minimum_term_days must be between 0 and {MAX_TERM_DAYS}")
    for name in FEES:
        check_minor(getattr(spec, name), name)
    return spec


_SELECT: Final = (
    "SELECT p.*, (SELECT count(*) FROM billing_accounts ba WHERE ba.tenant_id = p.tenant_id"
    " AND ba.plan_id = p.plan_id) AS accounts FROM bill_plans p"
)


def _plan(r: asyncpg.Record) -> BillPlan:
    values: dict[str, Any] = {name: r[name] for name in SPEC_FIELDS}
    values["tax_codes"] = tuple(r["tax_codes"])
    return BillPlan(r["plan_id"], r["currency"].strip(), PlanSpec(**values), r["accounts"],
                    r["created_at"])


async def _check_references(conn: Conn, tenant_id: str, currency: str, spec: PlanSpec) -> None:
    await check_tax_codes(conn, tenant_id, spec.tax_codes)
    if spec.rate_plan_id is None:
        return
    cur = await conn.fetchval(
        "SELECT currency FROM rate_plans WHERE tenant_id = $1 AND plan_id = $2",
        tenant_id, spec.rate_plan_id,
    )
    if cur is None:
        raise InvalidBillingInput(f"rate plan {spec.rate_plan_id!r} does not exist")
    if cur.strip() != currency:
        raise InvalidBillingInput(
            f"rate plan {spec.rate_plan_id!r} is in {cur.strip()}, the bill plan in {currency}"
        )


async def get(conn: Conn, tenant_id: str, plan_id: str, *, lock: bool = False) -> BillPlan:
    r = await conn.fetchrow(
        _SELECT + " WHERE p.tenant_id = $1 AND p.plan_id = $2" + (" FOR UPDATE OF p" if lock
                                                                  else ""),
        tenant_id, plan_id,
    )
    if r is None:
        raise BillingNotFound("bill plan", plan_id)
    return _plan(r)


async def page(conn: Conn, tenant_id: str, after: str | None, limit: int) -> list[BillPlan]:
    """Plans by id, those after ``after``."""
    rows = await conn.fetch(
        _SELECT + " WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.plan_id > $2)"
        " ORDER BY p.plan_id LIMIT $3", tenant_id, after, limit,
    )
    return [_plan(r) for r in rows]


async def create(
    conn: Conn, tenant_id: str, plan_id: str, currency: str, spec: PlanSpec
) -> BillPlan:
    if not PLAN_ID.match(plan_id):
        raise InvalidBillingInput("plan_id must be 1-64 letters, digits or . _ : -")
    check_currency(currency)
    validate(spec)
    await _check_references(conn, tenant_id, currency, spec)
    marks = ", ".join(f"${i}" for i in range(4, 4 + len(SPEC_FIELDS)))
    done = await conn.fetchval(
        f"INSERT INTO bill_plans (tenant_id, plan_id, currency, {', '.join(SPEC_FIELDS)})"
        f" VALUES ($1, $2, $3, {marks}) ON CONFLICT DO NOTHING RETURNING 1",
        tenant_id, plan_id, currency, *_values(spec),
    )
    if done is None:
        raise AlreadyExists("bill plan", plan_id)
    return await get(conn, tenant_id, plan_id)


def _values(spec: PlanSpec) -> list[Any]:
    return [list(spec.tax_codes) if n == "tax_codes" else getattr(spec, n) for n in SPEC_FIELDS]


async def update(
    conn: Conn, tenant_id: str, plan_id: str, changes: Mapping[str, Any]
) -> tuple[BillPlan, BillPlan]:
    """Apply ``changes`` (PATCH: only the fields named); -> (before, after). Fee changes
    apply from the next invoice; the cycle (period, anchor month) is fixed while accounts
    are on the plan."""
    old = await get(conn, tenant_id, plan_id, lock=True)
    spec = validate(with_changes(old.spec, changes, SPEC_FIELDS))
    moved = [n for n in LOCKED_FIELDS if getattr(spec, n) != getattr(old.spec, n)]
    if moved and old.accounts:
        raise InUse(f"{old.accounts} account(s) bill on plan {plan_id!r}: its"
                    f" {' and '.join(moved)} cannot change (move them to another plan)")
    await _check_references(conn, tenant_id, old.currency, spec)
    if spec != old.spec:
        sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(SPEC_FIELDS, start=3))
        await conn.execute(
            f"UPDATE bill_plans SET {sets} WHERE tenant_id = $1 AND plan_id = $2",
            tenant_id, plan_id, *_values(spec),
        )
    return old, await get(conn, tenant_id, plan_id)


async def delete(conn: Conn, tenant_id: str, plan_id: str) -> BillPlan:
    """Delete a plan nothing bills with; -> what it was."""
    old = await get(conn, tenant_id, plan_id, lock=True)
    if old.accounts:
        raise InUse(f"{old.accounts} account(s) bill on plan {plan_id!r}")
    if await conn.fetchval(
        "SELECT 1 FROM account_plan_history WHERE tenant_id = $1 AND plan_id = $2 LIMIT 1",
        tenant_id, plan_id,
    ):
        raise InUse(f"accounts were billed on plan {plan_id!r}: their history keeps it")
    if await conn.fetchval(
        "SELECT 1 FROM discounts WHERE tenant_id = $1 AND plan_id = $2 LIMIT 1",
        tenant_id, plan_id,
    ):
        raise InUse(f"discounts apply to plan {plan_id!r}: delete them first")
    await conn.execute("DELETE FROM bill_plans WHERE tenant_id = $1 AND plan_id = $2",
                       tenant_id, plan_id)
    return old
