"""Auto top-up applied: each low-balance alert on an account's auto top-up line is answered
once (an ``auto_topup_attempts`` row per alert), by a charge of the saved card through the
gateway, a top-up invoice for a postpaid account, or a recorded reason why not (``decide``).

The trigger is the alert itself: the alert feed stores it and ``NOTIFY``s ``ce_alerts``, and
``run`` wakes on that (no polling of balances). The decision is taken under a per-account
advisory lock, so two processes (or two alerts at once) never make two attempts; the attempt
is ``pending`` before the card is charged, under the idempotency key ``autotopup:<attempt>``,
so a crash mid-charge is finished by the next pass with the same key (the gateway answers the
same charge) and the payment is recorded once under the gateway's payment id.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from billing import inputs_codec, payments
from billing.auto_topup import Attempt, Limits, decide
from billing.clock import Clock
from billing.composition import Charge, InvoiceInputs, LineKind, compose
from billing.gateways.accounts import gateway_for
from billing.gateways.model import Charged, SavedMethods
from billing.invoice_store import InvoiceHeader, insert_many, new_id
from billing.lifecycle import finalize_rows
from billing.minor_units import exponent
from billing.payments import PaymentIn
from billing.secrets import Secrets
from charging_engine.accounts.money import MoneyOperations

__all__ = ["AutoTopups", "minor_up"]

LOGGER = logging.getLogger(__name__)
CHANNEL: Final = "ce_alerts"
STALE_PENDING: Final = timedelta(minutes=5)

ALERTS_SQL: Final = """
SELECT al.id, al.tenant_id, al.account_id
FROM alerts al JOIN account_details d USING (tenant_id, account_id)
WHERE al.id > $1 AND al.kind = 'low_balance' AND d.auto_topup_enabled
  AND al.threshold = d.auto_topup_threshold
  AND NOT EXISTS (SELECT 1 FROM auto_topup_attempts x WHERE x.tenant_id = al.tenant_id
                  AND x.alert_id = al.id)
