"""From the billing event log to the notification outbox (Postgres adapter).

Billing writes each event (invoice finalized, payment recorded, ladder step entered, ...) in the
transaction of the change that caused it, with a queue row for every registered consumer of
the log (``event_consumer_queue``): this relay takes its rows (``SKIP LOCKED``: several
processes share the work), turns each event into messages by the pure ``rules``, addresses them
from the account's contacts, opt-outs and the tenant's settings, and writes them and deletes the
queue rows in one transaction. A message's unique key (event, template event, channel,
recipient) means an event never produces the same message twice, even if it is relayed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
import orjson

from notifications.rules import Intent, intents

__all__ = ["CONSUMER", "Contacts", "Relay", "recipients", "write"]

CONSUMER: Final = "notifications"

QUEUE_SQL: Final = """
SELECT q.event_id, e.tenant_id, e.type, e.payload
FROM event_consumer_queue q JOIN webhook_events e USING (event_id)
WHERE q.consumer = $1
ORDER BY e.created_at, e.event_id
LIMIT $2
FOR UPDATE OF q SKIP LOCKED
"""

CONTACTS_SQL: Final = """
SELECT a.account_id, a.currency, t.name AS tenant_name, d.name, d.primary_mobile,
       d.alternate_mobile, d.email,
       COALESCE(s.sms_alternate, false) AS sms_alternate, COALESCE(s.language, 'en') AS language,
       COALESCE((SELECT array_agg(o.event || '/' || o.channel) FROM notification_optouts o
                 WHERE o.tenant_id = a.tenant_id AND o.account_id = a.account_id), '{}')
           AS optouts
FROM accounts a JOIN tenants t USING (tenant_id)
LEFT JOIN account_details d USING (tenant_id, account_id)
LEFT JOIN notification_settings s ON s.tenant_id = a.tenant_id
WHERE a.tenant_id = $1 AND a.account_id = $2
"""


@dataclass(frozen=True, slots=True)
class Contacts:
    name: str
    currency: str
    tenant_name: str
    primary_mobile: str | None
    alternate_mobile: str | None
    email: str | None
    sms_alternate: bool
    language: str
    optouts: frozenset[str]  # "event/channel", "*" for any

    def opted_out(self, event: str, channel: str) -> bool:
        return bool({f"{event}/{channel}", f"{event}/*", f"*/{channel}", "*/*"} & self.optouts)


def recipients(intent: Intent, c: Contacts) -> list[tuple[str, str]]:
    """(channel, address) of every message ``intent`` becomes for these contacts."""
    out: list[tuple[str, str]] = []
    if "email" in intent.channels and c.email and not c.opted_out(intent.event, "email"):
        out.append(("email", c.email))
    if "sms" in intent.channels and not c.opted_out(intent.event, "sms"):
        numbers = [c.primary_mobile]
        if c.sms_alternate or intent.alternate_too:
            numbers.append(c.alternate_mobile)
        for n in dict.fromkeys(x for x in numbers if x):
            out.append(("sms", n))
    return out


class Relay:
    def __init__(self, pool: asyncpg.Pool, *, now: Any) -> None:
        """``now``: a callable giving the time messages are due from (a movable clock)."""
        self.pool = pool
        self.now = now

    async def run_once(self, limit: int = 500) -> int:
        """Relay what is queued (at most ``limit`` events); -> messages written."""
        made = 0
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(QUEUE_SQL, CONSUMER, limit)
            at: datetime = self.now()
            for r in rows:
                body = orjson.loads(r["payload"])
                raised = datetime.fromisoformat(body.get("timestamp") or at.isoformat())
                for intent in intents(r["type"], body.get("data", {}), raised):
                    made += await write(conn, r["tenant_id"], r["event_id"], intent, at)
            if rows:
                await conn.execute("DELETE FROM event_consumer_queue WHERE consumer = $1 AND"
                                   " event_id = ANY($2)", CONSUMER,
                                   [r["event_id"] for r in rows])  # fmt: skip
        return made


async def contacts(conn: Any, tenant_id: str, account_id: str) -> Contacts | None:
    r = await conn.fetchrow(CONTACTS_SQL, tenant_id, account_id)
    if r is None:
        return None
    return Contacts(r["name"] or account_id, r["currency"].strip(),
                    r["tenant_name"] or tenant_id,
                    r["primary_mobile"],
                    r["alternate_mobile"], r["email"], r["sms_alternate"], r["language"],
                    frozenset(r["optouts"]))  # fmt: skip


async def write(conn: Any, tenant_id: str, source: str, intent: Intent, at: datetime) -> int:
    """Address ``intent`` and write its messages (once each); -> how many are new."""
    c = await contacts(conn, tenant_id, intent.account_id)
    if c is None:
        return 0
    made = 0
    context = {"customer_name": c.name, "account_id": intent.account_id,
               "tenant_name": c.tenant_name, "currency": c.currency, **intent.context}
    for channel, address in recipients(intent, c):
        done = await conn.fetchval(
            "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
            " recipient, language, context, next_attempt_at, created_at) VALUES ($1, $2, $3,"
            " $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING RETURNING notification_id",
            tenant_id, intent.account_id, source, intent.event, channel, address, c.language,
            orjson.dumps(context).decode(), at)  # fmt: skip
        made += done is not None
    return made
