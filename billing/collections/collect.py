"""A collection at the door (Postgres adapter): the payment recorded through the receivables
use case and the visit, once, however often the agent's phone retries.

The task row is locked first, so concurrent retries of one collection run one after another:
the first records the payment (``billing.payments.record``: allocated to open invoices, or a
prepaid top-up) and its visit under the Idempotency-Key; every later one finds the visit and
answers with the same payment. The receipt is ``collection.recorded`` in billing's event log,
written in the same transaction (the notifications package sends it to the subscriber's
numbers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime

from billing import payments
from billing.catalog.lookups import Conn, account
from billing.collections import agents, tasks
from billing.collections.rules import METHODS, Preset, check_visit
from billing.errors import IdempotencyKeyReused, InvalidBillingInput
from billing.payments import Payment, PaymentIn
from billing.webhooks.outbox import enqueue
from charging_engine.accounts.money import MoneyOperations

__all__ = ["Collected", "CollectionIn", "collect", "receipt_number"]


@dataclass(frozen=True, slots=True)
class CollectionIn:
    amount: int  # minor units of the account's currency
    method: str
    currency: str
    preset: Preset
    reference: str = ""
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Collected:
    visit_id: int
    task: tasks.Task
    payment: Payment
    receipt_number: str
    agent_name: str


def receipt_number(payment_id: str) -> str:
    """The receipt's number the customer reads: short, and the payment's own."""
    return "CR-" + payment_id.removeprefix("pay_")[:10].upper()


def _digest(c: CollectionIn) -> str:
    body = [c.amount, c.method, c.currency, c.preset.code, c.reference, c.comment]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


async def _agent_name(conn: Conn, tenant_id: str, agent_id: str | None) -> str:
    if agent_id is None:
        return str(await conn.fetchval("SELECT name FROM tenants WHERE tenant_id = $1",
                                       tenant_id) or tenant_id)  # fmt: skip
    return (await agents.get(conn, tenant_id, agent_id)).name


async def collect(conn: Conn, tenant_id: str, task_id: str, c: CollectionIn, *,
                  agent_id: str | None, by: str, idempotency_key: str, today: date,
                  at: datetime, money: MoneyOperations) -> tuple[Collected, bool]:  # fmt: skip
    """Record the collection (inside a transaction); -> (collection, whether new).

    ``agent_id``: the agent the caller acts as (its own tasks only), None for a supervisor."""
    task = await tasks.get(conn, tenant_id, task_id, agent_id, for_update=True)
    digest = _digest(c)
    seen = await conn.fetchrow(
        "SELECT visit_id, payment_id, request_hash FROM collection_visits WHERE tenant_id = $1"
        " AND task_id = $2 AND idem_key = $3", tenant_id, task_id, idempotency_key)
    if seen is not None:
        if seen["request_hash"] != digest:
            raise IdempotencyKeyReused()
        payment = await payments.get(conn, tenant_id, seen["payment_id"])
        return Collected(seen["visit_id"], task, payment, receipt_number(payment.payment_id),
                         await _agent_name(conn, tenant_id, task.agent_id)), False
    task = await tasks.locked(conn, tenant_id, task_id, agent_id)
    check_visit(c.preset, None, c.comment, today, collecting=True)
    if c.method not in METHODS:
        raise InvalidBillingInput(f"an agent collects by {', '.join(METHODS)}")
    acc = await account(conn, tenant_id, task.account_id)
    if c.currency != acc.currency:
        raise InvalidBillingInput(f"account {task.account_id!r} pays in {acc.currency}")
    collector = f"agent:{task.agent_id}" if task.agent_id else by
    payment, _ = await payments.record(conn, tenant_id, PaymentIn(
        account_id=task.account_id, method=c.method, amount=c.amount, currency=c.currency,
        received_on=today, reference=c.reference or task_id, collected_by=collector,
    ), idempotency_key=f"collection:{task_id}:{idempotency_key}", at=at, money=money)
    visit_id = await conn.fetchval(
        "INSERT INTO collection_visits (tenant_id, task_id, agent_id, preset, outcome, comment,"
        " payment_id, amount, method, idem_key, request_hash, recorded_by, at) VALUES ($1, $2,"
        " $3, $4, 'collected', $5, $6, $7, $8, $9, $10, $11, $12) RETURNING visit_id",
        tenant_id, task_id, task.agent_id, c.preset.code, c.comment, payment.payment_id,
        c.amount, c.method, idempotency_key, digest, by, at)  # fmt: skip
    await conn.execute("UPDATE collection_tasks SET status = 'collected', updated_at = $3"
                       " WHERE tenant_id = $1 AND task_id = $2", tenant_id, task_id, at)
    name = await _agent_name(conn, tenant_id, task.agent_id)
    number = receipt_number(payment.payment_id)
    await enqueue(conn, tenant_id, "collection.recorded", {"collection": {
        "task_id": task_id, "account_id": task.account_id, "payment_id": payment.payment_id,
        "receipt_number": number, "amount": c.amount, "currency": c.currency,
        "method": c.method, "agent_id": task.agent_id, "agent_name": name,
        "received_on": today.isoformat()}},
        dedup_key=f"collection.recorded:{payment.payment_id}", at=at)  # fmt: skip
    done = await tasks.get(conn, tenant_id, task_id)
    return Collected(visit_id, done, payment, number, name), True
