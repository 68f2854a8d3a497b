"""The billing job: one tick bills due periods, finalizes drafts whose review closed, gives
postpaid balances their invoiced usage back, issues top-up receipts, moves overdue accounts on
their suspension ladder, expires prepaid money past its validity, steps dormant prepaid accounts
towards closing, and delivers webhooks.

Every step is idempotent and safe to run in several processes at once (row locks with SKIP
LOCKED, unique keys), so ticking twice, or in two processes, or after a crash, never bills
twice. ``schedule.run_scheduled`` ticks it every few minutes through pgqueuer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from billing.clock import Clock, SystemClock
from billing.dunning_run import evaluate_due
from billing.invoice_run import InvoiceRun, RunStats
from billing.kind_switch import KindSwitches
from billing.lifecycle import finalize_due
from billing.receipts import issue_receipts
from billing.usage_credit import credit_pending
from billing.validity_run import evaluate_due as validity_due
from charging_engine.accounts.changes import AccountChanges
from charging_engine.accounts.money import MoneyOperations
from charging_engine.balance.store import BalanceStore

log = logging.getLogger("billing.jobs")


class Deliverer(Protocol):
    async def run_once(self, limit: int = ...) -> int: ...


@dataclass(slots=True)
class Tick:
    run: RunStats = field(default_factory=RunStats)
    finalized: int = 0
    credited: int = 0
    receipts: int = 0
    delivered: int = 0
    switched: int = 0
    dunning: int = 0
    prepaid: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "accounts": self.run.accounts, "invoices": self.run.invoices,
            "calls": self.run.calls, "finalized": self.finalized, "credited": self.credited,
            "receipts": self.receipts, "webhooks": self.delivered,
            "switched": self.switched, "dunning": self.dunning, "prepaid": self.prepaid,
        }


class BillingJobs:
    def __init__(
        self, pool: asyncpg.Pool, store: BalanceStore, *, clock: Clock | None = None,
        deliverer: Deliverer | None = None, switches: KindSwitches | None = None,
        batch_size: int = 500, accounts: AccountChanges | None = None,
        money: MoneyOperations | None = None,
    ) -> None:
        """``accounts``: the engine's account use case, for the suspension ladder's statuses
        (without it the ladder is not evaluated on the schedule); ``money`` with it: prepaid
        validity and dormancy are evaluated too."""
        self.pool = pool
        self.store = store
        self.clock = clock or SystemClock()
        self.deliverer = deliverer
        self.switches = switches
        self.accounts = accounts
        self.money = money
        self.run = InvoiceRun(pool, clock=self.clock, batch_size=batch_size)

    async def tick(self) -> Tick:
        t = Tick()
        if self.switches is not None:  # switches to postpaid open their first period
            t.switched = await self.switches.apply_due(self.clock.now())
        t.run = await self.run.run_due()
        now = self.clock.now()
        t.finalized = await finalize_due(self.pool, now)
        t.credited = await credit_pending(self.pool, self.store, now)
        if self.switches is not None:  # switches to prepaid follow their final invoice
            t.switched += await self.switches.apply_due(now)
        t.receipts = await issue_receipts(self.pool, now)
        if self.accounts is not None:  # after finalization: new invoices count at once
            t.dunning = await evaluate_due(self.pool, self.accounts, at=now)
            if self.money is not None:
                t.prepaid = await validity_due(self.pool, self.money, self.accounts, at=now)
        if self.deliverer is not None:
            t.delivered = await self.deliverer.run_once()
        if t.run.invoices or t.finalized or t.receipts or t.dunning or t.prepaid:
            log.info("billing tick: %s", t.summary())
        return t
