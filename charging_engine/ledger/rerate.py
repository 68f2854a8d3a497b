"""Re-rating a period after a rate change: settled calls priced again, differences booked once.

The calls of one tenant and plan that started in ``[since, until)`` are read from Postgres in
pages, rated in batch with the corrected plan (``rating.batch``: the same rules as live rating)
and compared with what each call is charged now: its settled ``cost`` plus every ``correction``
ledger entry of the call (a CDR correction, an earlier re-rate). Each difference is booked as
a ``correction`` through the Redis charging functions, so the balance and the ledger move
together, under the idempotency key ``rerate:<run id>:<call id>``; settlement then applies it to
``calls``.

Running a run id again changes nothing: its corrections already in the ledger leave no
difference, and those still in Redis are refused as duplicates. Earlier corrections must be in
the ledger before differences are computed, so the settlement backlog present at the start is
drained (or waited for) first, and one re-rate per tenant runs at a time (an advisory lock).
Calls whose destination has no rate in the corrected plan are left alone and counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import numpy as np

from charging_engine.balance.keys import stream_key
from charging_engine.balance.store import BalanceStore
from charging_engine.ids import InvalidId, check_id
from charging_engine.ledger.settlement import Settlement
from charging_engine.rating.batch import BatchRater, Destinations
from charging_engine.rating.model import RatePlan
from charging_engine.rating.numbers import NumberError, normalize

log = logging.getLogger("charging_engine.rerate")

PAGE: Final = 20_000  # calls read, rated and corrected per step: bounded memory
CONCURRENCY: Final = 256  # corrections in flight (the store coalesces them into pipelines)
SETTLE_WAIT_S: Final = 60.0  # how long the earlier settlement backlog may take to drain

# Keyset pages in (started_at, call_id) order over calls_tenant_time_idx. A call's current
# charge is its cost plus all its correction entries (the column keeps only the last one).
_PAGE_SQL: Final = """
SELECT c.call_id, c.account_id, c.destination, c.started_at,
       floor(extract(epoch FROM c.started_at) * 1000)::bigint AS start_ms,
       coalesce(c.cdr_seconds, c.duration) AS seconds, c.cdr_seconds, c.cost,
       coalesce((SELECT -sum(e.amount) FROM ledger_entries e
                 WHERE e.tenant_id = c.tenant_id AND e.call_id = c.call_id
                   AND e.account_id = c.account_id AND e.kind = 'correction'), 0)::bigint
           AS corrected
FROM calls c
WHERE c.tenant_id = $1 AND c.plan_id = $2 AND c.started_at >= $3 AND c.started_at < $4
  AND (c.started_at, c.call_id) > ($5, $6)
