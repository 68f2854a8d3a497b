"""One-time charges (``one_time_charges``): a setup, equipment or manual amount added to an
account's next invoice, the one of the period containing ``charge_on``.

The amount is minor units of the account's currency per unit of ``quantity``. Once an invoice
took a charge (``invoice_id``) it is part of a document and can no longer be deleted. Adding
under an idempotency key is done once: the charge id is derived from the key, so a retry finds
the first charge (and a different request under the same key is refused).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, get_args

import asyncpg

from billing.catalog.lookups import Conn, account, check_minor, check_tax_codes
from billing.errors import (
    AlreadyBilled,
    BillingNotFound,
    IdempotencyKeyReused,
    InvalidBillingInput,
)

__all__ = ["KINDS", "Charge", "ChargeKind", "ChargeSpec", "add", "delete", "get", "page"]

ChargeKind = Literal["setup", "equipment", "manual", "late_fee", "cancellation"]
KINDS: Final = get_args(ChargeKind)
MAX_QUANTITY: Final = Decimal("999999999.999")  # numeric(12, 3)
MAX_DESCRIPTION: Final = 200


@dataclass(frozen=True, slots=True)
class ChargeSpec:
    description: str
    amount: int  # minor units, per unit of quantity
    kind: ChargeKind = "manual"
    quantity: Decimal = Decimal(1)
    tax_codes: tuple[str, ...] | None = None  # None: the account's (or its plan's)
    charge_on: date | None = None  # None: the tenant's today


@dataclass(frozen=True, slots=True)
class Charge:
    charge_id: str
    account_id: str
    currency: str  # the account's
    spec: ChargeSpec  # charge_on always set
    invoice_id: str | None
    created_at: datetime
    created_by: str | None


def charge_id_for(idempotency_key: str | None) -> str:
    """A new random id, or the one id an idempotency key stands for (in its tenant)."""
    if idempotency_key is None:
        return "chg_" + secrets.token_hex(12)
    return "chg_k" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def validate(spec: ChargeSpec) -> ChargeSpec:
    if spec.kind not in KINDS:
        raise InvalidBillingInput(f"kind must be one of {', '.join(KINDS)}")
    if not spec.description.strip() or len(spec.description) > MAX_DESCRIPTION:
        raise InvalidBillingInput(f"description must be 1-{MAX_DESCRIPTION} characters")
    check_minor(spec.amount, "amount", positive=True)
    try:
        q = Decimal(spec.quantity)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidBillingInput("quantity must be a decimal such as \"2\" or \"1.5\"") from None
    if not q.is_finite() or q <= 0 or q > MAX_QUANTITY:
        raise InvalidBillingInput(f"quantity must be above 0 and at most {MAX_QUANTITY}")
    if q != q.quantize(Decimal("0.001")):
        raise InvalidBillingInput("quantity has at most 3 decimals")
    return ChargeSpec(spec.description, spec.amount, spec.kind, q, spec.tax_codes,
                      spec.charge_on)


_SELECT: Final = (
    "SELECT c.*, a.currency FROM one_time_charges c JOIN accounts a"
    " ON a.tenant_id = c.tenant_id AND a.account_id = c.account_id"
)


def _charge(r: asyncpg.Record) -> Charge:
    return Charge(
        r["charge_id"], r["account_id"], r["currency"].strip(),
        ChargeSpec(r["description"], r["amount"], r["kind"], Decimal(r["quantity"]),
                   tuple(r["tax_codes"]) if r["tax_codes"] is not None else None,
                   r["charge_on"]),
        r["invoice_id"], r["created_at"], r["created_by"],
    )


async def get(conn: Conn, tenant_id: str, account_id: str, charge_id: str, *,
              lock: bool = False) -> Charge:
    r = await conn.fetchrow(
        _SELECT + " WHERE c.tenant_id = $1 AND c.account_id = $2 AND c.charge_id = $3"
        + (" FOR UPDATE OF c" if lock else ""), tenant_id, account_id, charge_id,
    )
    if r is None:
        raise BillingNotFound("charge", charge_id)
    return _charge(r)


async def page(
    conn: Conn, tenant_id: str, account_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[Charge]:
    """The account's charges, oldest first (billed ones carry their invoice id)."""
    await account(conn, tenant_id, account_id)
    rows = await conn.fetch(
        _SELECT + " WHERE c.tenant_id = $1 AND c.account_id = $2"
        " AND ($3::timestamptz IS NULL OR (c.created_at, c.charge_id) > ($3, $4))"
        " ORDER BY c.created_at, c.charge_id LIMIT $5",
        tenant_id, account_id, after[0] if after else None, after[1] if after else None, limit,
    )
    return [_charge(r) for r in rows]


def _same_request(found: Charge, account_id: str, spec: ChargeSpec) -> bool:
    s = found.spec
    return (found.account_id, s.kind, s.description, s.amount, s.quantity, s.tax_codes) == (
        account_id, spec.kind, spec.description, spec.amount, spec.quantity, spec.tax_codes
    ) and spec.charge_on in (None, s.charge_on)


async def add(
    conn: Conn, tenant_id: str, account_id: str, spec: ChargeSpec, *, today: date,
    created_by: str | None = None, idempotency_key: str | None = None,
) -> tuple[Charge, bool]:
    """Add a charge; -> (the charge, whether it is new). Under an idempotency key a repeat
    of the same request returns the first charge."""
    spec = validate(spec)
    acc = await account(conn, tenant_id, account_id)
    if acc.status == "closed":
        raise InvalidBillingInput(f"account {account_id!r} is closed")
    await check_tax_codes(conn, tenant_id, spec.tax_codes)
    charge_id = charge_id_for(idempotency_key)
    done = await conn.fetchval(
        "INSERT INTO one_time_charges (tenant_id, charge_id, account_id, kind, description,"
        " amount, quantity, tax_codes, charge_on, created_by) VALUES ($1, $2, $3, $4, $5, $6,"
        " $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING 1",
        tenant_id, charge_id, account_id, spec.kind, spec.description, spec.amount,
        spec.quantity, list(spec.tax_codes) if spec.tax_codes is not None else None,
        spec.charge_on or today, created_by,
    )
    if done is not None:
        return await get(conn, tenant_id, account_id, charge_id), True
    r = await conn.fetchrow(_SELECT + " WHERE c.tenant_id = $1 AND c.charge_id = $2",
                            tenant_id, charge_id)
    if r is None or idempotency_key is None:  # deleted meanwhile, or a random id taken
        raise IdempotencyKeyReused()
    found = _charge(r)
    if not _same_request(found, account_id, spec):
        raise IdempotencyKeyReused()
    return found, False


async def delete(conn: Conn, tenant_id: str, account_id: str, charge_id: str) -> Charge:
    """Delete a charge no invoice took yet; -> what it was."""
    old = await get(conn, tenant_id, account_id, charge_id, lock=True)
    if old.invoice_id is not None:
        raise AlreadyBilled(f"charge {charge_id} is on invoice {old.invoice_id}")
    await conn.execute(
        "DELETE FROM one_time_charges WHERE tenant_id = $1 AND charge_id = $2",
        tenant_id, charge_id,
    )
    return old
