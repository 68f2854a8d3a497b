"""Wiring the notifications into ``serve``: the relay from billing's event log and the
dispatcher with each tenant's channels, in one background loop of the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from billing.clock import SystemClock
from billing.secrets import Secrets, SecretsKeyError
from charging_engine.bootstrap import Engine
from notifications.channel_registry import ChannelRegistry
from notifications.compose import Composer
from notifications.dispatcher import Dispatcher
from notifications.relay import Relay

log = logging.getLogger("charging_server.notifications")
IDLE_S = 1.0  # an idle pass waits this long for the stop signal before looking again


def install_notifications(engine: Engine) -> None:
    """Relay and send notifications while the engine runs (with a database)."""
    if engine.settings.database_url is None:
        return
    try:
        secrets: Secrets | None = Secrets()
    except SecretsKeyError:  # channels without a password still work
        secrets = None
    clock = SystemClock()
    relay = Relay(engine.pool, now=clock.now)
    registry = ChannelRegistry(engine.pool, secrets, now=clock.now)
    dispatcher = Dispatcher(engine.pool, registry, Composer(engine.pool), now=clock.now)

    async def run(stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                busy = 0
                try:
                    busy = await relay.run_once() + await dispatcher.run_once()
                except Exception:  # the database restarted, say: the next pass retries
                    log.exception("notifications pass failed")
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), IDLE_S)
        finally:
            await registry.close()

    engine.background.append(run)
