"""The suspension ladder applied (Postgres adapter, and the engine's account status use case).

``evaluate`` places one account on its ladder (the bill plan's, else the tenant's): in one
transaction, with the account's billing row locked, it reads what the account owes past due,
finds its step (``billing.dunning``), and on entering a step runs that step's actions once per
overdue episode (a ``dunning_entries`` row is the proof: a late fee as a one-time charge on the
next invoice, a ``dunning.step_entered`` event). When nothing is overdue any more the episode
ends (``dunning.cleared``). Then the account status the ladder wants is set through the engine
(``AccountChanges.change_status``, which pushes it to Redis at once), but only if the current
status is ``active`` or was set by the ladder itself: a status an admin set by hand is left
alone until the admin hands the account back (``resume``). A terminating step's termination
(final invoice, cancellation charge, close) is ``billing.termination``'s, in the same
transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import orjson

from billing import termination
from billing.catalog.lookups import Conn
from billing.dunning import (
    Ladder,
    Overdue,
    Step,
    entered,
    late_fee,
    parse_ladder,
    step_for,
    terminates,
    wanted_status,
)
from billing.webhooks.outbox import enqueue
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges
from charging_engine.audit import Actor

__all__ = ["ACTOR", "Placement", "evaluate", "evaluate_due", "ladder_for", "resume"]

LOGGER = logging.getLogger(__name__)
ACTOR: Final = Actor("dunning", "system")
REASON_PREFIX: Final = "dunning: "

OVERDUE_SQL: Final = """
SELECT min(COALESCE(due_on, issued_on)) AS oldest, COALESCE(sum(open), 0)::bigint AS amount,
       count(*)::int AS invoices
