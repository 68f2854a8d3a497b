"""Suspension and restoration messages from the account status history (Postgres adapter):
every status change, whoever made it (the dunning ladder, an admin, the validity run), is a
row of ``account_status_history``; the pure ``rules.status_event`` says which are news to the
customer. Rows are read through ``scan`` (each once, by any process, late commits included).

A suspension by the ladder names the overdue amount its step saw; one made by hand has no
amount and asks the customer to get in touch (the template's other branch).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import asyncpg

from billing.dunning_run import ACTOR as LADDER
from notifications.relay import write
from notifications.rules import Intent, status_event
from notifications.scan import scan

__all__ = ["StatusMessages"]

CHANGES_SQL: Final = """
SELECT h.id, h.tenant_id, h.account_id, h.from_status, h.to_status, h.changed_by
FROM account_status_history h
WHERE h.id > $1 AND h.from_status IS DISTINCT FROM h.to_status
  AND (h.to_status IN ('outgoing_suspended', 'suspended')
       OR (h.to_status = 'active' AND h.from_status IS NOT NULL))
  AND NOT EXISTS (SELECT 1 FROM notification_examined x WHERE x.source = $3
                  AND x.id = h.id)
ORDER BY h.id LIMIT $2
"""

# The overdue amount of the ladder's latest step, when the ladder made the change.
OVERDUE_SQL: Final = """
SELECT overdue_amount FROM dunning_entries WHERE tenant_id = $1 AND account_id = $2
ORDER BY entered_at DESC, step DESC LIMIT 1
"""


class StatusMessages:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def run_once(self, at: datetime, limit: int = 500) -> int:
        """Queue the messages of status changes not told yet; -> messages written."""

        async def tell(conn: Any, r: asyncpg.Record) -> int:
            event = status_event(r["from_status"], r["to_status"])
            if event is None:
                return 0
            context: dict[str, Any] = {}
            if event == "account.suspended":
                due = None
                if r["changed_by"] == LADDER.key_id:
                    due = await conn.fetchval(OVERDUE_SQL, r["tenant_id"], r["account_id"])
                context = {"amount_due": due or None, "pay_url": None}
            intent = Intent(event, r["account_id"], context)
            return await write(conn, r["tenant_id"], f"status:{r['id']}", intent, at)

        return await scan(self.pool, "status", CHANGES_SQL, tell, limit=limit)
