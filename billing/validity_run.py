"""Prepaid periods applied: expired money leaves the balance, dormant accounts are inactivated
and then closed (Postgres and Redis through the engine's use cases).

``evaluate`` works on one prepaid account whose tenant has a policy. It needs the Postgres
ledger to have caught up with Redis (same seq): the inflows it walks must be the ones the
balance holds, so an account with entries still in flight is left for the next tick. Each due
top-up's expiry is a ``prepaid_expiries`` row written before the money moves (pending, with
the amount and the idempotency key ``expiry:<account>:<seq>:<attempt>``), so a crash or a
second process finishes that same operation and never takes twice; a refusal (a call spent
the money first)
clears the amount to be computed again under the next attempt's key. Dormancy steps are rows of
``prepaid_dormancy`` per episode (the day the balance reached zero): each runs once. Warnings
and steps go to the webhook outbox with a dedup key, for the notifications that follow them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from billing.catalog.lookups import Conn
from billing.validity import Inflow, Policy, dormancy_step, expiring, expiring_soon, parse_policy
from billing.webhooks.outbox import enqueue
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges
from charging_engine.accounts.errors import InsufficientFunds
from charging_engine.accounts.money import MoneyOperations, Operation
from charging_engine.audit import Actor

__all__ = ["ACTOR", "Outcome", "evaluate", "evaluate_due", "policy_for", "validity_of"]

LOGGER = logging.getLogger(__name__)
ACTOR: Final = Actor("validity", "system")

INFLOWS_SQL: Final = """
SELECT e.seq, e.amount, (e.extra->>'valid_until')::timestamptz AS valid_until,
       x.status = 'done' AS expired
FROM ledger_entries e
LEFT JOIN prepaid_expiries x ON x.tenant_id = e.tenant_id AND x.account_id = e.account_id
     AND x.ref = e.seq
WHERE e.tenant_id = $1 AND e.account_id = $2 AND e.amount > 0
ORDER BY e.seq DESC
"""

ZERO_SINCE_SQL: Final = """
SELECT (SELECT max(seq) FROM ledger_entries WHERE tenant_id = $1 AND account_id = $2) AS last,
       (SELECT seq FROM ledger_entries WHERE tenant_id = $1 AND account_id = $2
        AND balance_after > 0 ORDER BY seq DESC LIMIT 1) AS positive
"""


@dataclass(slots=True)
class Outcome:
    account_id: str
    behind: bool = False  # the ledger had not caught up: nothing done this time
    expired: list[tuple[int, int]] = field(default_factory=list)  # (top-up seq, micros)
    steps: list[str] = field(default_factory=list)  # dormancy steps taken


async def policy_for(conn: Conn, tenant_id: str) -> Policy | None:
    doc = await conn.fetchval("SELECT policy FROM prepaid_policies WHERE tenant_id = $1",
                              tenant_id)  # fmt: skip
    return parse_policy(orjson.loads(doc)) if doc is not None else None


async def validity_of(conn: Conn, tenant_id: str, at: datetime, days: int | None = None
                      ) -> datetime | None:  # fmt: skip
    """When a top-up made ``at`` expires: after ``days``, else the tenant policy's default."""
    if days is not None:
        return at + timedelta(days=days)
    policy = await policy_for(conn, tenant_id)
    return policy.valid_until(at) if policy is not None else None


