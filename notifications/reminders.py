"""Payment reminders: an open invoice is reminded ``reminder_days`` (per tenant) before its due
date, once (the outbox's unique key names the invoice), by the channels the account has.

Looked at by the notifications loop every few minutes; an invoice that became due for a
reminder while nothing ran is still reminded as long as it is not past due.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from notifications.relay import write
from notifications.rules import Intent

__all__ = ["queue_reminders"]

DUE_SQL: Final = """
SELECT i.tenant_id, i.account_id, i.invoice_id, v.number, i.open, i.due_on,
       (i.due_on - (($1::timestamptz) AT TIME ZONE t.timezone)::date) AS days_before
FROM invoice_open i
JOIN invoices v USING (invoice_id)
JOIN tenants t ON t.tenant_id = i.tenant_id
JOIN notification_settings s ON s.tenant_id = i.tenant_id
WHERE i.open > 0 AND i.status IN ('finalized', 'partially_paid') AND i.due_on IS NOT NULL
  AND s.reminder_days > 0
  AND i.due_on - (($1::timestamptz) AT TIME ZONE t.timezone)::date BETWEEN 0 AND s.reminder_days
  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.tenant_id = i.tenant_id
                  AND n.source_event = 'reminder:' || i.invoice_id)
"""


async def queue_reminders(pool: Any, at: datetime) -> int:
    """Queue the reminders due at ``at``; -> messages written."""
    made = 0
    for r in await pool.fetch(DUE_SQL, at):
        intent = Intent("invoice.reminder", r["account_id"], {
            "invoice_number": r["number"], "amount_due": int(r["open"]),
            "due_date": r["due_on"], "days_before_due": int(r["days_before"]),
            "pay_url": None})  # fmt: skip
        async with pool.acquire() as conn, conn.transaction():
            made += await write(conn, r["tenant_id"], f"reminder:{r['invoice_id']}", intent, at)
    return made
