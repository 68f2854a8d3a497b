"""Payments (Postgres adapter): recorded exactly once, allocated to open invoices, undone whole.

A payment is recorded under its Idempotency-Key: a repeat with the same body returns the first
payment, another body is refused. It is allocated in the same transaction (``billing.allocation``
decides where), with the account's billing row locked so that two payments of one account never
allocate the same open amount; what it does not settle goes to the account's credit, which the
next invoices consume. A reversal (a bounced cheque) or a refund marks its allocations reversed,
reopens their invoices and takes back the credit it gave; credit already spent by an invoice is
recorded as the payment's shortfall. Every change is one transaction with its webhook event.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import asyncpg

from billing import events
from billing.allocation import AllocationError, OpenInvoice, allocate
from billing.catalog.lookups import Conn, account, check_minor
from billing.errors import (
    BillingConflict,
    BillingNotFound,
    IdempotencyKeyReused,
    InvalidBillingInput,
)
from billing.minor_units import exponent, minor_to_micros
from billing.validity_run import validity_of
from billing.webhooks.outbox import enqueue
from charging_engine.accounts.money import MoneyOperations, Operation
from charging_engine.audit import Actor

__all__ = ["METHODS", "Payment", "PaymentIn", "PaymentUndone", "get", "page", "record", "restate",
           "undo"]

METHODS: Final = ("cash", "cheque", "card", "bank_transfer", "online", "direct_debit")
TOPUP_METHODS: Final = ("cash", "cheque", "card", "bank_transfer", "online")  # the engine's
MAX_REFERENCE: Final = 200



class PaymentUndone(BillingConflict):
    reason = "payment_undone"


@dataclass(frozen=True, slots=True)
class PaymentIn:
    account_id: str
    method: str
    amount: int  # minor units of ``currency``
    currency: str
    received_on: date
    reference: str = ""
    collected_by: str = ""
    allocations: tuple[tuple[str, int], ...] | None = None  # None: oldest due first


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    account_id: str
    method: str
    amount: int
    currency: str
    received_on: date
    reference: str
    collected_by: str
    credited: int
    status: str
    allocations: tuple[tuple[str, int, bool], ...]  # (invoice id, amount, live)
    shortfall: int
    undo_reason: str | None
    created_at: datetime
    topup_key: str | None = None  # a prepaid account's payment: the balance top-up's key


def payment_id_for(tenant_id: str, idempotency_key: str) -> str:
    """The one id an idempotency key stands for in its tenant."""
    digest = hashlib.sha256(f"{tenant_id}\0{idempotency_key}".encode()).hexdigest()
    return "pay_" + digest[:32]


def _request_hash(p: PaymentIn) -> str:
    body = [p.account_id, p.method, p.amount, p.currency, p.received_on.isoformat(),
            p.reference, [list(a) for a in p.allocations] if p.allocations is not None
            else None]  # fmt: skip
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def _validate(p: PaymentIn) -> None:
    if p.method not in METHODS:
        raise InvalidBillingInput(f"method must be one of {', '.join(METHODS)}")
    check_minor(p.amount, "amount", positive=True)
    if len(p.reference) > MAX_REFERENCE:
        raise InvalidBillingInput(f"reference has at most {MAX_REFERENCE} characters")
    if p.allocations is not None:
        if not p.allocations:
            raise InvalidBillingInput("allocations, when given, name at least one invoice")
        for _, part in p.allocations:
            check_minor(part, "an allocation amount", positive=True)


async def record(conn: Conn, tenant_id: str, p: PaymentIn, *, idempotency_key: str,
                 at: datetime, money: MoneyOperations | None = None,
                 ) -> tuple[Payment, bool]:  # fmt: skip
    """Record and allocate ``p`` (call inside a transaction); -> (payment, whether new).

    An account without billing (prepaid) has nothing to allocate to: the payment tops its
    balance up through ``money`` (the engine's use case; its receipt follows as for any
    top-up)."""
    _validate(p)
    payment_id = payment_id_for(tenant_id, idempotency_key)
    digest = _request_hash(p)
    acc = await account(conn, tenant_id, p.account_id)
    if p.currency != acc.currency:
        raise InvalidBillingInput(f"account {p.account_id!r} is billed in {acc.currency}, "
                                  f"not {p.currency}")  # fmt: skip
    locked = await conn.fetchval(
        "SELECT 1 FROM billing_accounts WHERE tenant_id = $1 AND account_id = $2 FOR UPDATE",
        tenant_id, p.account_id,
    )
    if locked is None:
        return await _topup(conn, tenant_id, p, payment_id, digest, idempotency_key, at, money)
    found = await conn.fetchval(
        "SELECT request_hash FROM payments WHERE tenant_id = $1 AND idem_key = $2",
        tenant_id, idempotency_key,
    )
    if found is not None:
        if found != digest:
            raise IdempotencyKeyReused()
        return await get(conn, tenant_id, payment_id), False
    rows = await conn.fetch(
        "SELECT invoice_id, due_on, issued_on, open FROM invoice_open WHERE tenant_id = $1"
        " AND account_id = $2 AND currency = $3 AND open > 0",
        tenant_id, p.account_id, p.currency,
    )
    try:
        owed = [OpenInvoice(r["invoice_id"], r["due_on"], r["issued_on"], r["open"])
                for r in rows]
        plan = allocate(p.amount, owed, p.allocations)
    except AllocationError as e:
        raise InvalidBillingInput(str(e)) from None
    await _insert(conn, (
        payment_id, tenant_id, p.account_id, p.method, p.amount, p.currency, p.received_on,
        p.reference, p.collected_by, idempotency_key, digest, plan.credit, at))
    if plan.lines:
        await conn.executemany(
            "INSERT INTO payment_allocations (tenant_id, payment_id, invoice_id, amount,"
            " created_at) VALUES ($1, $2, $3, $4, $5)",
            [(tenant_id, payment_id, inv, amount, at) for inv, amount in plan.lines],
        )
        await restate(conn, [inv for inv, _ in plan.lines], at)
    if plan.credit:
        await conn.execute(
            "UPDATE billing_accounts SET credit_balance = credit_balance + $3"
            " WHERE tenant_id = $1 AND account_id = $2", tenant_id, p.account_id, plan.credit,
        )
    payment = await get(conn, tenant_id, payment_id)
    await _emit(conn, tenant_id, "payment.recorded", payment, at)
    return payment, True


async def _topup(conn: Conn, tenant_id: str, p: PaymentIn, payment_id: str, digest: str,
                 idempotency_key: str, at: datetime, money: MoneyOperations | None,
                 ) -> tuple[Payment, bool]:  # fmt: skip
    """A prepaid account's payment: recorded, and its whole amount credited to the balance
    under the payment's own key (a retry of either never credits twice)."""
    kind = await conn.fetchval("SELECT kind FROM accounts WHERE tenant_id = $1"
                               " AND account_id = $2", tenant_id, p.account_id)  # fmt: skip
    if kind != "prepaid":
        raise InvalidBillingInput(f"account {p.account_id!r} has no billing (no bill plan)")
    if p.allocations is not None:
        raise InvalidBillingInput("a prepaid account has no invoices to allocate to")
    if money is None:
        raise InvalidBillingInput("prepaid payments need the engine's money operations")
    if p.method not in TOPUP_METHODS:
        raise InvalidBillingInput(f"a prepaid top-up is paid by {', '.join(TOPUP_METHODS)}")
    found = await conn.fetchval(
        "SELECT request_hash FROM payments WHERE tenant_id = $1 AND idem_key = $2",
        tenant_id, idempotency_key,
    )
    if found is not None and found != digest:
        raise IdempotencyKeyReused()
    key = f"pay:{payment_id}"
    if found is None:
        await _insert(conn, (
            payment_id, tenant_id, p.account_id, p.method, p.amount, p.currency,
            p.received_on, p.reference, p.collected_by, idempotency_key, digest, 0, at))
        await conn.execute("UPDATE payments SET topup_key = $2 WHERE payment_id = $1",
                           payment_id, key)  # fmt: skip
    op = Operation.topup(minor_to_micros(p.amount, p.currency), p.method, p.reference or None,
                         f"payment {payment_id}",
                         await validity_of(conn, tenant_id, at))  # fmt: skip
    await money.perform(Actor(p.collected_by or "billing", "finance"), tenant_id, p.account_id,
                        op, key)  # fmt: skip
    payment = await get(conn, tenant_id, payment_id)
    if found is None:
        await _emit(conn, tenant_id, "payment.recorded", payment, at)
    return payment, found is None


