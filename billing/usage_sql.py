"""Usage of a batch of accounts for the periods being billed: one set-based query per step.

Each account of a batch comes with its billed rectangle (``billed_seq``, ``billed_end``), the
seq where its scan starts (``scan_from``) and the end of the period being billed. The cut is
the longest gap-free prefix of the account's settled entries (a gap is an entry still on its
way from Redis: billing past it would skip it forever). The invoice takes the usage entries
with ``seq <= cut`` and ``ts < end`` outside the previous rectangle; entries settled before
the cut but belonging to a later period stay for the next invoice (the new ``carry_seq``).
"""

from __future__ import annotations

from typing import Final

USAGE_KINDS: Final = ("commit", "expire", "correction")
CALL_KINDS: Final = ("commit", "expire")

_BATCH: Final = """
    unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::bigint[],
           $6::timestamptz[], $7::int[])
        AS b(tenant_id, account_id, billed_seq, billed_end, scan_from, ends_at, idx)
"""

# Per account: the highest settled seq beyond the billed one and whether the run is gap-free.
CUT_SQL: Final = f"""
SELECT b.idx, b.billed_seq, count(e.seq) AS n, max(e.seq) AS top
FROM {_BATCH}
LEFT JOIN ledger_entries e ON e.tenant_id = b.tenant_id AND e.account_id = b.account_id
    AND e.seq > b.billed_seq
GROUP BY b.idx, b.billed_seq
"""

# Where an account with a gap may cut: the end of its run of seqs right after the billed one.
GAP_SQL: Final = """
SELECT coalesce(max(s.seq), $3) AS cut FROM (
    SELECT seq, seq - row_number() OVER (ORDER BY seq) AS grp
    FROM ledger_entries WHERE tenant_id = $1 AND account_id = $2 AND seq > $3
) s WHERE s.grp = $3
"""

# Usage per destination group (plan + rate prefix) of each account, split into this period's
# usage and late usage (entries of earlier, already invoiced periods), with the exact micros.
# $8 cut per account, $9 start of the period being billed.
USAGE_SQL: Final = f"""
WITH b AS (
    SELECT b.*, c.cut, c.starts_at FROM {_BATCH}
    JOIN unnest($7::int[], $8::bigint[], $9::timestamptz[]) AS c(idx, cut, starts_at)
        ON c.idx = b.idx
)
SELECT b.idx, c.plan_id, c.rate_prefix, e.ts < b.starts_at AS late,
       count(*) FILTER (WHERE e.kind IN ('commit', 'expire') AND e.amount <> 0) AS calls,
       coalesce(sum(c.billed_seconds) FILTER (WHERE e.kind IN ('commit', 'expire')), 0)
           AS seconds,
       sum(e.amount) AS amount
FROM b
JOIN ledger_entries e ON e.tenant_id = b.tenant_id AND e.account_id = b.account_id
    AND e.seq > b.scan_from AND e.seq <= b.cut AND e.ts < b.ends_at
    AND NOT (e.seq <= b.billed_seq AND e.ts < b.billed_end)
    AND e.kind IN ('commit', 'expire', 'correction')
LEFT JOIN calls c ON c.tenant_id = e.tenant_id AND c.call_id = e.call_id
GROUP BY b.idx, c.plan_id, c.rate_prefix, late
"""

# After billing up to (cut, end): the lowest seq inside the new rectangle's seq range whose
# entry belongs to a later period (the next scan starts there), per account.
CARRY_SQL: Final = f"""
WITH b AS (
    SELECT b.*, c.cut FROM {_BATCH}
    JOIN unnest($7::int[], $8::bigint[]) AS c(idx, cut) ON c.idx = b.idx
)
SELECT b.idx, min(e.seq) AS carry
FROM b
JOIN ledger_entries e ON e.tenant_id = b.tenant_id AND e.account_id = b.account_id
    AND e.seq > b.scan_from AND e.seq <= b.cut AND e.ts >= b.ends_at
GROUP BY b.idx
"""

# Names of destination groups: the rate's description, one per (tenant, plan, prefix).
GROUP_NAMES_SQL: Final = """
SELECT DISTINCT ON (r.tenant_id, r.plan_id, r.prefix) r.plan_id, r.prefix, r.description
FROM unnest($1::text[], $2::text[]) AS g(plan_id, prefix)
JOIN rates r ON r.tenant_id = $3 AND r.plan_id = g.plan_id AND r.prefix = g.prefix
ORDER BY r.tenant_id, r.plan_id, r.prefix, r.id DESC
"""
