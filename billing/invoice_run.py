"""The invoice run: bill every postpaid account whose open period has ended (Postgres adapter).

A batch of due accounts is claimed with ``FOR UPDATE SKIP LOCKED`` (several run processes
split the work, none waits for another), billed set-based, and committed in one transaction
together with each account's advanced billing state. A crash or a kill anywhere rolls the
batch back; the next run bills it again. ``invoices_period_uq`` (tenant, account, period) is
the last guard: a period can never get two invoices.

An account whose billing ends (``billing_accounts.ends_on``, set by a termination) is billed up
to that day: the period reaching it is cut short and is the final one (``ended_at``), after
which the account is never due again (``run_inputs.final_view``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import asyncpg

from billing import inputs_codec, run_inputs, usage_sql
from billing.clock import Clock
from billing.composition import UsageGroup
from billing.cycles import period_of, start_of_day
from billing.fees import PlanSegment
from billing.final_invoice import build_final
from billing.invoice_build import AccountToBill, Built, build, consolidate
from billing.invoice_store import InvoiceHeader, insert_many, new_id

log = logging.getLogger("billing.invoice_run")

BATCH: Final = 500

CLAIM_SQL: Final = """
SELECT ba.*, a.currency, t.timezone
FROM billing_accounts ba
JOIN accounts a ON a.tenant_id = ba.tenant_id AND a.account_id = ba.account_id
JOIN tenants t ON t.tenant_id = ba.tenant_id
WHERE LEAST(ba.open_ends_at, ba.ends_at) <= $1 AND ba.ended_at IS NULL
  AND a.kind = 'postpaid'
  AND ($3::text IS NULL OR (ba.tenant_id = $3 AND ba.account_id = $4))
ORDER BY LEAST(ba.open_ends_at, ba.ends_at)
LIMIT $2
FOR UPDATE OF ba SKIP LOCKED
"""

PLAN_AT_START_SQL: Final = """
UPDATE billing_accounts ba SET plan_id = h.plan_id, extensions = h.extensions, seats = h.seats
FROM (
    SELECT DISTINCT ON (h.tenant_id, h.account_id) h.tenant_id, h.account_id, h.plan_id,
           h.extensions, h.seats
    FROM account_plan_history h
    JOIN billing_accounts b ON b.tenant_id = h.tenant_id AND b.account_id = h.account_id
    JOIN unnest($1::text[], $2::text[]) AS k(t, a) ON k.t = h.tenant_id AND k.a = h.account_id
    WHERE h.from_date <= b.open_start_date
    ORDER BY h.tenant_id, h.account_id, h.from_date DESC, h.id DESC
) h
WHERE ba.tenant_id = h.tenant_id AND ba.account_id = h.account_id
    AND (ba.plan_id, ba.extensions, ba.seats) IS DISTINCT FROM (h.plan_id, h.extensions, h.seats)
"""


@dataclass(slots=True)
class RunStats:
    accounts: int = 0
    invoices: int = 0
    calls: int = 0
    empty: int = 0
    batches: int = 0
    invoice_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Cut:
    """Where the ledger of one account is cut for one period."""

    idx: int
    billed_seq: int
    billed_end: datetime
    scan_from: int
    cut: int
    starts_at: datetime
    ends_at: datetime


def _batch_args(rows: Sequence[Any], cuts: Sequence[Cut] | None = None) -> list[Any]:
    args: list[Any] = [
        [r["tenant_id"] for r in rows], [r["account_id"] for r in rows],
        [r["billed_seq"] for r in rows], [r["billed_end"] for r in rows],
        [r["carry_seq"] - 1 if r["carry_seq"] is not None else r["billed_seq"] for r in rows],
        [r["usage_until"] for r in rows], list(range(len(rows))),
    ]
    if cuts is not None:
        args.append([c.cut for c in cuts])
    return args


async def cuts_for(conn: asyncpg.Connection, rows: Sequence[Any]) -> list[Cut]:
    """The gap-free cut of each account's settled ledger."""
    rows = run_inputs.final_view(rows)
    found = {r["idx"]: r for r in await conn.fetch(usage_sql.CUT_SQL, *_batch_args(rows))}
    out: list[Cut] = []
    for i, r in enumerate(rows):
        f = found[i]
        n, top, billed = f["n"], f["top"], r["billed_seq"]
        if n == 0:
            cut = billed
        elif top - billed == n:
            cut = top
        else:  # an entry is still on its way: cut before it
            cut = await conn.fetchval(usage_sql.GAP_SQL, r["tenant_id"], r["account_id"], billed)
        scan = r["carry_seq"] - 1 if r["carry_seq"] is not None else billed
        out.append(Cut(i, billed, r["billed_end"], scan, cut, r["open_starts_at"],
                       r["open_ends_at"]))
    return out