async def evaluate(pool: Any, money: MoneyOperations, accounts: AccountChanges,
                   tenant_id: str, account_id: str, *, at: datetime) -> Outcome | None:  # fmt: skip
    """Expire what is due and take the dormancy steps due (None: no policy, not prepaid)."""
    out = Outcome(account_id)
    policy = await policy_for(pool, tenant_id)  # no connection is held across the engine's
    acct = await pool.fetchrow(  # use cases: they take their own from the same pool
        "SELECT a.kind, a.status, t.timezone FROM accounts a JOIN tenants t USING"
        " (tenant_id) WHERE a.tenant_id = $1 AND a.account_id = $2", tenant_id, account_id)
    if policy is None or acct is None or acct["kind"] != "prepaid":
        return None
    if acct["status"] == AccountStatus.TERMINATED.value:
        return out
    state = await money.store.state(tenant_id, account_id)
    last = await pool.fetchval("SELECT max(seq) FROM ledger_entries WHERE tenant_id = $1"
                               " AND account_id = $2", tenant_id, account_id)  # fmt: skip
    if state is None or (last or 0) < state.seq:
        out.behind = True
        return out
    flows = [Inflow(r["seq"], r["amount"], r["valid_until"], bool(r["expired"]))
             for r in await pool.fetch(INFLOWS_SQL, tenant_id, account_id)]  # fmt: skip
    spendable = state.balance - state.reserved
    for e in expiring(flows, spendable, at):
        taken = await _expire(pool, money, tenant_id, account_id, e.ref, e.amount,
                              e.valid_until, at)  # fmt: skip
        if taken:  # a top-up spent out expires with nothing to take: not reported
            out.expired.append((e.ref, taken))
    soon = expiring_soon(flows, spendable, at, policy.warn_days)
    if soon:
        async with pool.acquire() as conn, conn.transaction():
            for e in soon:
                await enqueue(conn, tenant_id, "balance.expiring", {
                    "account_id": account_id, "amount": e.amount, "unit": "micros",
                    "valid_until": e.valid_until.isoformat()}, at=at,
                    dedup_key=f"balance.expiring:{account_id}:{e.ref}")  # fmt: skip
    today = at.astimezone(ZoneInfo(acct["timezone"])).date()
    # the balance as it stands now: read again only if expiries just moved it
    balance = state.balance if not out.expired else await _balance(money, tenant_id, account_id)
    out.steps = await _dormancy(pool, accounts, policy, tenant_id, account_id, balance,
                                acct["status"], today, at)  # fmt: skip
    await pool.execute(
        "INSERT INTO prepaid_checks (tenant_id, account_id, checked_on) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, account_id) DO UPDATE SET checked_on = excluded.checked_on",
        tenant_id, account_id, today)  # fmt: skip
    return out


