"""Low-balance and balance-exhausted alerts (the engine's, stored by the alert feed) as messages
to the customer: each alert once (the outbox's key names it), on the lines the account chose
(``low_balance_thresholds``; the auto top-up's own line tells the card, not the customer).

Alerts are read from a margin below the newest one already looked at, so an alert committed
late by another feed process is still seen; the outbox's unique key makes seeing one twice
harmless.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from notifications.relay import write
from notifications.rules import Intent

__all__ = ["BalanceAlerts"]

MARGIN: Final = 1_000  # alert ids below the newest seen that are looked at again

ALERTS_SQL: Final = """
SELECT a.id, a.tenant_id, a.account_id, a.kind, a.balance, a.threshold
FROM alerts a
LEFT JOIN account_details d USING (tenant_id, account_id)
WHERE a.id > $1 AND a.kind IN ('low_balance', 'exhausted')
  AND (a.kind = 'exhausted' OR a.threshold = ANY(COALESCE(d.low_balance_thresholds, '{}')))
  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.tenant_id = a.tenant_id
                  AND n.source_event = 'alert:' || a.id)
ORDER BY a.id LIMIT $2
"""


class BalanceAlerts:
    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.seen = 0  # the newest alert id looked at

    async def run_once(self, at: datetime, limit: int = 500) -> int:
        """Queue the messages of alerts not told yet; -> messages written."""
        made = 0
        rows = await self.pool.fetch(ALERTS_SQL, max(self.seen - MARGIN, 0), limit)
        for r in rows:
            if r["kind"] == "exhausted":
                intent = Intent("balance.exhausted", r["account_id"], {"topup_url": None})
            else:
                intent = Intent("balance.low", r["account_id"], {
                    "balance_micros": r["balance"], "threshold_micros": r["threshold"],
                    "topup_url": None})  # fmt: skip
            async with self.pool.acquire() as conn, conn.transaction():
                made += await write(conn, r["tenant_id"], f"alert:{r['id']}", intent, at)
            self.seen = max(self.seen, r["id"])
        return made

