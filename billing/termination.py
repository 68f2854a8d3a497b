"""Termination, the suspension ladder's last step (Postgres adapter, and the engine's close).

While an account is on its ladder's terminating step and the ladder owns its status, a
termination of that overdue episode runs (an ``account_terminations`` row; restarted, not
repeated, if the same episode enters the step again): service is barred at once (the ladder
sets ``suspended``), inside the plan's minimum term a cancellation fee is charged for the final
invoice (keyed by the episode: at most once), and the account's billing ends today
(``billing_accounts.ends_on``): the invoice run bills the period up to and including today as
the final invoice, then nothing more. Once that invoice is finalized and its usage given back
to the balance, the account is closed through the engine (``AccountChanges.close``, which
refuses while the Redis balance or reservations are not zero: each evaluation tries again and
says what it waits for). A closed account is terminated for good (``account.terminated``).

Before it is closed, a termination is cancelled when the account leaves the step (its debt
paid, or a payment moves it to a milder step) or an admin sets its status by hand: billing
resumes (the rest of the period is billed as usual), and the cancellation charge goes unless an
invoice took it already. Everything here runs in ``dunning_run.evaluate``'s transaction, under
its lock of the account's billing row.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from billing.catalog.lookups import Conn
from billing.cycles import start_of_day
from billing.webhooks.outbox import enqueue
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges
from charging_engine.accounts.errors import BalanceNotZero
from charging_engine.audit import Actor

__all__ = ["State", "cancellation_fee", "charge_id", "current", "settle"]

LOGGER = logging.getLogger(__name__)
State = Literal["pending", "closed", "cancelled"]

PLAN_SQL: Final = """
SELECT p.plan_id, p.name, p.minimum_term_days, p.cancellation_fee, t.timezone,
       (SELECT min(h.from_date) FROM account_plan_history h WHERE h.tenant_id = b.tenant_id
        AND h.account_id = b.account_id) AS enrolled
FROM billing_accounts b
JOIN bill_plans p ON p.tenant_id = b.tenant_id AND p.plan_id = b.plan_id
JOIN tenants t ON t.tenant_id = b.tenant_id
WHERE b.tenant_id = $1 AND b.account_id = $2
"""

FINAL_SQL: Final = """
SELECT b.ended_at, b.final_invoice_id, i.status, i.usage_credited
FROM billing_accounts b LEFT JOIN invoices i ON i.invoice_id = b.final_invoice_id
WHERE b.tenant_id = $1 AND b.account_id = $2
"""


def cancellation_fee(enrolled: date | None, term_days: int, fee: int, today: date) -> int:
    """The fee for terminating on ``today``: the plan's, while its minimum term (counted from
    the first enrollment) still runs; else nothing."""
    if enrolled is None or term_days <= 0 or fee <= 0:
        return 0
    return fee if enrolled + timedelta(days=term_days) > today else 0


def charge_id(tenant_id: str, account_id: str, episode: int) -> str:
    """The cancellation charge's id: one per overdue episode, however often it is entered."""
    key = f"{tenant_id}\0{account_id}\0{episode}\0cancellation".encode()
    return "chg_can" + hashlib.sha256(key).hexdigest()[:30]


async def current(conn: Conn, tenant_id: str, account_id: str) -> Any:
    """The account's latest termination (any state), or None."""
    return await conn.fetchrow(
        "SELECT * FROM account_terminations WHERE tenant_id = $1 AND account_id = $2"
        " ORDER BY episode DESC LIMIT 1", tenant_id, account_id,
    )  # fmt: skip


async def settle(conn: Conn, accounts: AccountChanges, actor: Actor, tenant_id: str,
                 account_id: str, *, terminal: bool, owned: bool, status: str, episode: int,
                 reason: str, today: date, at: datetime) -> State | None:  # fmt: skip
    """Start, advance or cancel the account's termination as its ladder placement says
    (``terminal``: on the terminating step; ``owned``: the ladder may set its status);
    -> the termination's state now, None when there is none."""
    row = await conn.fetchrow(
        "SELECT * FROM account_terminations WHERE tenant_id = $1 AND account_id = $2"
        " AND state = 'pending' FOR UPDATE", tenant_id, account_id,
    )  # fmt: skip
    if status == AccountStatus.TERMINATED.value:  # closed (maybe the record of it was lost)
        if row is not None:
            await _closed(conn, row, at)
            return "closed"
        return None
    if not terminal or not owned:
        if row is not None:
            await _cancel(conn, row, at)
            return "cancelled"
        return None
    if row is None:
        row = await _start(conn, actor, tenant_id, account_id, episode, today, at)
        if row is None:
            return None
    waiting = await _waiting_for(conn, tenant_id, account_id)
    if waiting is None:
        try:
            await accounts.close(actor, tenant_id, account_id, reason)
        except BalanceNotZero as e:
            waiting = f"a zero balance (balance {e.balance}, reserved {e.reserved} micros)"
        except Exception as e:  # Redis away: the next evaluation tries again
            LOGGER.warning("closing %s/%s failed: %r", tenant_id, account_id, e)
            waiting = f"the close to succeed ({type(e).__name__})"
        else:
            await _closed(conn, row, at)
            return "closed"
    await conn.execute(
        "UPDATE account_terminations SET attempted_at = $4, waiting_for = $5 WHERE tenant_id"
        " = $1 AND account_id = $2 AND episode = $3", tenant_id, account_id, row["episode"],
        at, waiting,
    )  # fmt: skip
    return "pending"