async def usage_for(
    conn: asyncpg.Connection, rows: Sequence[Any], cuts: Sequence[Cut]
) -> dict[int, list[UsageGroup]]:
    """Usage groups of each account of the batch (index -> groups)."""
    rows = run_inputs.final_view(rows)
    args = _batch_args(rows, cuts)
    args.append([c.starts_at for c in cuts])
    raw = await conn.fetch(usage_sql.USAGE_SQL, *args)
    names: dict[tuple[str, str, str], str] = {}
    by_tenant: dict[str, set[tuple[str, str]]] = {}
    for r in raw:
        if r["plan_id"] is not None and r["rate_prefix"] is not None:
            tenant = rows[r["idx"]]["tenant_id"]
            by_tenant.setdefault(tenant, set()).add((r["plan_id"], r["rate_prefix"]))
    for tenant, groups in by_tenant.items():
        g = sorted(groups)
        for n in await conn.fetch(usage_sql.GROUP_NAMES_SQL, [p for p, _ in g],
                                  [x for _, x in g], tenant):
            names[(tenant, n["plan_id"], n["prefix"])] = n["description"] or f"+{n['prefix']}"
    per: dict[int, list[tuple[str, bool, int, int, int]]] = {}
    for r in raw:
        tenant = rows[r["idx"]]["tenant_id"]
        prefix = r["rate_prefix"]
        name = names.get((tenant, r["plan_id"], prefix)) if prefix is not None else None
        label = name or (f"+{prefix}" if prefix else "other destinations")
        per.setdefault(r["idx"], []).append(
            (label, r["late"], r["calls"], r["seconds"], int(r["amount"]))
        )
    return {i: consolidate(v) for i, v in per.items()}


def next_open(row: Any, a: AccountToBill) -> tuple[int, Any, Any, datetime, datetime]:
    """The period after the one billed: it starts where that one ended and runs to the
    cycle's next boundary (found from the cycle itself, never from a stored index; a period
    cut short by a switch is followed by the rest of its natural period)."""
    nxt = period_of(a.cycle, a.end_date)
    tz = ZoneInfo(row["timezone"])
    return (nxt.index, a.end_date, nxt.end, start_of_day(a.end_date, tz),
            start_of_day(nxt.end, tz))


async def accounts_to_bill(
    conn: asyncpg.Connection, rows: Sequence[Any]
) -> tuple[list[AccountToBill], dict[str, Any]]:
    """The batch's accounts with their plans, history and the tenants' settings."""
    rows = run_inputs.final_view(rows)
    tenants = {r["tenant_id"] for r in rows}
    plans = await run_inputs.plans(conn, tenants)
    settings = await run_inputs.tenant_settings(conn, tenants)
    keys = [(r["tenant_id"], r["account_id"]) for r in rows]
    segs = await run_inputs.segments(
        conn, keys, [r["open_start_date"] for r in rows], [r["open_end_date"] for r in rows],
        plans,
    )
    out: list[AccountToBill] = []
    for r, key in zip(rows, keys, strict=True):
        plan = plans[(r["tenant_id"], r["plan_id"])]
        codes = tuple(r["tax_codes"]) if r["tax_codes"] is not None else plan.tax_codes
        seg = segs.get(key) or [PlanSegment(plan.terms, r["open_start_date"],
                                            r["open_end_date"], r["extensions"], r["seats"])]
        out.append(AccountToBill(
            tenant_id=r["tenant_id"], account_id=r["account_id"],
            currency=r["currency"].strip(), plan=plan, bcd=r["bcd"], index=r["open_index"],
            start_date=r["open_start_date"], end_date=r["open_end_date"],
            starts_at=r["open_starts_at"], ends_at=r["open_ends_at"], tax_codes=codes,
            credit_balance=r["credit_balance"], fees_billed_to=r["fees_billed_to"],
            segments=tuple(seg), extensions=r["extensions"], seats=r["seats"],
            reference_days=r["open_reference_days"],
        ))
    return out, {"settings": settings}


