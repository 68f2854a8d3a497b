"""DIDs (``dids``): numbers an account rents, with a setup fee and a monthly fee (minor units
of the tenant's currency) and an inbound per-minute rate (engine micros, like rates).

One row is one assignment: ``assigned_on`` to ``released_on`` (exclusive), billed by the days
each invoice period overlaps it. A released number can go to another account once the old
account's invoices have covered its release (its open period starts on or after it), so no
day of the old assignment is left unbilled; a number that was never assigned can be deleted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

import asyncpg

from billing.catalog.lookups import Conn, account, check_minor, tenant, with_changes
from billing.errors import (
    AlreadyBilled,
    AlreadyExists,
    BillingNotFound,
    DidStateError,
    InUse,
    InvalidBillingInput,
)

__all__ = [
    "Did", "DidSpec", "DidState", "assign", "create", "delete", "get", "page", "release", "update",
]

DidState = Literal["free", "assigned", "released"]
NUMBER: Final = re.compile(r"^[0-9]{3,15}$")
MAX_MICROS: Final = 10**15  # the engine's MAX_AMOUNT


@dataclass(frozen=True, slots=True)
class DidSpec:
    description: str = ""
    setup_fee: int = 0  # minor units
    monthly_fee: int = 0  # minor units
    inbound_per_minute: int = 0  # micros


SPEC_FIELDS: Final = ("description", "setup_fee", "monthly_fee", "inbound_per_minute")


@dataclass(frozen=True, slots=True)
class Did:
    number: str
    spec: DidSpec
    account_id: str | None
    assigned_on: date | None
    released_on: date | None
    setup_invoice: str | None

    @property
    def assigned(self) -> bool:
        """Held by an account now (assigned and not released)."""
        return self.account_id is not None and self.released_on is None

    @property
    def state(self) -> DidState:
        if self.account_id is None:
            return "free"
        return "assigned" if self.released_on is None else "released"


def validate(spec: DidSpec) -> DidSpec:
    check_minor(spec.setup_fee, "setup_fee")
    check_minor(spec.monthly_fee, "monthly_fee")
    check_minor(spec.inbound_per_minute, "inbound_per_minute", limit=MAX_MICROS + 1)
    return spec


def _did(r: asyncpg.Record) -> Did:
    return Did(
        r["number"], DidSpec(r["description"], r["setup_fee"], r["monthly_fee"],
                             r["inbound_per_minute"]),
        r["account_id"], r["assigned_on"], r["released_on"], r["setup_invoice"],
    )


async def get(conn: Conn, tenant_id: str, number: str, *, lock: bool = False) -> Did:
    r = await conn.fetchrow(
        "SELECT * FROM dids WHERE tenant_id = $1 AND number = $2"
        + (" FOR UPDATE" if lock else ""), tenant_id, number,
    )
    if r is None:
        raise BillingNotFound("DID", number)
    return _did(r)


async def page(
    conn: Conn, tenant_id: str, after: str | None, limit: int, *, account_id: str | None = None
) -> list[Did]:
    """DIDs by number, optionally only those of one account (held now or released)."""
    rows = await conn.fetch(
        "SELECT * FROM dids WHERE tenant_id = $1 AND ($2::text IS NULL OR number > $2)"
        " AND ($3::text IS NULL OR account_id = $3) ORDER BY number LIMIT $4",
        tenant_id, after, account_id, limit,
    )
    return [_did(r) for r in rows]


async def create(conn: Conn, tenant_id: str, number: str, spec: DidSpec) -> Did:
    if not NUMBER.match(number):
        raise InvalidBillingInput("a DID number is 3-15 digits")
    validate(spec)
    done = await conn.fetchval(
        "INSERT INTO dids (tenant_id, number, description, setup_fee, monthly_fee,"
        " inbound_per_minute) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
        " RETURNING 1",
        tenant_id, number, spec.description, spec.setup_fee, spec.monthly_fee,
        spec.inbound_per_minute,
    )
    if done is None:
        raise AlreadyExists("DID", number)
    return await get(conn, tenant_id, number)


async def update(
    conn: Conn, tenant_id: str, number: str, changes: Mapping[str, Any]
) -> tuple[Did, Did]:
    """PATCH the description or prices (from the next invoice on); -> (before, after)."""
    old = await get(conn, tenant_id, number, lock=True)
    spec = validate(with_changes(old.spec, changes, SPEC_FIELDS))
    if spec.setup_fee != old.spec.setup_fee and old.setup_invoice is not None:
        raise AlreadyBilled(f"DID {number}'s setup fee is on invoice {old.setup_invoice}")
    if old.account_id is not None and spec != old.spec:
        await _same_currency(conn, tenant_id, old.account_id, spec)
    await conn.execute(
        "UPDATE dids SET description = $3, setup_fee = $4, monthly_fee = $5,"
        " inbound_per_minute = $6 WHERE tenant_id = $1 AND number = $2",
        tenant_id, number, spec.description, spec.setup_fee, spec.monthly_fee,
        spec.inbound_per_minute,
    )
    return old, await get(conn, tenant_id, number)


async def _same_currency(conn: Conn, tenant_id: str, account_id: str, spec: DidSpec) -> None:
    """DID prices are in the tenant's currency: a priced DID only for accounts billed in it."""
    if not (spec.setup_fee or spec.monthly_fee or spec.inbound_per_minute):
        return
    acc = await account(conn, tenant_id, account_id, referenced=True)
    cur = (await tenant(conn, tenant_id)).currency
    if acc.currency != cur:
        raise InvalidBillingInput(
            f"DID prices are in {cur}; account {account_id!r} is billed in {acc.currency}"
        )


