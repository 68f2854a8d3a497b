"""Billing in the assembled processes: the ``bill`` command (one tick, for cron or by hand) and
the billing loops ``serve`` runs (the scheduled tick and webhook delivery)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from datetime import datetime
from typing import Final

from billing.clock import Clock, MovableClock, SystemClock
from billing.jobs import BillingJobs
from billing.schedule import DEFAULT_CRON, run_scheduled
from charging_engine.bootstrap import Engine, open_engine
from charging_engine.config import Settings
from charging_server.migrations import PACKAGES

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
        jobs = BillingJobs(engine.pool, engine.store, clock=clock, batch_size=args.batch)
        tick = await jobs.tick()
    print(json.dumps(tick.summary()), flush=True)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("bill", help="run the billing job once: invoices for ended periods,"
                       " finalization, receipts (serve runs it every few minutes)")
    b.add_argument("--now", help="bill as if it were this instant (ISO 8601 with offset)")
    b.add_argument("--batch", type=int, default=500, help="accounts per transaction")


def install_billing(engine: Engine) -> None:
    """Register the scheduled billing tick with the engine's background loops."""
    cron = os.environ.get(CRON_ENV, DEFAULT_CRON)
    if cron == "off" or engine.settings.database_url is None:
        return
    jobs = BillingJobs(engine.pool, engine.store)
    dsn = engine.settings.database_url

    async def scheduled(stop: asyncio.Event) -> None:
        await run_scheduled(jobs, dsn, stop, cron)

    engine.background.append(scheduled)