async def _insert(conn: Conn, values: tuple[Any, ...]) -> None:
    try:
        await conn.execute(
            "INSERT INTO payments (payment_id, tenant_id, account_id, method, amount, currency,"
            " received_on, reference, collected_by, idem_key, request_hash, credited,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            *values,
        )
    except asyncpg.UniqueViolationError:  # the key, on another account meanwhile
        raise IdempotencyKeyReused() from None


async def undo(conn: Conn, tenant_id: str, payment_id: str, *, refund: bool, reason: str,
               at: datetime) -> Payment:  # fmt: skip
    """Reverse (bounced) or refund a payment whole (call inside a transaction)."""
    if not reason.strip() or len(reason) > MAX_REFERENCE:
        raise InvalidBillingInput(f"reason must be 1-{MAX_REFERENCE} characters")
    r = await conn.fetchrow(
        "SELECT account_id FROM payments WHERE tenant_id = $1 AND payment_id = $2",
        tenant_id, payment_id,
    )
    if r is None:
        raise BillingNotFound("payment", payment_id)
    credit = await conn.fetchval(
        "SELECT credit_balance FROM billing_accounts WHERE tenant_id = $1 AND account_id = $2"
        " FOR UPDATE", tenant_id, r["account_id"],
    )
    p = await conn.fetchrow(
        "SELECT status, credited, topup_key FROM payments WHERE payment_id = $1 FOR UPDATE",
        payment_id)
    if p["status"] != "recorded":
        raise PaymentUndone(f"payment {payment_id} is already {p['status']}")
    if p["topup_key"] is not None:
        raise PaymentUndone(f"payment {payment_id} topped up a prepaid balance: take it back"
                            " with a withdrawal")  # fmt: skip
    invoices = await conn.fetch(
        "UPDATE payment_allocations SET reversed_at = $2 WHERE payment_id = $1"
        " AND reversed_at IS NULL RETURNING invoice_id", payment_id, at,
    )
    taken_back = min(credit, p["credited"])
    await conn.execute(
        "UPDATE billing_accounts SET credit_balance = credit_balance - $3"
        " WHERE tenant_id = $1 AND account_id = $2", tenant_id, r["account_id"], taken_back,
    )
    await conn.execute(
        "UPDATE payments SET status = $2, undone_at = $3, undo_reason = $4, shortfall = $5"
        " WHERE payment_id = $1", payment_id, "refunded" if refund else "reversed", at,
        reason, p["credited"] - taken_back,
    )
    await restate(conn, [x["invoice_id"] for x in invoices], at)
    payment = await get(conn, tenant_id, payment_id)
    await _emit(conn, tenant_id, "payment.refunded" if refund else "payment.reversed",
                payment, at)  # fmt: skip
    return payment