async def _open_start(conn: Conn, tenant_id: str, account_id: str) -> date | None:
    """The first day the account's invoices have not covered yet (None: not billed)."""
    found: date | None = await conn.fetchval(
        "SELECT open_start_date FROM billing_accounts WHERE tenant_id = $1 AND account_id = $2",
        tenant_id, account_id,
    )
    return found


async def assign(
    conn: Conn, tenant_id: str, number: str, account_id: str, on: date
) -> tuple[Did, Did]:
    """Give the DID to ``account_id`` from ``on``; -> (before, after). A new assignment pays
    the setup fee again."""
    old = await get(conn, tenant_id, number, lock=True)
    acc = await account(conn, tenant_id, account_id, referenced=True)
    if acc.status == "closed":
        raise InvalidBillingInput(f"account {account_id!r} is closed")
    if old.assigned:
        raise DidStateError(f"DID {number} is assigned to account {old.account_id!r};"
                            " release it first")
    await _same_currency(conn, tenant_id, account_id, old.spec)
    if old.account_id is not None and old.released_on is not None:
        if on < old.released_on:
            raise InvalidBillingInput(
                f"DID {number} was released on {old.released_on}: assign it from then on"
            )
        billed_to = await _open_start(conn, tenant_id, old.account_id)
        if billed_to is not None and billed_to < old.released_on:
            raise DidStateError(
                f"DID {number} stays with account {old.account_id!r} until its invoice"
                f" covering {old.released_on} is made"
            )
    await conn.execute(
        "UPDATE dids SET account_id = $3, assigned_on = $4, released_on = NULL,"
        " setup_invoice = NULL WHERE tenant_id = $1 AND number = $2",
        tenant_id, number, account_id, on,
    )
    return old, await get(conn, tenant_id, number)


async def release(conn: Conn, tenant_id: str, number: str, on: date) -> tuple[Did, Did]:
    """End the assignment on ``on`` (exclusive: the account pays up to the day before)."""
    old = await get(conn, tenant_id, number, lock=True)
    if not old.assigned or old.account_id is None or old.assigned_on is None:
        raise DidStateError(f"DID {number} is not assigned")
    if on < old.assigned_on:
        raise InvalidBillingInput(
            f"DID {number} was assigned on {old.assigned_on}: release it on or after that"
        )
    billed_to = await _open_start(conn, tenant_id, old.account_id)
    if billed_to is not None and on < billed_to and old.spec.monthly_fee:
        raise AlreadyBilled(
            f"account {old.account_id!r} is invoiced up to {billed_to}: release DID {number}"
            " on or after that"
        )
    await conn.execute(
        "UPDATE dids SET released_on = $3 WHERE tenant_id = $1 AND number = $2",
        tenant_id, number, on,
    )
    return old, await get(conn, tenant_id, number)


async def delete(conn: Conn, tenant_id: str, number: str) -> Did:
    old = await get(conn, tenant_id, number, lock=True)
    if old.assigned_on is not None:
        raise InUse(f"DID {number} was assigned: it stays for the invoices that bill it")
    await conn.execute("DELETE FROM dids WHERE tenant_id = $1 AND number = $2",
                       tenant_id, number)
    return old
