"""Reading a table the notifications do not own (alerts, account status history) row by row,
each row looked at once by any of several processes (Postgres adapter).

Ids are handed out before commit, so a row can become visible after a later one: the scan
looks again ``MARGIN`` ids below the furthest point read (``notification_scans``, shared) and
skips the rows it has looked at (``notification_examined``, claimed in the transaction that
writes the row's messages). A row that makes no message is claimed all the same, so no number
of them can keep the rows after them waiting. Claims fall away once they are below the
margin, where no scan looks any more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg

__all__ = ["MARGIN", "scan"]

MARGIN: Final = 1_000  # ids below the furthest read that are looked at again (0006_scans.sql)
Handle = Callable[[Any, asyncpg.Record], Awaitable[int]]

CLAIM_SQL: Final = ("INSERT INTO notification_examined (source, id) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING RETURNING 1")  # fmt: skip
ADVANCE_SQL: Final = """
WITH moved AS (
    INSERT INTO notification_scans AS s (source, last_id) VALUES ($1, $2)
    ON CONFLICT (source) DO UPDATE SET last_id = GREATEST(s.last_id, excluded.last_id)
    RETURNING last_id)
DELETE FROM notification_examined WHERE source = $1 AND id <= (SELECT last_id FROM moved) - $3
"""


async def scan(pool: asyncpg.Pool, source: str, rows_sql: str, handle: Handle, *,
               limit: int = 500) -> int:  # fmt: skip
    """Hand each new row of ``rows_sql`` to ``handle`` (in its claiming transaction); -> the
    sum of what it returned. ``rows_sql`` selects ``id`` and more, with ``id > $1``, ``NOT
    EXISTS (.. notification_examined x WHERE x.source = $3 AND x.id = <id>)``, ``ORDER BY id
    LIMIT $2``."""
    last = await pool.fetchval("SELECT last_id FROM notification_scans WHERE source = $1",
                               source)  # fmt: skip
    rows = await pool.fetch(rows_sql, max((last or 0) - MARGIN, 0), limit, source)
    made = 0
    for r in rows:
        async with pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(CLAIM_SQL, source, r["id"]):
                made += await handle(conn, r)
    if rows:
        await pool.execute(ADVANCE_SQL, source, max(r["id"] for r in rows), MARGIN)
    return made