ORDER BY al.id LIMIT $2
"""


def minor_up(micros: int, currency: str) -> int:
    """Micros as minor units of ``currency``, rounded up (a top-up never falls short)."""
    unit = 10 ** (6 - exponent(currency))
    return int(-(-micros // unit))


class AutoTopups:
    def __init__(self, pool: asyncpg.Pool, money: MoneyOperations, secrets: Secrets | None, *,
                 clock: Clock, limits: Limits | None = None) -> None:  # fmt: skip
        self.pool, self.money, self.secrets, self.clock = pool, money, secrets, clock
        self.limits = limits or Limits()
        self._after = 0  # alerts up to this id are answered

    async def run_once(self, limit: int = 500) -> int:
        """Answer the alerts not answered yet, and finish stale pending charges; -> attempts
        made (charges and invoices)."""
        made = 0
        for r in await self.pool.fetch(
                "SELECT attempt_id FROM auto_topup_attempts WHERE status = 'pending' AND at < $1",
                self.clock.now() - STALE_PENDING):  # fmt: skip
            made += await self._carry_out(r["attempt_id"])
        while True:
            rows = await self.pool.fetch(ALERTS_SQL, self._after, limit)
            for r in rows:
                attempt = await self._decide(r["tenant_id"], r["account_id"], r["id"])
                if attempt is not None:
                    made += await self._carry_out(attempt)
            if len(rows) < limit:
                return made
            self._after = rows[-1]["id"]

    async def run(self, stop: asyncio.Event) -> None:
        """Answer alerts as the feed stores them (its NOTIFY wakes this), until ``stop``."""
        wake = asyncio.Event()
        conn = await self.pool.acquire()
        try:
            await conn.add_listener(CHANNEL, lambda *_: wake.set())
            while not stop.is_set():
                try:
                    await self.run_once()
                except Exception:  # the database restarted, say: the next pass retries
                    LOGGER.exception("auto top-up pass failed")
                wake.clear()
                waits = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
                _, rest = await asyncio.wait(waits, timeout=60,
                                             return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                for t in rest:
                    t.cancel()
        finally:
            await self.pool.release(conn)

    async def _decide(self, tenant_id: str, account_id: str, alert_id: int) -> int | None:
        """Record this alert's decision; -> the attempt to carry out, if it is a charge."""
        now = self.clock.now()
        state = await self.money.store.state(tenant_id, account_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                               f"autotopup:{tenant_id}:{account_id}")  # fmt: skip
            if await conn.fetchval("SELECT 1 FROM auto_topup_attempts WHERE tenant_id = $1"
                                   " AND alert_id = $2", tenant_id, alert_id):  # fmt: skip
                return None
            d = await conn.fetchrow(
                "SELECT d.auto_topup_enabled AS on, d.auto_topup_threshold AS threshold,"
                " d.auto_topup_amount AS amount, m.top_up_to FROM account_details d LEFT JOIN"
                " payment_methods m USING (tenant_id, account_id) WHERE d.tenant_id = $1 AND"
                " d.account_id = $2", tenant_id, account_id)  # fmt: skip
            recent = await conn.fetch(
                "SELECT at, status FROM auto_topup_attempts WHERE tenant_id = $1 AND"
                " account_id = $2 AND status <> 'skipped' ORDER BY at DESC LIMIT 20",
                tenant_id, account_id)  # fmt: skip
            attempts = [Attempt(r["at"], "succeeded" if r["status"] == "invoiced"
                                else r["status"]) for r in recent]  # fmt: skip
            if d is None or not d["on"] or state is None:
                decision_amount, reason = None, "auto top-up is off"
            else:
                decision = decide(self.limits, attempts, balance=state.balance,
                                  threshold=d["threshold"], amount=d["amount"],
                                  target=d["top_up_to"], now=now)  # fmt: skip
                decision_amount, reason = decision.amount, decision.reason
            return await conn.fetchval(  # type: ignore[no-any-return]
                "INSERT INTO auto_topup_attempts (tenant_id, account_id, alert_id, at, status,"
                " reason, amount) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING CASE WHEN"
                " status = 'pending' THEN attempt_id END", tenant_id, account_id, alert_id, now,
                "pending" if decision_amount else "skipped", reason, decision_amount)

    async def _carry_out(self, attempt_id: int) -> int:
        a = await self.pool.fetchrow(
            "SELECT x.*, a.kind, a.currency, m.gateway, m.customer_ref, m.method_ref FROM"
            " auto_topup_attempts x JOIN accounts a USING (tenant_id, account_id) LEFT JOIN"
            " payment_methods m USING (tenant_id, account_id) WHERE x.attempt_id = $1",
            attempt_id)  # fmt: skip
        cur, now = a["currency"].strip(), self.clock.now()
        amount = minor_up(a["amount"], cur)
        if a["kind"] == "postpaid":
            return await self._invoice(a, amount, cur, now)
        if a["gateway"] is None or self.secrets is None:
            await self._finish(attempt_id, "failed", "no saved payment method (or no secrets)")
            return 0
        try:
            async with self.pool.acquire() as conn:
                gw: Any = await gateway_for(conn, self.secrets, a["tenant_id"], a["gateway"])
            try:
                charger: SavedMethods = gw
                charged: Charged = await charger.charge_saved(
                    customer=a["customer_ref"], payment_method=a["method_ref"], amount=amount,
                    currency=cur, metadata={"tenant_id": a["tenant_id"],
                                            "account_id": a["account_id"]},
                    idempotency_key=f"autotopup:{a['tenant_id']}:{attempt_id}")  # fmt: skip
            finally:
                await gw.aclose()
        except Exception as e:  # the gateway could not be asked: counted as a failure
            await self._finish(attempt_id, "failed", f"{a['gateway']}: {e}"[:300])
            return 0
        if charged.status != "succeeded":
            await self._finish(attempt_id, "declined" if charged.status == "declined"
                               else "failed", charged.message, charged.payment_ref)  # fmt: skip
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            p, _ = await payments.record(conn, a["tenant_id"], PaymentIn(
                a["account_id"], "card", charged.amount or amount, cur, now.date(),
                reference=f"{a['gateway']} {charged.payment_ref}", collected_by="auto_topup"),
                idempotency_key=f"{a['gateway']}:{charged.payment_ref}", at=now,
                money=self.money)  # fmt: skip
        await self._finish(attempt_id, "succeeded", "charged", charged.payment_ref, p.payment_id)
        return 1

    async def _finish(self, attempt_id: int, status: str, reason: str, ref: str | None = None,
                      payment_id: str | None = None) -> None:  # fmt: skip
        await self.pool.execute(
            "UPDATE auto_topup_attempts SET status = $2, reason = $3, payment_ref = $4,"
            " payment_id = $5 WHERE attempt_id = $1 AND status = 'pending'", attempt_id,
            status, reason[:300], ref, payment_id)  # fmt: skip

    async def _invoice(self, a: Any, amount: int, cur: str, now: datetime) -> int:
        """A postpaid account's top-up: an invoice for the amount, due at once."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT status FROM auto_topup_attempts WHERE attempt_id ="
                                   " $1 FOR UPDATE", a["attempt_id"]) != "pending":  # fmt: skip
                return 0
            inputs = InvoiceInputs(currency=cur, charges=(Charge(
                kind=LineKind.ONE_TIME, description="Top-up (balance below its line)",
                amount=amount, ref=f"autotopup:{a['attempt_id']}"),))  # fmt: skip
            h = InvoiceHeader(
                invoice_id=new_id(), tenant_id=a["tenant_id"], account_id=a["account_id"],
                currency=cur, issued_on=now.date(), due_on=now.date(), review_until=None,
                source_ref=f"autotopup:{a['attempt_id']}", payment_text="Due on receipt",
                inputs=inputs_codec.dumps(inputs))  # fmt: skip
            await insert_many(conn, [(h, compose(inputs))])
            await finalize_rows(conn, a["tenant_id"], [h.invoice_id], now)
            await conn.execute(
                "UPDATE auto_topup_attempts SET status = 'invoiced', reason = 'top-up invoice',"
                " invoice_id = $2 WHERE attempt_id = $1", a["attempt_id"], h.invoice_id)
        return 1