async def _expire(pool: Any, money: MoneyOperations, tenant_id: str, account_id: str,
                  ref: int, amount: int, valid_until: datetime, at: datetime
                  ) -> int | None:  # fmt: skip
    """Run one top-up's expiry (once); -> micros taken, or None if it ran before (or another
    evaluation is finishing it)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO prepaid_expiries (tenant_id, account_id, ref, valid_until, amount)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", tenant_id, account_id, ref,
            valid_until, amount,
        )  # fmt: skip
        row = await conn.fetchrow(
            "SELECT status, attempt, amount FROM prepaid_expiries WHERE tenant_id = $1"
            " AND account_id = $2 AND ref = $3 FOR UPDATE", tenant_id, account_id, ref)
        if row["status"] == "done":
            return None
        attempt: int = row["attempt"]
        take: int | None = row["amount"]
        if take is None:  # the last attempt was refused: what is left now
            take = amount
            await conn.execute("UPDATE prepaid_expiries SET amount = $4 WHERE tenant_id = $1"
                               " AND account_id = $2 AND ref = $3", tenant_id, account_id,
                               ref, take)  # fmt: skip
    if take > 0:
        op = Operation.expiry(take, f"top-up #{ref} valid until {valid_until.isoformat()}")
        try:
            await money.perform(ACTOR, tenant_id, account_id, op,
                                f"expiry:{account_id}:{ref}:{attempt}")  # keys are per tenant
        except InsufficientFunds:  # spent meanwhile: computed again next time, a new key
            await pool.execute(
                "UPDATE prepaid_expiries SET attempt = attempt + 1, amount = NULL WHERE"
                " tenant_id = $1 AND account_id = $2 AND ref = $3 AND status = 'pending'",
                tenant_id, account_id, ref)  # fmt: skip
            return None
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.execute(
            "UPDATE prepaid_expiries SET status = 'done', expired_at = $4 WHERE tenant_id = $1"
            " AND account_id = $2 AND ref = $3 AND status = 'pending'", tenant_id, account_id,
            ref, at)  # fmt: skip
        if not done.endswith(" 1"):
            return None  # another evaluation marked it: it reports it
        await enqueue(conn, tenant_id, "balance.expired", {
            "account_id": account_id, "amount": take, "unit": "micros",
            "valid_until": valid_until.isoformat()}, at=at,
            dedup_key=f"balance.expired:{account_id}:{ref}")  # fmt: skip
    return take


async def _zero_since(conn: Conn, tenant_id: str, account_id: str, balance: int,
                      today: date) -> date | None:  # fmt: skip
    """The day the balance reached zero (None: above zero now)."""
    if balance > 0:
        return None
    r = await conn.fetchrow(ZERO_SINCE_SQL, tenant_id, account_id)
    after = (r["positive"] or 0) + 1
    if r["last"] is None or after > r["last"]:  # no entry yet, or the zeroing one in flight
        if r["last"] is None:
            created = await conn.fetchval(
                "SELECT created_at FROM accounts WHERE tenant_id = $1 AND account_id = $2",
                tenant_id, account_id)  # fmt: skip
            return created.date() if created is not None else today
        return today
    ts = await conn.fetchval("SELECT ts FROM ledger_entries WHERE tenant_id = $1 AND"
                             " account_id = $2 AND seq = $3", tenant_id, account_id, after)
    return ts.astimezone(UTC).date() if ts is not None else today


async def _balance(money: MoneyOperations, tenant_id: str, account_id: str) -> int:
    state = await money.store.state(tenant_id, account_id)
    return state.balance if state is not None else 0


async def _dormancy(pool: Any, accounts: AccountChanges, policy: Policy, tenant_id: str,
                    account_id: str, balance: int, status: str, today: date,
                    at: datetime) -> list[str]:  # fmt: skip
    if balance > 0 and status == AccountStatus.INACTIVE.value and await _ours(
            pool, tenant_id, account_id):  # topped up again: back to service
        await accounts.change_status(ACTOR, tenant_id, account_id, AccountStatus.ACTIVE,
                                     "validity: topped up")  # fmt: skip
        return ["reactivated"]
    zero = await _zero_since(pool, tenant_id, account_id, balance, today)
    taken: list[str] = []
    for step in dormancy_step(policy, zero, today):
        assert zero is not None
        seen = await pool.fetchval(
            "SELECT 1 FROM prepaid_dormancy WHERE tenant_id = $1 AND account_id = $2 AND"
            " zero_since = $3 AND step = $4", tenant_id, account_id, zero, step.step)
        if seen:
            continue
        outcome = await _step(pool, accounts, tenant_id, account_id, step.step, status)
        status = {"inactivated": AccountStatus.INACTIVE.value,
                  "terminated": AccountStatus.TERMINATED.value}.get(outcome, status)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO prepaid_dormancy (tenant_id, account_id, zero_since, step, outcome,"
                " at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", tenant_id,
                account_id, zero, step.step, outcome, at)  # fmt: skip
            kind = {"inactivation_warning": "account.inactivation_pending",
                    "termination_warning": "account.termination_pending",
                    "inactivate": "account.inactivated", "terminate": "account.terminated"}
            await enqueue(conn, tenant_id, kind[step.step], {
                "account_id": account_id, "zero_since": zero.isoformat(), "outcome": outcome,
                "due_on": step.on.isoformat()}, at=at,
                dedup_key=f"dormancy:{account_id}:{zero.isoformat()}:{step.step}")  # fmt: skip
        taken.append(f"{step.step}: {outcome}")
    return taken


async def _ours(conn: Conn, tenant_id: str, account_id: str) -> bool:
    """Whether the account's last status change was this module's (an admin's stands)."""
    by = await conn.fetchval(
        "SELECT changed_by FROM account_status_history WHERE tenant_id = $1 AND account_id = $2"
        " ORDER BY id DESC LIMIT 1", tenant_id, account_id)  # fmt: skip
    return bool(by == ACTOR.key_id)


async def _step(conn: Conn, accounts: AccountChanges, tenant_id: str, account_id: str,
                step: str, status: str) -> str:  # fmt: skip
    if step.endswith("_warning"):
        return "warned"
    if step == "inactivate":
        if status != AccountStatus.ACTIVE.value:
            return f"held: {status}"  # an admin's status stands
        await accounts.change_status(ACTOR, tenant_id, account_id, AccountStatus.INACTIVE,
                                     "validity: dormant")  # fmt: skip
        return "inactivated"
    if status != AccountStatus.INACTIVE.value or not await _ours(conn, tenant_id, account_id):
        return f"held: {status}"
    try:
        await accounts.close(ACTOR, tenant_id, account_id, "validity: dormant, closed")
    except Exception as e:  # not closable (money left, a reservation): reported, kept
        return f"held: {e}"[:200]
    return "terminated"


CANDIDATES_SQL: Final = """
WITH a AS (
    SELECT a.tenant_id, a.account_id, a.status, p.policy, c.checked_on,
           (($1::timestamptz) AT TIME ZONE t.timezone)::date AS today,
           (SELECT balance_after FROM ledger_entries l WHERE l.tenant_id = a.tenant_id
            AND l.account_id = a.account_id ORDER BY l.seq DESC LIMIT 1) AS balance
    FROM accounts a JOIN prepaid_policies p USING (tenant_id) JOIN tenants t USING (tenant_id)
    LEFT JOIN prepaid_checks c USING (tenant_id, account_id)
    WHERE a.kind = 'prepaid' AND a.status <> 'terminated'
)
SELECT tenant_id, account_id FROM a
WHERE EXISTS (SELECT 1 FROM ledger_entries e WHERE e.tenant_id = a.tenant_id
              AND e.account_id = a.account_id AND e.kind = 'topup' AND e.extra ? 'valid_until'
              AND (e.extra->>'valid_until')::timestamptz
                  <= $1::timestamptz + make_interval(days => CASE WHEN a.checked_on >= a.today
                     THEN 0 ELSE COALESCE((a.policy->>'warn_days')::int, 7) END)
              AND NOT EXISTS (SELECT 1 FROM prepaid_expiries x WHERE x.tenant_id = e.tenant_id
                              AND x.account_id = e.account_id AND x.ref = e.seq
                              AND x.status = 'done'))
   OR (a.status = 'inactive' AND COALESCE(a.balance, 0) > 0)
   OR ((a.checked_on IS NULL OR a.checked_on < a.today)
       AND a.policy->>'inactivate_after' IS NOT NULL AND COALESCE(a.balance, 0) <= 0)
"""


async def evaluate_due(pool: Any, money: MoneyOperations, accounts: AccountChanges, *,
                       at: datetime, concurrency: int = 8) -> int:  # fmt: skip
    """Evaluate every prepaid account something may be due for; -> accounts changed."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(r: Any) -> bool:
        async with gate:
            try:
                o = await evaluate(pool, money, accounts, r["tenant_id"], r["account_id"], at=at)
            except Exception:  # one account's trouble never stops the others
                LOGGER.exception("validity of %s/%s failed", r["tenant_id"], r["account_id"])
                return False
        return o is not None and bool(o.expired or o.steps)

    rows = await pool.fetch(CANDIDATES_SQL, at)
    return sum(await asyncio.gather(*(one(r) for r in rows)))
