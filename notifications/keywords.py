"""Inbound SMS keywords (Postgres and Redis adapter): the SMPP client's mobile-originated texts
answered through the outbox.

The number texted names the tenant (``inbound_settings``); the sender's number, normalised,
names the account (its primary or alternate mobile). Every text is logged in
``inbound_messages``; a reply is queued in ``notifications`` (``sms.balance_reply``: the Redis
balance of a prepaid account, the open amount and oldest due date of a postpaid one;
``sms.help`` for HELP or a text that is no keyword) with source_event ``inbound:<id>``, so one
logged text is answered at most once. The log row, the rate-limit count and the reply are one
transaction under a lock of the sender's number: a burst from one number never gets more than
``replies_per_hour`` replies. A PDU with an identity of its own (receipted_message_id) is logged
once however often the SMSC delivers it; without one, a text delivered again (its answer to the
SMSC lost) is a new text: at least once.

An unknown sender gets the tenant's ``unknown_reply`` (as ``sms.help``'s support contact: the
catalogue has no plain-text event) or nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Final

import asyncpg
import orjson

from charging_engine.balance.store import BalanceStore
from notifications.inbound import Aliases, Meaning, allowed, balance_word, keyword, normalise
from notifications.smpp import Delivery, MobileMessage

__all__ = ["Keywords"]

WINDOW: Final = timedelta(hours=1)

SETTINGS_SQL: Final = """
SELECT s.tenant_id, s.unknown_reply, s.support_contact, s.replies_per_hour,
       COALESCE(t.name, s.tenant_id) AS tenant_name
FROM inbound_settings s JOIN tenants t USING (tenant_id)
WHERE s.destination = ANY($1::text[])
"""

# Candidates by digits (then checked in Python with ``normalise``): the stored numbers are
# E.164, but a loose format must not hide an account.
ACCOUNT_SQL: Final = """
SELECT a.account_id, a.kind, a.currency, d.name, d.primary_mobile, d.alternate_mobile
FROM account_details d JOIN accounts a USING (tenant_id, account_id)
WHERE d.tenant_id = $1 AND d.closed_at IS NULL AND a.status <> 'terminated'
  AND (regexp_replace(d.primary_mobile, '[^0-9]', '', 'g') = ANY($2::text[])
       OR regexp_replace(d.alternate_mobile, '[^0-9]', '', 'g') = ANY($2::text[]))
