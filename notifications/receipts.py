"""Delivery receipts against their messages (Postgres adapter, for any channel that has them).

A receipt may arrive before the dispatcher has recorded the send it belongs to (an SMSC can
answer a submit and send the receipt at once): the part's row is written by whichever comes
first, and the message's status is worked out from its parts by both, so the two orders end
the same. A message is ``delivered`` when every part is, ``failed`` as soon as a part's final
state is a failure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

__all__ = ["FAILED", "record", "settle"]

FAILED: Final = frozenset({"UNDELIV", "REJECTD", "EXPIRED", "DELETED", "UNKNOWN"})


async def settle(conn: Any, notification_id: int, at: datetime) -> None:
    """Set the message's status from its parts' receipts (in the caller's transaction)."""
    states = [r["state"] for r in await conn.fetch(
        "SELECT state FROM notification_parts WHERE notification_id = $1 FOR UPDATE",
        notification_id)]  # fmt: skip
    failed = [s for s in states if s in FAILED]
    if failed:
        await conn.execute(
            "UPDATE notifications SET status = 'failed', last_error = $2 WHERE"
            " notification_id = $1 AND status IN ('sent', 'delivered')", notification_id,
            f"delivery receipt: {failed[0]}")  # fmt: skip
    elif states and all(s == "DELIVRD" for s in states):
        await conn.execute(
            "UPDATE notifications SET status = 'delivered', delivered_at = $2 WHERE"
            " notification_id = $1 AND status = 'sent'", notification_id, at)  # fmt: skip


async def record(pool: Any, channel: str, provider_id: str, state: str, at: datetime) -> None:
    """One part's receipt (idempotent: a provider repeats receipts until answered)."""
    async with pool.acquire() as conn, conn.transaction():
        nid = await conn.fetchval(
            "INSERT INTO notification_parts (provider_id, channel, state, at) VALUES ($1, $2,"
            " $3, $4) ON CONFLICT (channel, provider_id) DO UPDATE SET state = excluded.state,"
            " at = excluded.at RETURNING notification_id", provider_id, channel, state, at)
        if nid is not None:
            await settle(conn, nid, at)
