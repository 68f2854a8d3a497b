"""Billing in the assembled processes: the ``bill`` command (one tick, for cron or by hand) and
the billing loops ``serve`` runs (the scheduled tick and webhook delivery)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from datetime import datetime
from typing import Final

from billing.auto_topup_run import AutoTopups
from billing.clock import Clock, MovableClock, SystemClock
from billing.jobs import BillingJobs
from billing.kind_switch import KindSwitches
from billing.schedule import DEFAULT_CRON, run_scheduled
from billing.secrets import Secrets, SecretsKeyError, secrets_or_none
from billing.webhooks.dispatcher import Dispatcher
from charging_engine.accounts.changes import AccountChanges
from charging_engine.accounts.money import MoneyOperations
from charging_engine.bootstrap import Engine, open_engine
from charging_engine.config import Settings
from charging_server.migrations import PACKAGES

log = logging.getLogger("charging_server.billing")

CRON_ENV: Final = "CE_BILLING_CRON"  # "off" disables the scheduled tick in serve


def _clock(value: str | None) -> Clock:
    if value is None:
        return SystemClock()
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError("--now needs an offset, e.g. 2026-02-15T00:05:00+00:00")
    return MovableClock(when)


async def cmd_bill(settings: Settings, args: argparse.Namespace) -> int:
    """Bill what is due now (or at ``--now``), finalize, credit, issue receipts; print figures."""
    clock = _clock(args.now)
    async with open_engine(settings, migrations=PACKAGES) as engine:
        sender = dispatcher(engine, clock)
        jobs = BillingJobs(engine.pool, engine.store, clock=clock, batch_size=args.batch,
                           deliverer=sender, switches=switches(engine),
                           accounts=account_changes(engine), money=money_operations(engine))
        try:
            tick = await jobs.tick()
        finally:
            if sender is not None:
                await sender.aclose()
    print(json.dumps(tick.summary()), flush=True)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("bill", help="run the billing job once: invoices for ended periods,"
                       " finalization, receipts (serve runs it every few minutes)")
    b.add_argument("--now", help="bill as if it were this instant (ISO 8601 with offset)")
    b.add_argument("--batch", type=int, default=500, help="accounts per transaction")


def account_changes(engine: Engine) -> AccountChanges:
    async def refreshed() -> None:
        await engine.refresh_catalog()

    return AccountChanges(engine.pool, engine.store, clock=engine.service.clock,
                          on_catalog_change=refreshed)


def money_operations(engine: Engine) -> MoneyOperations:
    return MoneyOperations(engine.pool, engine.store, clock=engine.service.clock,
                           idem_ttl_s=engine.settings.idem_ttl_s)


def switches(engine: Engine) -> KindSwitches:
    return KindSwitches(engine.pool, engine.store, account_changes(engine))


def dispatcher(engine: Engine, clock: Clock) -> Dispatcher | None:
    """The webhook dispatcher, when ``CE_SECRETS_KEY`` can decrypt endpoint secrets."""
    try:
        secrets = Secrets()
    except SecretsKeyError as exc:
        log.warning("webhooks are not delivered: %s", exc)
        return None
    return Dispatcher(engine.pool, secrets, clock=clock)


def install_billing(engine: Engine) -> None:
    """Register the scheduled billing tick and webhook delivery with the engine's loops."""
    cron = os.environ.get(CRON_ENV, DEFAULT_CRON)
    if engine.settings.database_url is None:
        return
    clock = SystemClock()
    sender = dispatcher(engine, clock)
    if sender is not None:
        engine.background.append(sender.run)
    topups = AutoTopups(engine.pool, money_operations(engine), secrets_or_none(),
                        clock=clock)
    engine.background.append(topups.run)  # answers low-balance alerts as they are stored
    if cron == "off":
        return
    jobs = BillingJobs(engine.pool, engine.store, clock=clock, switches=switches(engine),
                       accounts=account_changes(engine), money=money_operations(engine))
    dsn = engine.settings.database_url

    async def scheduled(stop: asyncio.Event) -> None:
        await run_scheduled(jobs, dsn, stop, cron)

    engine.background.append(scheduled)