FROM invoice_open
WHERE tenant_id = $1 AND account_id = $2 AND open > 0 AND COALESCE(due_on, issued_on) < $3
"""


@dataclass(frozen=True, slots=True)
class Placement:
    account_id: str
    step: int | None
    step_name: str | None
    entered: tuple[str, ...]  # steps entered by this evaluation
    status: AccountStatus | None  # the status set by this evaluation, if any
    held: bool  # the ladder wanted another status but an admin's manual one stands
    termination: termination.State | None = None  # its state after this evaluation, if any


async def ladder_for(conn: Conn, tenant_id: str, account_id: str) -> Ladder | None:
    r = await conn.fetchrow(
        "SELECT l.steps FROM billing_accounts b JOIN dunning_ladders l ON l.tenant_id ="
        " b.tenant_id AND l.plan_id IN (b.plan_id, '') WHERE b.tenant_id = $1"
        " AND b.account_id = $2 ORDER BY l.plan_id DESC LIMIT 1", tenant_id, account_id,
    )  # fmt: skip
    return parse_ladder(orjson.loads(r["steps"])) if r is not None else None


async def _ladder_owns_status(conn: Conn, tenant_id: str, account_id: str,
                              episode: int) -> tuple[str, bool]:  # fmt: skip
    """(current status, whether the ladder may change it): it was last set by the ladder, or it
    is ``active`` and no one set it by hand since this overdue episode began."""
    r = await conn.fetchrow(
        "SELECT a.status, h.changed_by AS by, h.id AS mark, (SELECT min(e.status_mark)"
        " FROM dunning_entries e WHERE e.tenant_id = a.tenant_id AND e.account_id ="
        " a.account_id AND e.episode = $3) AS began FROM accounts a LEFT JOIN LATERAL ("
        " SELECT changed_by, id FROM account_status_history x WHERE x.tenant_id ="
        " a.tenant_id AND x.account_id = a.account_id ORDER BY x.id DESC LIMIT 1) h ON true"
        " WHERE a.tenant_id = $1 AND a.account_id = $2", tenant_id, account_id, episode,
    )  # fmt: skip
    status = r["status"]
    if r["by"] == ACTOR.key_id:
        return status, True
    by_hand_lately = r["began"] is not None and r["mark"] is not None and r["mark"] > r["began"]
    return status, status == AccountStatus.ACTIVE.value and not by_hand_lately


async def evaluate(conn: Conn, accounts: AccountChanges, tenant_id: str, account_id: str, *,
                   today: date, at: datetime) -> Placement | None:  # fmt: skip
    """Place the account on its ladder now (None: no ladder applies, or no billing)."""
    async with conn.transaction():
        locked = await conn.fetchval(
            "SELECT plan_id FROM billing_accounts WHERE tenant_id = $1 AND account_id = $2"
            " FOR UPDATE", tenant_id, account_id,
        )  # fmt: skip
        if locked is None:
            return None
        ladder = await ladder_for(conn, tenant_id, account_id)
        if ladder is None:
            return None
        o = await conn.fetchrow(OVERDUE_SQL, tenant_id, account_id, today)
        overdue = Overdue(o["oldest"], o["amount"], o["invoices"])
        target = step_for(ladder, overdue, today)
        await conn.execute(
            "INSERT INTO account_dunning (tenant_id, account_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING", tenant_id, account_id,
        )  # fmt: skip
        cur = await conn.fetchrow(
            "SELECT step, episode FROM account_dunning WHERE tenant_id = $1 AND account_id = $2",
            tenant_id, account_id,
        )  # fmt: skip
        names = await _enter(conn, ladder, tenant_id, account_id, cur["step"], target,
                             cur["episode"], overdue, today, at)  # fmt: skip
        episode = cur["episode"]
        if target is None and cur["step"] is not None:  # cleared: the next overdue is new
            episode += 1
            await enqueue(conn, tenant_id, "dunning.cleared", {"account_id": account_id,
                          "step": ladder.steps[cur["step"]].name}, at=at,
                          dedup_key=f"dunning.cleared:{account_id}:{cur['episode']}")  # fmt: skip
        await conn.execute(
            "UPDATE account_dunning SET step = $3, step_name = $4, episode = $5, evaluated_at"
            " = $6, entered_at = CASE WHEN step IS DISTINCT FROM $3 THEN $6 ELSE entered_at END"
            " WHERE tenant_id = $1 AND account_id = $2", tenant_id, account_id, target,
            ladder.steps[target].name if target is not None else None, episode, at,
        )  # fmt: skip
        status, owned = await _ladder_owns_status(conn, tenant_id, account_id, cur["episode"])
        ending = await termination.settle(
            conn, accounts, ACTOR, tenant_id, account_id, terminal=terminates(ladder, target),
            owned=owned, status=status, episode=cur["episode"], today=today, at=at,
            reason=REASON_PREFIX + (ladder.steps[target].name if target is not None else ""),
        )  # fmt: skip
    if ending == "closed":
        status = AccountStatus.TERMINATED.value
    wanted = wanted_status(ladder, target)
    changed: AccountStatus | None = None
    held = False
    if status == AccountStatus.TERMINATED.value:
        pass  # closed for good: nothing to set
    elif status != wanted.value:
        if owned:
            step_name = ladder.steps[target].name if target is not None else "cleared"
            await accounts.change_status(ACTOR, tenant_id, account_id, wanted,
                                         REASON_PREFIX + step_name)  # fmt: skip
            changed = wanted
        else:
            held = True
    return Placement(account_id, target, ladder.steps[target].name if target is not None
                     else None, names, changed, held, ending)  # fmt: skip


async def _enter(conn: Conn, ladder: Ladder, tenant_id: str, account_id: str,
                 before: int | None, after: int | None, episode: int, overdue: Overdue,
                 today: date, at: datetime) -> tuple[str, ...]:  # fmt: skip
    names: list[str] = []
    for i in entered(before, after):
        step = ladder.steps[i]
        fee = late_fee(step.late_fee, overdue.amount) if step.late_fee else 0
        charge_id = _charge_id(tenant_id, account_id, episode, i) if fee else None
        done = await conn.fetchval(
            "INSERT INTO dunning_entries (tenant_id, account_id, episode, step, step_name,"
            " entered_at, overdue_amount, late_fee, charge_id, status_mark) VALUES ($1, $2, $3,"
            " $4, $5, $6, $7, $8, $9, (SELECT COALESCE(max(id), 0) FROM account_status_history"
            " WHERE tenant_id = $1 AND account_id = $2)) ON CONFLICT DO NOTHING RETURNING 1",
            tenant_id, account_id, episode,
            i, step.name, at, overdue.amount, fee, charge_id,
        )  # fmt: skip
        if done is None:
            continue  # entered before in this episode: its actions ran then
        names.append(step.name)
        if fee:
            await conn.execute(
                "INSERT INTO one_time_charges (tenant_id, charge_id, account_id, kind,"
                " description, amount, charge_on, created_by) VALUES ($1, $2, $3, 'late_fee',"
                " $4, $5, $6, $7)", tenant_id, charge_id, account_id,
                f"Late payment fee ({step.name})", fee, today, ACTOR.key_id,
            )  # fmt: skip
        if step.notify:
            await enqueue(conn, tenant_id, "dunning.step_entered", _event(
                account_id, step, overdue, fee), at=at,
                dedup_key=f"dunning.step_entered:{account_id}:{episode}:{i}")  # fmt: skip
    return tuple(names)


def _event(account_id: str, step: Step, overdue: Overdue, fee: int) -> dict[str, Any]:
    return {"account_id": account_id, "step": step.name,
            "status": step.status.value if step.status else None,
            "overdue_amount": overdue.amount,
            "overdue_invoices": overdue.invoices, "late_fee": fee,
            "oldest_due_on": overdue.oldest_due.isoformat() if overdue.oldest_due else None}


def _charge_id(tenant_id: str, account_id: str, episode: int, step: int) -> str:
    key = f"{tenant_id}\0{account_id}\0{episode}\0{step}".encode()
    return "chg_dun" + hashlib.sha256(key).hexdigest()[:30]


CANDIDATES_SQL: Final = """
WITH c AS (
    SELECT b.tenant_id, b.account_id, t.timezone, l.steps, d.step,
           ((($1::timestamptz) AT TIME ZONE t.timezone)::date) AS today
    FROM billing_accounts b
    JOIN tenants t USING (tenant_id)
    JOIN LATERAL (SELECT steps FROM dunning_ladders l WHERE l.tenant_id = b.tenant_id
                  AND l.plan_id IN (b.plan_id, '') ORDER BY l.plan_id DESC LIMIT 1) l ON true
    LEFT JOIN account_dunning d USING (tenant_id, account_id)
)
SELECT c.*, o.oldest, COALESCE(o.amount, 0)::bigint AS amount, COALESCE(o.invoices, 0) AS n,
       a.status, h.changed_by AS last_by, EXISTS (SELECT 1 FROM account_terminations x
           WHERE x.tenant_id = c.tenant_id AND x.account_id = c.account_id
           AND x.state = 'pending') AS closing