ORDER BY c.started_at, c.call_id
LIMIT $7
"""


class RerateError(ValueError):
    """A re-rate that cannot run: unknown tenant, bad period or run id, currency mismatch,
    another re-rate of the tenant running, or a settlement backlog that does not drain."""


@dataclass(frozen=True, slots=True)
class RerateSummary:
    """What one invocation did; ``total_delta`` is micros added to charges (negative: refunds)."""

    run_id: str
    tenant: str
    plan_id: str
    examined: int = 0  # calls of the tenant and plan in the period
    corrected: int = 0  # corrections booked by this invocation
    duplicates: int = 0  # corrections this run id had already booked (a re-run)
    unchanged: int = 0  # same price under the corrected plan
    unrated: int = 0  # no rate in the corrected plan: left as charged
    incomplete: int = 0  # no valid destination, start or duration recorded: cannot be priced
    failed: int = 0  # the account is missing in Redis: nothing booked
    total_delta: int = 0

    def __str__(self) -> str:
        return (
            f"re-rate {self.run_id} of tenant {self.tenant}, plan {self.plan_id}: "
            f"{self.examined} calls examined, {self.corrected} corrected "
            f"(total delta {self.total_delta} micros), {self.duplicates} already corrected by "
            f"this run, {self.unchanged} unchanged, {self.unrated} without a rate, "
            f"{self.incomplete} incomplete, {self.failed} failed"
        )


async def tenant_currency_and_zone(pool: asyncpg.Pool, tenant: str) -> tuple[str, ZoneInfo]:
    """The tenant's currency and timezone; RerateError for an unknown tenant."""
    row = await pool.fetchrow("SELECT currency, timezone FROM tenants WHERE tenant_id = $1",
                              tenant)  # fmt: skip
    if row is None:
        raise RerateError(f"tenant {tenant!r} does not exist")
    try:
        return str(row["currency"]), ZoneInfo(row["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RerateError(f"tenant {tenant!r} has an unknown timezone: {exc}") from None


async def rerate(
    store: BalanceStore,
    pool: asyncpg.Pool,
    settlement: Settlement,
    *,
    tenant: str,
    plan: RatePlan,
    since: datetime,
    until: datetime,
    run_id: str,
    now_ms: int | None = None,
    page: int = PAGE,
    settle_wait_s: float = SETTLE_WAIT_S,
) -> RerateSummary:
    """Re-rate the calls of ``tenant`` rated under ``plan.plan_id`` that started in
    ``[since, until)`` with ``plan``, booking each difference once (see the module doc)."""
    try:
        check_id("tenant", tenant)
        check_id("run id", run_id)
    except InvalidId as exc:
        raise RerateError(str(exc)) from None
    if since.tzinfo is None or until.tzinfo is None:
        raise RerateError("since and until need a UTC offset (aware datetimes)")
    if not since < until:
        raise RerateError(f"empty period: since {since.isoformat()} is not before until "
                          f"{until.isoformat()}")  # fmt: skip
    if page < 1:
        raise RerateError("page must be >= 1")
    currency, zone = await tenant_currency_and_zone(pool, tenant)
    if plan.currency != currency:
        raise RerateError(f"plan {plan.plan_id!r} is in {plan.currency}, tenant {tenant!r} "
                          f"in {currency}")  # fmt: skip
    rater = BatchRater(plan)
    stamp = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    lock = "SELECT %s(hashtextextended('rerate:' || $1, 0))"
    counts = _Counts()
    async with pool.acquire() as conn:  # holds the tenant's lock and reads the pages
        if not await conn.fetchval(lock % "pg_try_advisory_lock", tenant):
            raise RerateError(f"another re-rate of tenant {tenant!r} is running")
        try:
            await settle_backlog(settlement, settle_wait_s)
            cursor: tuple[datetime, str] = (since, "")
            while rows := await conn.fetch(_PAGE_SQL, tenant, plan.plan_id, since, until,
                                           cursor[0], cursor[1], page):  # fmt: skip
                cursor = (rows[-1]["started_at"], rows[-1]["call_id"])
                await _correct_page(store, rater, zone, rows, counts, tenant=tenant,
                                    plan_id=plan.plan_id, run_id=run_id, now_ms=stamp)
            try:  # best effort: the corrections are safe in Redis whatever happens here
                await settle_backlog(settlement, settle_wait_s)
            except RerateError as exc:
                log.warning("re-rate %s booked its corrections but %s", run_id, exc)
        finally:
            await conn.execute(lock % "pg_advisory_unlock", tenant)
    return RerateSummary(run_id, tenant, plan.plan_id, **dataclasses.asdict(counts))


@dataclass(slots=True)
class _Counts:
    examined: int = 0
    corrected: int = 0
    duplicates: int = 0
    unchanged: int = 0
    unrated: int = 0
    incomplete: int = 0
    failed: int = 0
    total_delta: int = 0


async def _correct_page(
    store: BalanceStore, rater: BatchRater, zone: ZoneInfo, rows: Sequence[asyncpg.Record],
    counts: _Counts, *, tenant: str, plan_id: str, run_id: str, now_ms: int,
) -> None:
    """Rate one page in batch and book every difference, CONCURRENCY at a time."""
    counts.examined += len(rows)
    usable = [r for r in rows
              if r["destination"] and r["seconds"] is not None and r["start_ms"] is not None]
    try:
        numbers = Destinations.from_strings([r["destination"] for r in usable])
    except NumberError:  # rare: find the rows whose destination is not a number, skip them
        usable = [r for r in usable if _is_number(r["destination"])]
        numbers = Destinations.from_strings([r["destination"] for r in usable])
    counts.incomplete += len(rows) - len(usable)
    if not usable:
        return
    priced = rater.rate(
        numbers,
        np.fromiter((r["start_ms"] for r in usable), dtype=np.int64, count=len(usable)),
        np.fromiter((r["seconds"] for r in usable), dtype=np.int64, count=len(usable)),
        zone,
    )
    todo: list[tuple[asyncpg.Record, int, int, int]] = []
    for row, index, billed, new_cost in zip(usable, priced.rate_index.tolist(),
                                            priced.billed.tolist(), priced.cost.tolist(),
                                            strict=True):  # fmt: skip
        if index < 0:
            counts.unrated += 1
            continue
        delta = new_cost - (row["cost"] + row["corrected"])
        if delta == 0:
            counts.unchanged += 1
        else:
            todo.append((row, index, billed, delta))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def book(row: asyncpg.Record, index: int, billed: int, delta: int) -> None:
        charged = row["cost"] + row["corrected"]
        extra: dict[str, Any] = {
            "source": "rerate", "run": run_id, "plan": plan_id,
            "prefix": rater.rates[index].prefix, "billed": billed,
            "from_cost": charged, "to_cost": charged + delta, "delta": delta,
        }
        if row["cdr_seconds"] is not None:  # settlement copies it back to calls.cdr_seconds
            extra["to_seconds"] = row["cdr_seconds"]
        async with gate:
            res = await store.credit(
                tenant, row["account_id"], kind="correction", amount=-delta,
                idem_key=f"rerate:{run_id}:{row['call_id']}", extra=extra, now_ms=now_ms,
                call_id=row["call_id"],
            )
        if res.status == "ok":
            counts.corrected += 1
            counts.total_delta += delta
        elif res.status == "duplicate":
            counts.duplicates += 1
        else:
            counts.failed += 1
            log.error("re-rate %s: call %s of account %s not corrected (%s)",
                      run_id, row["call_id"], row["account_id"], res.status)  # fmt: skip

    try:
        async with asyncio.TaskGroup() as tg:
            for item in todo:
                tg.create_task(book(*item))
    except BaseExceptionGroup as group:  # Redis unreachable: re-running the run id resumes
        raise group.exceptions[0] from None


def _is_number(destination: str) -> bool:
    try:
        normalize(destination)
    except NumberError:
        log.warning("call destination %r is not a number: not re-rated", destination)
        return False
    return True


async def settle_backlog(settlement: Settlement, within_s: float) -> None:
    """Wait until every ledger entry already in the streams is in Postgres, draining them too.

    Settled entries are deleted from their stream, so the backlog present now is gone when no
    entry up to each stream's current last id remains. Entries held by another live settlement
    consumer are committed by it; a dead one's are reclaimed after ``reclaim_idle_ms``.
    """
    redis = settlement.redis
    marks: dict[str, Any] = {}  # stream -> its last entry id when we started
    for b in range(settlement.buckets):
        last = await redis.xrevrange(stream_key(b), count=1)
        if last:
            marks[stream_key(b)] = last[0][0]
    deadline = time.monotonic() + within_s
    while marks:
        await settlement.drain_once()
        for key, mark in list(marks.items()):
            if not await redis.xrange(key, min="-", max=mark, count=1):
                del marks[key]
        if not marks:
            return
        if time.monotonic() > deadline:
            raise RerateError(
                f"settlement backlog not drained within {within_s:.0f}s "
                f"({len(marks)} stream(s) behind); is Postgres reachable?"
            )
        await asyncio.sleep(0.05)  # a live consumer holds the rest: poll, do not spin


__all__ = [
    "RerateError",
    "RerateSummary",
    "rerate",
    "settle_backlog",
    "tenant_currency_and_zone",
]
