"""Low-balance and balance-exhausted alerts (the engine's, stored by the alert feed) as messages
to the customer: each alert once (the outbox's key names it), on the lines the account chose
(``low_balance_thresholds``; the auto top-up's own line tells the card, not the customer).

Alerts are read through ``scan`` (each once, by any process, late commits included).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import asyncpg

from notifications.relay import write
from notifications.rules import Intent
from notifications.scan import scan

__all__ = ["BalanceAlerts"]

ALERTS_SQL: Final = """
SELECT a.id, a.tenant_id, a.account_id, a.kind, a.balance, a.threshold
FROM alerts a
LEFT JOIN account_details d USING (tenant_id, account_id)
WHERE a.id > $1 AND a.kind IN ('low_balance', 'exhausted')
  AND (a.kind = 'exhausted' OR a.threshold = ANY(COALESCE(d.low_balance_thresholds, '{}')))
  AND NOT EXISTS (SELECT 1 FROM notification_examined x WHERE x.source = $3
                  AND x.id = a.id)
ORDER BY a.id LIMIT $2
"""


class BalanceAlerts:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def run_once(self, at: datetime, limit: int = 500) -> int:
        """Queue the messages of alerts not told yet; -> messages written."""

        async def tell(conn: Any, r: asyncpg.Record) -> int:
            if r["kind"] == "exhausted":
                intent = Intent("balance.exhausted", r["account_id"], {"topup_url": None})
            else:
                intent = Intent("balance.low", r["account_id"], {
                    "balance_micros": r["balance"], "threshold_micros": r["threshold"],
                    "topup_url": None})  # fmt: skip
            return await write(conn, r["tenant_id"], f"alert:{r['id']}", intent, at)

        return await scan(self.pool, "alerts", ALERTS_SQL, tell, limit=limit)