async def restate(conn: Conn, invoice_ids: list[str], at: datetime) -> None:
    """Invoice status from what it still owes: paid (nothing open, something paid), partially
    paid, or finalized (nothing paid; a fully credited invoice too); an invoice that became
    paid sends ``invoice.paid`` (once per invoice)."""
    paid = await conn.fetch(
        "UPDATE invoices i SET status = CASE WHEN o.open = 0 AND o.allocated > 0 THEN 'paid'"
        " WHEN o.allocated > 0 THEN 'partially_paid' ELSE 'finalized' END FROM invoice_open o"
        " WHERE o.invoice_id = i.invoice_id AND i.invoice_id = ANY($1::text[])"
        " AND i.kind = 'invoice' AND i.status <> 'void' RETURNING i.*",
        sorted(set(invoice_ids)),
    )
    for r in paid:
        if r["status"] == "paid":
            await events.emit(conn, "invoice.paid", r, at)


_SELECT: Final = (
    "SELECT p.*, COALESCE((SELECT array_agg(ARRAY[a.invoice_id, a.amount::text,"
    " (a.reversed_at IS NULL)::text] ORDER BY a.allocation_id) FROM payment_allocations a"
    " WHERE a.payment_id = p.payment_id), '{}') AS allocs FROM payments p"
)


def _payment(r: Any) -> Payment:
    allocs = tuple((a[0], int(a[1]), a[2] == "true") for a in r["allocs"])
    return Payment(
        r["payment_id"], r["account_id"], r["method"], r["amount"], r["currency"].strip(),
        r["received_on"], r["reference"], r["collected_by"], r["credited"], r["status"],
        allocs, r["shortfall"], r["undo_reason"], r["created_at"], r["topup_key"],
    )


async def get(conn: Conn, tenant_id: str, payment_id: str) -> Payment:
    r = await conn.fetchrow(_SELECT + " WHERE p.tenant_id = $1 AND p.payment_id = $2",
                            tenant_id, payment_id)  # fmt: skip
    if r is None:
        raise BillingNotFound("payment", payment_id)
    return _payment(r)


async def page(conn: Conn, tenant_id: str, account_id: str | None,
               after: tuple[datetime, str] | None, limit: int) -> list[Payment]:  # fmt: skip
    """Payments of the tenant (or one account), oldest first."""
    rows = await conn.fetch(
        _SELECT + " WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.account_id = $2)"
        " AND ($3::timestamptz IS NULL OR (p.created_at, p.payment_id) > ($3, $4))"
        " ORDER BY p.created_at, p.payment_id LIMIT $5",
        tenant_id, account_id, after[0] if after else None, after[1] if after else None, limit,
    )
    return [_payment(r) for r in rows]


def payment_data(p: Payment) -> dict[str, Any]:
    """The payment as accounting receives it (amounts in minor units with their exponent)."""
    return {
        "id": p.payment_id, "account_id": p.account_id, "method": p.method,
        "amount": p.amount, "currency": p.currency, "minor_unit_exponent": exponent(p.currency),
        "received_on": p.received_on.isoformat(), "reference": p.reference,
        "collected_by": p.collected_by, "status": p.status, "credited": p.credited,
        "shortfall": p.shortfall,
        "topped_up": p.topup_key is not None,
        "allocations": [{"invoice_id": inv, "amount": amount, "live": live}
                        for inv, amount, live in p.allocations],
    }  # fmt: skip


async def _emit(conn: Conn, tenant_id: str, event_type: str, p: Payment, at: datetime) -> None:
    await enqueue(conn, tenant_id, event_type, {"payment": payment_data(p)},
                  dedup_key=f"{event_type}:{p.payment_id}", at=at)  # fmt: skip
