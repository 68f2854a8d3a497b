"""What settlement says to Postgres: the redelivery statements and the epoch-ms codec.

A new batch is COPYed straight into ``ledger_entries`` and ``calls``; these statements are the
redelivery path (a unique violation in the COPY), idempotent on (tenant, account, seq) and
(tenant, call id), plus the CDR-correction update, which recomputes from the ledger and so is
idempotent too.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from charging_engine.ledger.settlement_rows import CALL_COLUMNS, LEDGER_COLUMNS, pg_time, unix_ms

# Per-session staging tables, emptied by every commit or rollback.
CREATE_STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS settle_ledger (
    tenant_id text, account_id text, seq bigint, kind text, amount bigint, reserved bigint,
    balance_after bigint, idem_key text, call_id text, stream_id text, bucket int,
    ts timestamptz, extra jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS settle_calls (
    tenant_id text, call_id text, account_id text, destination text, rate_prefix text,
    plan_id text, started_at timestamptz, answered_at timestamptz, ended_at timestamptz,
    duration int, billed_seconds int, cost bigint, disposition text, settled_by text
) ON COMMIT DELETE ROWS;
"""
# Sorted inserts take row locks in one order, so concurrent settlers cannot deadlock. The CTE's
# outer query sees the table as it was before the insert: rows it joins are the pre-existing
# ones, and one with another stream id is a conflict, not a redelivery.
INSERT_LEDGER: Final = f"""
WITH inserted AS (
    INSERT INTO ledger_entries ({", ".join(LEDGER_COLUMNS)})
    SELECT {", ".join(LEDGER_COLUMNS)} FROM settle_ledger ORDER BY tenant_id, account_id, seq
    ON CONFLICT (tenant_id, account_id, seq) DO NOTHING
    RETURNING 1
)
INSERT INTO ledger_conflicts ({", ".join(LEDGER_COLUMNS)})
SELECT {", ".join(f"s.{c}" for c in LEDGER_COLUMNS)}
FROM settle_ledger s
JOIN ledger_entries e USING (tenant_id, account_id, seq)
WHERE (e.stream_id, e.bucket) IS DISTINCT FROM (s.stream_id, s.bucket)
ON CONFLICT DO NOTHING
"""
# The column is recomputed from the ledger (the sum of the call's correction entries), so a
# redelivered entry changes nothing and a CDR correction plus a re-rate both count.
APPLY_CORRECTIONS: Final = """
UPDATE calls SET
    correction = (SELECT coalesce(sum(-amount), 0) FROM ledger_entries l
                  WHERE l.tenant_id = $1 AND l.call_id = $2 AND l.kind = 'correction'),
    cdr_seconds = coalesce($3, cdr_seconds)
WHERE tenant_id = $1 AND call_id = $2
"""
UPSERT_CALLS: Final = f"""
INSERT INTO calls ({", ".join(CALL_COLUMNS)})
SELECT {", ".join(CALL_COLUMNS)} FROM settle_calls ORDER BY tenant_id, call_id
ON CONFLICT (tenant_id, call_id) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS[2:])}
"""


async def epoch_ms_codec(conn: asyncpg.Connection) -> None:
    """``init`` of a pool for settlement alone (``Settlement(epoch_ms=True)``): timestamptz
    travels as Unix milliseconds, binary, with no datetime objects built per row (they were a
    tenth of settlement's Python time). Never on a pool other code shares."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=pg_time, decoder=unix_ms, format="tuple"
    )
