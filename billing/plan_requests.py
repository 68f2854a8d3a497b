"""Plan change requests (Postgres adapter): preview, request, approve (which applies the change
through ``enrollment.change_plan``), reject, cancel; and the customers' self-service tokens.

One open request per account (a unique index): a second is a conflict, not a queue. Every
transition takes the request's row lock and is checked by ``plan_change.next_state``, so two
staff approving at once apply it once. Events go to the webhook outbox for notifications.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from billing import enrollment
from billing.catalog.lookups import Conn
from billing.errors import BillingConflict, BillingNotFound, InvalidBillingInput
from billing.fees import PlanTerms
from billing.plan_change import Effective, Preview, Transition, next_state, preview
from billing.webhooks.outbox import enqueue
from charging_engine.catalog import hash_key

__all__ = ["TOKEN_PREFIX", "account_of_token", "decide", "issue_token", "preview_for",
           "request"]  # fmt: skip

TOKEN_PREFIX: Final = "cst_"

BILLING_SQL: Final = """
SELECT ba.*, t.timezone, p.period, p.anchor_month, p.currency, p.name, p.plan_fee,
       p.per_extension_fee, p.per_seat_fee
FROM billing_accounts ba JOIN tenants t USING (tenant_id)
JOIN bill_plans p ON p.tenant_id = ba.tenant_id AND p.plan_id = ba.plan_id
WHERE ba.tenant_id = $1 AND ba.account_id = $2
"""


def _terms(r: Any) -> PlanTerms:
    return PlanTerms(r["plan_id"], r["name"], r["plan_fee"], r["per_extension_fee"],
                     r["per_seat_fee"])  # fmt: skip


async def preview_for(conn: Conn, tenant_id: str, account_id: str, plan_id: str,
                      effective: Effective, *, now: datetime, balance: int) -> Preview:  # fmt: skip
    """What changing to ``plan_id`` would do; refused (422) for a plan it cannot change to."""
    ba = await conn.fetchrow(BILLING_SQL, tenant_id, account_id)
    if ba is None:
        raise BillingNotFound("billing account", account_id)
    new = await conn.fetchrow("SELECT * FROM bill_plans WHERE tenant_id = $1 AND plan_id = $2",
                              tenant_id, plan_id)  # fmt: skip
    if new is None:
        raise BillingNotFound("bill plan", plan_id)
    if new["plan_id"] == ba["plan_id"]:
        raise InvalidBillingInput(f"the account is on {plan_id} already")
    if (new["period"], new["anchor_month"]) != (ba["period"], ba["anchor_month"]):
        raise InvalidBillingInput(f"{plan_id} bills {new['period']}, the account"
                                  f" {ba['period']}: move its bill cycle first")  # fmt: skip
    if new["currency"] != ba["currency"]:
        raise InvalidBillingInput(f"{plan_id} bills in {new['currency']}")
    today = now.astimezone(ZoneInfo(ba["timezone"])).date()
    if not ba["open_start_date"] <= today < ba["open_end_date"]:
        raise BillingConflict("the open period is being billed; try again in a moment")
    return preview(_terms(ba), _terms(new), extensions=ba["extensions"], seats=ba["seats"],
                   period_start=ba["open_start_date"], period_end=ba["open_end_date"],
                   today=today, effective=effective,
                   reference_days=ba["open_reference_days"], balance=balance,
                   credit=ba["credit_balance"])  # fmt: skip


def preview_doc(p: Preview) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v
            for k, v in dataclasses.asdict(p).items()}  # fmt: skip


async def request(pool: asyncpg.Pool, tenant_id: str, account_id: str, plan_id: str,
                  effective: Effective, *, by: str, note: str, now: datetime,
                  balance: int) -> Any:  # fmt: skip
    """Record a request (previewed now, so the figures asked for are kept with it)."""
    async with pool.acquire() as conn, conn.transaction():
        p = await preview_for(conn, tenant_id, account_id, plan_id, effective, now=now,
                              balance=balance)  # fmt: skip
        current = await conn.fetchval("SELECT plan_id FROM billing_accounts WHERE tenant_id ="
                                      " $1 AND account_id = $2", tenant_id, account_id)
        request_id = "pcr_" + uuid.uuid4().hex
        try:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "INSERT INTO plan_change_requests (request_id, tenant_id, account_id,"
                    " from_plan_id, plan_id, effective, requested_by, note, preview,"
                    " effective_on, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
                    " $10, $11) RETURNING *", request_id, tenant_id, account_id, current,
                    plan_id, effective, by, note, orjson.dumps(preview_doc(p)).decode(),
                    p.effective_on, now)  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise BillingConflict(f"account {account_id} has an open plan change request"
                                  " already: approve, reject or cancel it first") from None
        await _event(conn, row, "plan_change.requested", now)
    return row


async def decide(pool: asyncpg.Pool, tenant_id: str, request_id: str, transition: Transition,
                 *, by: str, reason: str | None, now: datetime,
                 account_id: str | None = None) -> Any:  # fmt: skip
    """Approve (and apply), reject or cancel a request (``account_id``: only that account's,
    as a customer's token may)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT * FROM plan_change_requests WHERE tenant_id = $1 AND request_id = $2"
            " AND ($3::text IS NULL OR account_id = $3) FOR UPDATE", tenant_id, request_id,
            account_id)  # fmt: skip
        if row is None:
            raise BillingNotFound("plan change request", request_id)
        try:
            state = next_state(row["state"], transition)
        except ValueError as e:
            raise BillingConflict(str(e)) from None
        if transition == "approve":
            await enrollment.change_plan(pool, tenant_id, row["account_id"],
                                         plan_id=row["plan_id"], effective=row["effective"],
                                         now=now)  # fmt: skip
            state = next_state(state, "apply")
        row = await conn.fetchrow(
            "UPDATE plan_change_requests SET state = $3, decided_by = $4, reason = $5,"
            " decided_at = $6 WHERE tenant_id = $1 AND request_id = $2 RETURNING *",
            tenant_id, request_id, state, by, reason, now)  # fmt: skip
        await _event(conn, row, f"plan_change.{'applied' if state == 'applied' else state}",
                     now)  # fmt: skip
    return row