FROM c
JOIN accounts a USING (tenant_id, account_id)
LEFT JOIN LATERAL (
    SELECT min(COALESCE(due_on, issued_on)) AS oldest, sum(open) AS amount,
           count(*)::int AS invoices
    FROM invoice_open x WHERE x.tenant_id = c.tenant_id AND x.account_id = c.account_id
      AND x.open > 0 AND COALESCE(x.due_on, x.issued_on) < c.today) o ON true
LEFT JOIN LATERAL (
    SELECT changed_by FROM account_status_history s WHERE s.tenant_id = c.tenant_id
      AND s.account_id = c.account_id ORDER BY s.id DESC LIMIT 1) h ON true
WHERE c.step IS NOT NULL OR o.oldest IS NOT NULL
"""


def _needs(ladder: Ladder, r: Any) -> bool:
    """Whether an account's step or status is not what the ladder wants, or its termination
    waits to be closed (a cheap screen; the per-account ``evaluate`` decides, under its
    lock)."""
    target = step_for(ladder, Overdue(r["oldest"], r["amount"], r["n"]), r["today"])
    if target != r["step"] or r["closing"]:
        return True
    if r["status"] == AccountStatus.TERMINATED.value:
        return False
    owned = r["last_by"] == ACTOR.key_id or r["status"] == AccountStatus.ACTIVE.value
    return bool(owned and wanted_status(ladder, target).value != r["status"])


async def evaluate_due(pool: Any, accounts: AccountChanges, *, at: datetime,
                       concurrency: int = 8) -> int:  # fmt: skip
    """The time-based pass (each billing tick). One set-based query screens every account
    that owes something past due or is on a step; only those whose step or status must change
    are evaluated, ``concurrency`` at a time (each under its own account's lock).
    -> accounts that moved."""
    ladders: dict[str, Ladder] = {}
    due: list[Any] = []
    for r in await pool.fetch(CANDIDATES_SQL, at):
        ladder = ladders.get(r["steps"])
        if ladder is None:
            ladder = ladders[r["steps"]] = parse_ladder(orjson.loads(r["steps"]))
        if _needs(ladder, r):
            due.append(r)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(r: Any) -> bool:
        async with gate, pool.acquire() as conn:
            try:
                p = await evaluate(conn, accounts, r["tenant_id"], r["account_id"],
                                   today=r["today"], at=at)  # fmt: skip
            except Exception:  # one account's trouble never stops the others
                LOGGER.exception("dunning of %s/%s failed", r["tenant_id"], r["account_id"])
                return False
        return p is not None and (bool(p.entered) or p.status is not None
                                  or p.termination in ("closed", "cancelled"))

    return sum(await asyncio.gather(*(one(r) for r in due)))


async def resume(conn: Conn, accounts: AccountChanges, tenant_id: str, account_id: str,
                 actor: Actor, *, today: date, at: datetime) -> Placement | None:  # fmt: skip
    """An admin hands an account back to the ladder: its manual status is overridden now."""
    episode = await conn.fetchval("SELECT episode FROM account_dunning WHERE tenant_id = $1"
                                  " AND account_id = $2", tenant_id, account_id) or 1  # fmt: skip
    status, owned = await _ladder_owns_status(conn, tenant_id, account_id, episode)
    if not owned:
        await conn.execute(
            "INSERT INTO account_status_history (tenant_id, account_id, from_status,"
            " to_status, reason, changed_at, changed_by) VALUES ($1, $2, $3, $3, $4, $5, $6)",
            tenant_id, account_id, status, f"handed back to the ladder by {actor.key_id}", at,
            ACTOR.key_id,
        )  # fmt: skip
    return await evaluate(conn, accounts, tenant_id, account_id, today=today, at=at)