async def build_batch(
    conn: asyncpg.Connection, rows: Sequence[Any], cuts: Sequence[Cut], lock: bool = True
) -> tuple[list[AccountToBill], list[Built], dict[str, Any]]:
    """Everything the batch's invoices are made of, built by the pure core (``lock``: the
    one-time charges it takes, false for a read-only preview)."""
    rows = run_inputs.final_view(rows)
    accounts, ctx = await accounts_to_bill(conn, rows)
    usage = await usage_for(conn, rows, cuts)
    keys = [(a.tenant_id, a.account_id) for a in accounts]
    taxes = await run_inputs.taxes(conn, {a.tenant_id for a in accounts})
    discounts = await run_inputs.discounts(conn, keys, {
        (a.tenant_id, a.account_id): a.plan.terms.plan_id for a in accounts
    })
    dids = await run_inputs.dids(conn, keys)
    finals = [r["final"] for r in rows]
    one_times = await run_inputs.one_times(conn, keys, [
        run_inputs.SWEEP_DATE if f else a.end_date for a, f in zip(accounts, finals, strict=True)
    ], lock)
    built = [
        (build_final if final else build)(
            a, usage.get(i, []), dids=dids.get(k, []), one_times=one_times.get(k, []),
            discounts=discounts.get(k, []), taxes=taxes.get(a.tenant_id, []),
            rounding=ctx["settings"][a.tenant_id][1],
        )
        for i, (a, k, final) in enumerate(zip(accounts, keys, finals, strict=True))
    ]
    return accounts, built, ctx


