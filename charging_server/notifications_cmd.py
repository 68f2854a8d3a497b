"""Wiring the notifications into ``serve``: payment reminders, balance alerts, the relay from
billing's event log and the dispatcher with each tenant's channels, in one background loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from billing.clock import SystemClock
from billing.secrets import secrets_or_none
from charging_engine.bootstrap import Engine
from notifications.balance_alerts import BalanceAlerts
from notifications.channel_registry import ChannelRegistry
from notifications.compose import Composer
from notifications.dispatcher import Dispatcher
from notifications.keywords import Keywords
from notifications.pacer import Pacer
from notifications.relay import Relay
from notifications.reminders import queue_reminders
from notifications.status_messages import StatusMessages

log = logging.getLogger("charging_server.notifications")
IDLE_S = 1.0  # an idle pass waits this long for the stop signal before looking again
REMIND_EVERY_S = 300.0  # payment reminders are looked for this often


def install_notifications(engine: Engine) -> None:
    """Relay and send notifications while the engine runs (with a database)."""
    if engine.settings.database_url is None:
        return
    secrets = secrets_or_none()  # without it, channels without a password still work
    clock = SystemClock()
    relay = Relay(engine.pool, now=clock.now)
    alerts = BalanceAlerts(engine.pool)
    statuses = StatusMessages(engine.pool)
    registry = ChannelRegistry(engine.pool, secrets, now=clock.now,
                               inbound=Keywords(engine.pool, engine.store, now=clock.now))
    dispatcher = Dispatcher(engine.pool, registry, Composer(engine.pool), now=clock.now,
                            pacing=Pacer(engine.pool, now=clock.now))

    async def run(stop: asyncio.Event) -> None:
        reminded: float = 0.0
        try:
            while not stop.is_set():
                busy = 0
                try:
                    if time.monotonic() - reminded >= REMIND_EVERY_S:
                        reminded = time.monotonic()
                        busy += await queue_reminders(engine.pool, clock.now())
                    busy += await alerts.run_once(clock.now())
                    busy += await statuses.run_once(clock.now())
                    busy += await relay.run_once() + await dispatcher.run_once()
                except Exception:  # the database restarted, say: the next pass retries
                    log.exception("notifications pass failed")
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), IDLE_S)
        finally:
            await registry.close()

    engine.background.append(run)