ORDER BY a.account_id
"""

DUE_SQL: Final = """
SELECT COALESCE(sum(open), 0)::bigint AS open, min(due_on) AS due_on
FROM invoice_open WHERE tenant_id = $1 AND account_id = $2 AND open > 0
"""

LOG_SQL: Final = """
INSERT INTO inbound_messages (tenant_id, source, number, destination, text, keyword, account_id,
                              outcome, pdu_ref, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (tenant_id, number, pdu_ref) WHERE pdu_ref IS NOT NULL DO NOTHING
RETURNING id
"""

OUTBOX_SQL: Final = """
INSERT INTO notifications (tenant_id, account_id, source_event, event, channel, recipient,
                           language, context, next_attempt_at, created_at)
VALUES ($1, $2, $3, $4, 'sms', $5, $6, $7, $8, $8)
ON CONFLICT DO NOTHING
"""


def pdu_ref(message: MobileMessage) -> str | None:
    """The PDU's own identity, when the SMSC gives one (receipted_message_id on an MO)."""
    return message.pdu.receipted_message_id or None


class Keywords:
    """``on_deliver`` for mobile-originated texts (receipts are ignored: chain it with
    ``DeliveryReceipts``). ``now``: a callable giving the current time."""

    def __init__(self, pool: asyncpg.Pool, store: BalanceStore, *,
                 now: Callable[[], datetime]) -> None:  # fmt: skip
        self.pool = pool
        self.store = store
        self.now = now

    async def __call__(self, message: Delivery) -> None:
        if not isinstance(message, MobileMessage):
            return
        at = self.now()
        number = normalise(message.source) or message.source
        dest = normalise(message.destination) or message.destination
        s = await self.pool.fetchrow(SETTINGS_SQL, list({dest, message.destination}))
        ref = pdu_ref(message)
        if s is None:
            await self.pool.execute(LOG_SQL, None, message.source, number, message.destination,
                                    message.text, None, None, "no_reply", ref, at)  # fmt: skip
            return
        tenant: str = s["tenant_id"]
        words = await self.pool.fetch("SELECT keyword, meaning, language FROM inbound_keywords"
                                      " WHERE tenant_id = $1", tenant)  # fmt: skip
        aliases: Aliases = {r["keyword"]: (r["meaning"], r["language"]) for r in words}
        found = keyword(message.text, aliases)
        meaning: Meaning | None = found[0] if found else None
        language = found[1] if found else "en"
        account = await self._account(tenant, number)
        event, context, outcome = "sms.help", {
            "customer_name": "", "account_id": "", "tenant_name": s["tenant_name"],
            "keyword": balance_word(language, aliases), "support_contact": s["support_contact"],
        }, "replied"  # fmt: skip
        if account is None:
            context["support_contact"] = s["unknown_reply"]
            if s["unknown_reply"] is None:
                outcome = "no_reply"
        else:
            context |= {"customer_name": account["name"] or account["account_id"],
                        "account_id": account["account_id"],
                        "currency": account["currency"].strip()}  # fmt: skip
            if meaning == "balance":
                event = "sms.balance_reply"
                figures = await self._figures(tenant, account)
                if figures is None:
                    outcome = "unavailable"
                else:
                    context = {k: context[k] for k in ("customer_name", "account_id",
                                                       "tenant_name", "currency")} | figures
        account_id = None if account is None else account["account_id"]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                               f"inbound:{tenant}:{number}")  # fmt: skip
            if outcome == "replied":
                recent = await conn.fetchval(
                    "SELECT count(*) FROM inbound_messages WHERE tenant_id = $1 AND number = $2"
                    " AND outcome = 'replied' AND received_at > $3", tenant, number,
                    at - WINDOW)  # fmt: skip
                if not allowed(recent, s["replies_per_hour"]):
                    outcome = "rate_limited"
            inbound = await conn.fetchval(LOG_SQL, tenant, message.source, number,
                                          message.destination, message.text, meaning, account_id,
                                          outcome, ref, at)  # fmt: skip
            if inbound is None or outcome != "replied":
                return  # a PDU logged before (and answered then), or nothing to send
            await conn.execute(OUTBOX_SQL, tenant, account_id or "", f"inbound:{inbound}",
                               event, message.source, language, orjson.dumps(context).decode(),
                               at)  # fmt: skip

    async def _account(self, tenant: str, number: str) -> asyncpg.Record | None:
        """The sender's account: a primary mobile before an alternate one."""
        digits = number.removeprefix("+")
        rows = await self.pool.fetch(ACCOUNT_SQL, tenant, [digits, "00" + digits])
        for field in ("primary_mobile", "alternate_mobile"):
            for r in rows:
                if r[field] and normalise(r[field]) == number:
                    return r
        return None

    async def _figures(self, tenant: str, account: asyncpg.Record) -> dict[str, Any] | None:
        """sms.balance_reply's own variables; None when the balance is not known."""
        if account["kind"] == "prepaid":
            state = await self.store.state(tenant, account["account_id"])
            if state is None:
                return None
            return {"prepaid": True, "balance_micros": state.balance, "amount_due": None,
                    "due_date": None}  # fmt: skip
        due = await self.pool.fetchrow(DUE_SQL, tenant, account["account_id"])
        due_on: date | None = due["due_on"]
        return {"prepaid": False, "balance_micros": None, "amount_due": int(due["open"]),
                "due_date": None if due_on is None else due_on.isoformat()}  # fmt: skip