class InvoiceRun:
    """Bills due accounts batch by batch; ``run_due`` until nothing is due."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Clock, batch_size: int = BATCH) -> None:
        self.pool = pool
        self.clock = clock
        self.batch_size = batch_size

    async def run_due(self, only: tuple[str, str] | None = None) -> RunStats:
        """Bill every due period (of one account, with ``only`` = (tenant, account))."""
        stats = RunStats()
        while await self.bill_batch(stats, only):
            pass
        return stats

    async def bill_batch(self, stats: RunStats, only: tuple[str, str] | None = None) -> bool:
        """Bill one batch; False when nothing was due (or all due rows are being billed)."""
        now = self.clock.now()
        tenant, account = only or (None, None)
        async with self.pool.acquire() as conn, conn.transaction():
            # A batch aggregates ~100 entries per account: sorts and hashes of that size stay
            # in memory instead of spilling to disk at the 4 MB default.
            await conn.execute("SET LOCAL work_mem = '64MB'")
            rows = run_inputs.final_view(
                await conn.fetch(CLAIM_SQL, now, self.batch_size, tenant, account))
            if not rows:
                return False
            cuts = await cuts_for(conn, rows)
            accounts, built, ctx = await build_batch(conn, rows, cuts)
            items: list[tuple[InvoiceHeader, Any]] = []
            for c, a, b in zip(cuts, accounts, built, strict=True):
                stats.calls += sum(ln.calls for ln in b.composed.lines)
                if b.empty and not a.plan.invoice_when_empty:
                    stats.empty += 1
                    continue
                fin, hours = ctx["settings"][a.tenant_id][2:]
                review = now + timedelta(hours=hours) if fin == "review" else now
                h = InvoiceHeader(
                    invoice_id=new_id(), tenant_id=a.tenant_id, account_id=a.account_id,
                    currency=a.currency, issued_on=b.issued_on, due_on=b.due_on,
                    review_until=review, period_index=a.index, period_start=a.start_date,
                    period_end=a.end_date, starts_at=a.starts_at, ends_at=a.ends_at,
                    usage_micros=b.usage_micros, cut_seq=c.cut,
                    usage_credited=b.usage_micros == 0, plan_id=a.plan.terms.plan_id,
                    payment_text=a.plan.payment_text, inputs=inputs_codec.dumps(b.inputs),
                )
                items.append((h, b))
            await insert_many(conn, [(h, b.composed) for h, b in items])
            await self._mark_billed(conn, items)
            await self._advance(conn, rows, cuts, accounts, built, items, now)
        stats.accounts += len(rows)
        stats.invoices += len(items)
        stats.batches += 1
        stats.invoice_ids += [h.invoice_id for h, _ in items]
        return True

    @staticmethod
    async def _mark_billed(conn: asyncpg.Connection, items: Sequence[tuple[InvoiceHeader, Built]]
                           ) -> None:
        one = [(h.tenant_id, cid, h.invoice_id) for h, b in items for cid in b.one_time_ids]
        if one:
            await conn.executemany(
                "UPDATE one_time_charges SET invoice_id = $3 WHERE tenant_id = $1"
                " AND charge_id = $2 AND invoice_id IS NULL", one,
            )
        did = [(h.tenant_id, n, h.invoice_id) for h, b in items for n in b.setup_dids]
        if did:
            await conn.executemany(
                "UPDATE dids SET setup_invoice = $3 WHERE tenant_id = $1 AND number = $2"
                " AND setup_invoice IS NULL", did,
            )
        credit = [(h.tenant_id, h.account_id, b.composed.credit_applied)
                  for h, b in items if b.composed.credit_applied]
        if credit:
            await conn.executemany(
                "UPDATE billing_accounts SET credit_balance = credit_balance - $3"
                " WHERE tenant_id = $1 AND account_id = $2", credit,
            )

    @staticmethod
    async def _advance(
        conn: asyncpg.Connection, rows: Sequence[Any], cuts: Sequence[Cut],
        accounts: Sequence[AccountToBill], built: Sequence[Built], items: Sequence[Any],
        now: datetime,
    ) -> None:
        carry = {
            r["idx"]: r["carry"]
            for r in await conn.fetch(usage_sql.CARRY_SQL, *_batch_args(rows, cuts))
        }
        invoiced = {(h.tenant_id, h.account_id): h.invoice_id for h, _ in items}
        updates, ended = [], []
        for i, (r, c, a, b) in enumerate(zip(rows, cuts, accounts, built, strict=True)):
            idx, s, e, s_at, e_at = next_open(r, a)
            ref = None
            if r["final"]:  # what follows is the rest of its period, if billing ever resumes
                natural = period_of(a.cycle, s)
                ref = (natural.end - natural.start).days if natural.start != s else None
                ended.append((r["tenant_id"], r["account_id"], now,
                              invoiced.get((a.tenant_id, a.account_id))))
            updates.append((
                r["tenant_id"], r["account_id"], idx, s, e, s_at, e_at, c.cut,
                max(a.ends_at, now) if r["final"] else a.ends_at, carry.get(i), b.fees_billed_to,
                ref,
            ))
        await conn.executemany(
            "UPDATE billing_accounts SET open_index = $3, open_start_date = $4,"
            " open_end_date = $5, open_starts_at = $6, open_ends_at = $7, billed_seq = $8,"
            " billed_end = $9, carry_seq = $10, fees_billed_to = $11, open_reference_days = $12"
            " WHERE tenant_id = $1 AND account_id = $2", updates,
        )
        if ended:  # the final period: the account is never due again
            await conn.executemany(
                "UPDATE billing_accounts SET ended_at = $3, final_invoice_id = $4"
                " WHERE tenant_id = $1 AND account_id = $2", ended,
            )
        # A plan change dated at a boundary takes over with the period it starts.
        await conn.execute(PLAN_AT_START_SQL, [u[0] for u in updates], [u[1] for u in updates])
