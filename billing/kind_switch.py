"""Switching an account between prepaid and postpaid, at once or at the period boundary,
without losing or double-counting a call.

* To postpaid: the account becomes postpaid in the engine first (its calls are then held to
  the credit limit), then its prepaid balance is moved out of Redis (``adjust`` entries under
  the switch's keys, repeated until the balance after the move is exactly 0, so a call that
  ended in between is paid by the prepaid money it used). Once those entries are settled, the
  moved money becomes billing credit (or a one-time charge if the balance was negative) and
  the ledger is cut at the last move: every later entry is postpaid usage.
* To prepaid: the open period is ended (now, or at its boundary), the run bills it as usual,
  and then the account becomes prepaid and its remaining billing credit is paid into the
  balance. Calls still in flight at the cut settle against the prepaid balance.

Each step is idempotent; ``apply_due`` (part of the billing tick) resumes an interrupted one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import asyncpg

from billing.cycles import BillCycle, BillingPeriod, span_at
from billing.enrollment import locked
from billing.errors import BillingConflict, InvalidBillingInput
from billing.minor_units import micros_to_minor, minor_to_micros
from charging_engine.accounts.changes import AccountChanges, AccountPatch
from charging_engine.accounts.record import AccountKind
from charging_engine.audit import Actor, record_change
from charging_engine.balance.store import BalanceStore

BILLING: Final = Actor("billing", "system")
MAX_MOVES: Final = 20
Kind = Literal["prepaid", "postpaid"]
Effective = Literal["now", "boundary"]


async def request(
    pool: asyncpg.Pool, tenant_id: str, account_id: str, to: Kind, effective: Effective,
    now: datetime,
) -> Any:
    """Record the switch; ``apply_due`` carries it out (the route calls it at once for "now")."""
    async with pool.acquire() as conn, conn.transaction():
        ba = await locked(conn, tenant_id, account_id)
        kind = await conn.fetchval(
            "SELECT kind FROM accounts WHERE tenant_id = $1 AND account_id = $2",
            tenant_id, account_id,
        )
        if ba["pending_kind"] is not None:
            if ba["pending_kind"] == to:
                return ba
            raise BillingConflict(f"a switch to {ba['pending_kind']} is already pending")
        if kind == to:
            raise InvalidBillingInput(f"the account is already {to}")
        at = now if effective == "now" else ba["open_ends_at"]
        key = f"switch:{to}:{int(at.timestamp() * 1000)}"
        if to == "prepaid" and effective == "now":
            # End the open period now: the run bills it at once, fees for the days begun.
            tz = ZoneInfo(ba["timezone"])
            end_date = now.astimezone(tz).date() + timedelta(days=1)
            natural = ba["open_reference_days"] or (
                ba["open_end_date"] - ba["open_start_date"]).days
            await conn.execute(
                "UPDATE billing_accounts SET open_ends_at = $3, open_end_date = $4,"
                " open_reference_days = $5 WHERE tenant_id = $1 AND account_id = $2",
                tenant_id, account_id, now, max(end_date, ba["open_start_date"]), natural,
            )
        await conn.execute(
            "UPDATE billing_accounts SET pending_kind = $3, pending_at = $4, switch_key = $5"
            " WHERE tenant_id = $1 AND account_id = $2", tenant_id, account_id, to, at, key,
        )
        await record_change(conn, BILLING, tenant_id, "billing.kind_switch",
                            f"account:{account_id}", {"kind": kind},
                            {"kind": to, "effective": effective, "at": at.isoformat()})
        return await locked(conn, tenant_id, account_id)


class KindSwitches:
    def __init__(self, pool: asyncpg.Pool, store: BalanceStore, accounts: AccountChanges
                 ) -> None:
        self.pool, self.store, self.accounts = pool, store, accounts

    async def apply_due(self, now: datetime, only: tuple[str, str] | None = None) -> int:
        """Carry out the switches due by ``now`` (of one account, with ``only``)."""
        tenant, account = only or (None, None)
        rows = await self.pool.fetch(
            "SELECT ba.*, a.kind, p.period, p.anchor_month FROM billing_accounts ba"
            " JOIN accounts a USING (tenant_id, account_id)"
            " JOIN bill_plans p ON p.tenant_id = ba.tenant_id AND p.plan_id = ba.plan_id"
            " WHERE ba.pending_kind IS NOT NULL AND ba.pending_at <= $1"
            " AND ($2::text IS NULL OR (ba.tenant_id = $2 AND ba.account_id = $3))"
            " ORDER BY ba.pending_at LIMIT 500", now, tenant, account,
        )
        done = 0
        for r in rows:
            if r["pending_kind"] == "postpaid":
                done += await self._to_postpaid(r, now)
            elif r["billed_end"] >= r["pending_at"]:  # the run billed up to the switch
                done += await self._to_prepaid(r, now)
        return done

    async def _to_postpaid(self, r: Any, now: datetime) -> int:
        tenant, account, key = r["tenant_id"], r["account_id"], r["switch_key"]
        if r["kind"] != "postpaid":
            await self.accounts.update(BILLING, tenant, account,
                                       AccountPatch(kind=AccountKind.POSTPAID))
        ms = int(now.timestamp() * 1000)
        made = 0
        for i in range(1, MAX_MOVES + 1):
            state = await self.store.state(tenant, account)
            if state is None:
                return 0
            # A repeat of a move made before answers "duplicate" with the balance it left.
            res = await self.store.credit(
                tenant, account, kind="adjust", amount=-state.balance, idem_key=f"{key}:{i}",
                extra={"reason": "prepaid balance moved to billing at the switch to postpaid"},
                now_ms=ms,
            )
            made = i
            if res.balance == 0:
                break
        moves = await self.pool.fetch(
            "SELECT seq, amount FROM ledger_entries WHERE tenant_id = $1 AND account_id = $2"
            " AND kind = 'adjust' AND idem_key LIKE $3 ORDER BY seq",
            tenant, account, f"adjust:{key}:%",
        )
        if len(moves) < made:
            return 0  # not all settled yet: the next tick finishes
        moved = -sum(m["amount"] for m in moves)  # prepaid money taken out (negative: owed)
        async with self.pool.acquire() as conn, conn.transaction():
            ba = await locked(conn, tenant, account)
            if ba["pending_kind"] != "postpaid":
                return 0
            cur = (await conn.fetchval("SELECT currency FROM accounts WHERE tenant_id = $1"
                                       " AND account_id = $2", tenant, account)).strip()
            minor = micros_to_minor(moved, cur)
            if minor > 0:
                await conn.execute(
                    "UPDATE billing_accounts SET credit_balance = credit_balance + $3"
                    " WHERE tenant_id = $1 AND account_id = $2", tenant, account, minor)
            elif minor < 0:
                await conn.execute(
                    "INSERT INTO one_time_charges (tenant_id, charge_id, account_id, kind,"
                    " description, amount, charge_on) VALUES ($1, $2, $3, 'manual', $4, $5, $6)"
                    " ON CONFLICT DO NOTHING", tenant, key, account,
                    "Prepaid balance owed at the switch to postpaid", -minor,
                    ba["pending_at"].astimezone(ZoneInfo(ba["timezone"])).date(),
                )
            tz = ZoneInfo(ba["timezone"])
            cycle = BillCycle(BillingPeriod(ba["period"]), ba["bcd"], ba["anchor_month"])
            span = span_at(cycle, ba["pending_at"], tz)
            await conn.execute(
                "UPDATE billing_accounts SET pending_kind = NULL, pending_at = NULL,"
                " billed_seq = $3, billed_end = $4, carry_seq = NULL, open_index = $5,"
                " open_start_date = $6, open_end_date = $7, open_starts_at = $8,"
                " open_ends_at = $9, open_reference_days = NULL, fees_billed_to = NULL"
                " WHERE tenant_id = $1 AND account_id = $2",
                tenant, account, moves[-1]["seq"], ba["pending_at"], span.index,
                span.start_date, span.end_date, span.start, span.end,
            )
            await conn.execute(
                "INSERT INTO account_plan_history (tenant_id, account_id, plan_id, extensions,"
                " seats, from_date) VALUES ($1, $2, $3, $4, $5, $6)", tenant, account,
                ba["plan_id"], ba["extensions"], ba["seats"],
                ba["pending_at"].astimezone(tz).date(),
            )
        return 1

    async def _to_prepaid(self, r: Any, now: datetime) -> int:
        tenant, account, key = r["tenant_id"], r["account_id"], r["switch_key"]
        # Every invoice of the postpaid era gives its usage back before the account leaves.
        pending = await self.pool.fetchval(
            "SELECT count(*) FROM invoices WHERE tenant_id = $1 AND account_id = $2"
            " AND NOT usage_credited", tenant, account,
        )
        if pending:
            return 0
        if r["kind"] != "prepaid":
            await self.accounts.update(BILLING, tenant, account,
                                       AccountPatch(kind=AccountKind.PREPAID))
        cur = (await self.pool.fetchval("SELECT currency FROM accounts WHERE tenant_id = $1"
                                        " AND account_id = $2", tenant, account)).strip()
        if r["credit_balance"] > 0:
            res = await self.store.credit(
                tenant, account, kind="adjust",
                amount=minor_to_micros(r["credit_balance"], cur), idem_key=f"{key}:credit",
                extra={"reason": "billing credit paid into the prepaid balance"},
                now_ms=int(now.timestamp() * 1000),
            )
            if res.status not in ("ok", "duplicate"):
                return 0
        async with self.pool.acquire() as conn, conn.transaction():
            ba = await locked(conn, tenant, account)
            if ba["pending_kind"] != "prepaid":
                return 0
            await conn.execute(
                "UPDATE billing_accounts SET pending_kind = NULL, pending_at = NULL,"
                " credit_balance = 0 WHERE tenant_id = $1 AND account_id = $2", tenant, account,
            )
        return 1