async def _start(conn: Conn, actor: Actor, tenant_id: str, account_id: str, episode: int,
                 today: date, at: datetime) -> Any:  # fmt: skip
    """The termination's actions, once per start: the cancellation charge, the end of
    billing. None: this episode's termination was closed already."""
    row = await conn.fetchrow(
        "INSERT INTO account_terminations (tenant_id, account_id, episode, ends_on, started_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, account_id, episode) DO UPDATE"
        " SET state = 'pending', ends_on = excluded.ends_on, started_at = excluded.started_at,"
        " cancelled_at = NULL, waiting_for = NULL WHERE account_terminations.state ="
        " 'cancelled' RETURNING *", tenant_id, account_id, episode, today, at,
    )  # fmt: skip
    if row is None:
        return None
    p = await conn.fetchrow(PLAN_SQL, tenant_id, account_id)
    fee = cancellation_fee(p["enrolled"], p["minimum_term_days"], p["cancellation_fee"], today)
    charge: str | None = None
    if fee:
        charge = charge_id(tenant_id, account_id, episode)
        await conn.execute(
            "INSERT INTO one_time_charges (tenant_id, charge_id, account_id, kind, description,"
            " amount, charge_on, created_by) VALUES ($1, $2, $3, 'cancellation', $4, $5, $6, $7)"
            " ON CONFLICT DO NOTHING", tenant_id, charge, account_id,
            f"Early cancellation fee ({p['name'] or p['plan_id']}: minimum term of"
            f" {p['minimum_term_days']} days)", fee, today, actor.key_id,
        )  # fmt: skip
    ends_at = start_of_day(today + timedelta(days=1), ZoneInfo(p["timezone"]))
    await conn.execute(
        "UPDATE billing_accounts SET ends_on = $3, ends_at = $4, ended_at = NULL,"
        " final_invoice_id = NULL WHERE tenant_id = $1 AND account_id = $2",
        tenant_id, account_id, today, ends_at,
    )  # fmt: skip
    return await conn.fetchrow(
        "UPDATE account_terminations SET cancellation_fee = $4, charge_id = $5 WHERE tenant_id"
        " = $1 AND account_id = $2 AND episode = $3 RETURNING *", tenant_id, account_id,
        episode, fee, charge,
    )  # fmt: skip


async def _waiting_for(conn: Conn, tenant_id: str, account_id: str) -> str | None:
    """What the close still waits for on the billing side; None: it may be tried."""
    r = await conn.fetchrow(FINAL_SQL, tenant_id, account_id)
    if r["ended_at"] is None:
        return "the final invoice"
    if r["final_invoice_id"] is None:
        return None  # the final period had nothing to bill
    if r["status"] == "draft":
        return "the final invoice's finalization"
    if not r["usage_credited"]:
        return "the final invoice's usage to be credited back"
    return None


async def _closed(conn: Conn, row: Any, at: datetime) -> None:
    await conn.execute(
        "UPDATE account_terminations SET state = 'closed', closed_at = $4, attempted_at = $4,"
        " waiting_for = NULL WHERE tenant_id = $1 AND account_id = $2 AND episode = $3",
        row["tenant_id"], row["account_id"], row["episode"], at,
    )  # fmt: skip
    final = await conn.fetchval(
        "SELECT final_invoice_id FROM billing_accounts WHERE tenant_id = $1 AND account_id = $2",
        row["tenant_id"], row["account_id"],
    )  # fmt: skip
    await enqueue(conn, row["tenant_id"], "account.terminated", {
        "account_id": row["account_id"], "ends_on": row["ends_on"].isoformat(),
        "cancellation_fee": row["cancellation_fee"], "final_invoice_id": final,
    }, at=at, dedup_key=f"account.terminated:{row['account_id']}")  # fmt: skip


async def _cancel(conn: Conn, row: Any, at: datetime) -> None:
    """Billing resumes; the cancellation charge goes unless an invoice took it."""
    tenant_id, account_id = row["tenant_id"], row["account_id"]
    await conn.execute(
        "UPDATE account_terminations SET state = 'cancelled', cancelled_at = $4, waiting_for ="
        " NULL WHERE tenant_id = $1 AND account_id = $2 AND episode = $3", tenant_id,
        account_id, row["episode"], at,
    )  # fmt: skip
    if row["charge_id"] is not None:
        await conn.execute(
            "DELETE FROM one_time_charges WHERE tenant_id = $1 AND charge_id = $2"
            " AND invoice_id IS NULL", tenant_id, row["charge_id"],
        )  # fmt: skip
    await conn.execute(
        "UPDATE billing_accounts SET ends_on = NULL, ends_at = NULL, ended_at = NULL,"
        " final_invoice_id = NULL WHERE tenant_id = $1 AND account_id = $2",
        tenant_id, account_id,
    )  # fmt: skip