async def _event(conn: Conn, row: Any, kind: str, at: datetime) -> None:
    await enqueue(conn, row["tenant_id"], kind, {
        "request_id": row["request_id"], "account_id": row["account_id"],
        "from_plan_id": row["from_plan_id"], "plan_id": row["plan_id"],
        "effective": row["effective"], "state": row["state"],
        "effective_on": row["effective_on"].isoformat() if row["effective_on"] else None,
    }, dedup_key=f"{kind}:{row['request_id']}", at=at)  # fmt: skip


async def issue_token(pool: asyncpg.Pool, tenant_id: str, account_id: str, *, by: str
                      ) -> tuple[str, str]:  # fmt: skip
    """A new self-service token for the account (earlier ones revoked); -> (id, secret)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = "tok_" + secrets.token_hex(8)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE self_service_tokens SET revoked_at = now() WHERE tenant_id"
                           " = $1 AND account_id = $2 AND revoked_at IS NULL", tenant_id,
                           account_id)  # fmt: skip
        await conn.execute(
            "INSERT INTO self_service_tokens (token_id, token_hash, tenant_id, account_id,"
            " created_by) VALUES ($1, $2, $3, $4, $5)", token_id, hash_key(secret), tenant_id,
            account_id, by)  # fmt: skip
    return token_id, secret


async def account_of_token(conn: Conn, secret: str) -> tuple[str, str] | None:
    """(tenant, account) of a valid self-service token."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    r = await conn.fetchrow("SELECT tenant_id, account_id FROM self_service_tokens WHERE"
                            " token_hash = $1 AND revoked_at IS NULL", hash_key(secret))
    return (r["tenant_id"], r["account_id"]) if r is not None else None
