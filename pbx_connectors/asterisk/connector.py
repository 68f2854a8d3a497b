"""One Asterisk server, wired: FastAGI server + AMI client -> tracker -> engine, enforcer, recovery.

Events are applied by one consumer in wire order (panoramisk schedules coroutine callbacks
without awaiting them, so their order is not guaranteed and their errors are only logged); the
engine work they cause runs in the executor, ordered per call. The tracker is touched only by
that consumer and by FastAGI registrations (both on the event loop, never across an await), so
its state needs no lock. On stop, events already received are applied before the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from charging_engine.catalog import FailurePolicy
from charging_engine.sessions.policy import wall_ms
from charging_engine.sessions.service import ChargingService
from pbx_connectors.asterisk.accounts import AccountMapper
from pbx_connectors.asterisk.ami_client import (
    ActionResult,
    AmiClient,
    Connected,
    Disconnected,
)
from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.authorization import Authorizer
from pbx_connectors.asterisk.commands import Leg
from pbx_connectors.asterisk.config import PbxConfig
from pbx_connectors.asterisk.enforcer import Enforcer
from pbx_connectors.asterisk.executor import CommandExecutor
from pbx_connectors.asterisk.fastagi import FastAgiServer
from pbx_connectors.asterisk.recovery import Recovery, SnapshotTag
from pbx_connectors.asterisk.tracker import Tracker

log = logging.getLogger("pbx_connectors.asterisk")

DRAIN_ON_STOP_S = 10.0  # engine commands still running at stop get this long to finish
STOP_APPLY_S = 5.0  # events received before stop get this long to be applied
FAR_FUTURE_MS = 2**62


class PbxConnector:
    def __init__(
        self, service: ChargingService, config: PbxConfig, clock: Callable[[], int] = wall_ms,
        drain_on_stop_s: float = DRAIN_ON_STOP_S,
    ) -> None:
        self.service = service
        self.drain_on_stop_s = drain_on_stop_s
        self.config = config
        self.name = config.name
        self.clock = clock
        ch = config.charging
        self.mapper = AccountMapper(config.accounts)
        self.tracker = Tracker(
            config.tenant, self.mapper, cdr_wait_ms=int(ch.cdr_wait_s * 1000),
            gap_cdr_wait_ms=int(ch.gap_cdr_wait_s * 1000),
        )
        self.ami = AmiClient(config.ami, config.name)
        self.enforcer = Enforcer(service, self.ami, self.tracker.channel, ch, self._policy,
                                 config.name)
        self.executor = CommandExecutor(service, self.enforcer, ch, config.name, clock)
        self.recovery = Recovery(service, self.ami, self.tracker, self.executor.submit, clock,
                                 config.name)
        self.authorizer = Authorizer(service, config.tenant, self.mapper, config.fastagi,
                                     self.authorized)
        self.fastagi = FastAgiServer(config.fastagi, self.authorizer.answer, config.name)
        self._timer_wake = asyncio.Event()
        self._sleep_until: int | None = None  # when the timer task wakes up next
        self._background: set[asyncio.Task[bool]] = set()
        self.ready = asyncio.Event()  # FastAGI listening

    def _policy(self) -> FailurePolicy | None:
        t = self.service.catalog.tenant(self.config.tenant)
        return t.failure_policy if t is not None else None

    def authorized(self, leg: Leg) -> None:
        """The FastAGI server allowed this leg: track it."""
        for cmd in self.tracker.authorized(leg, self.clock()):
            self.executor.submit(cmd)
        self._poke()

    def _poke(self) -> None:
        """Wake the timer task only when the tracker now has an earlier deadline."""
        nxt = self.tracker.next_due_ms()
        if nxt is not None and (self._sleep_until is None or nxt < self._sleep_until):
            self._timer_wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        if self.service.catalog.tenant(self.config.tenant) is None:
            log.warning("%s: tenant %r is not in the catalogue (yet): calls are refused with "
                        "ERROR/unknown_tenant until it is", self.name, self.config.tenant)
        await self.fastagi.start()
        self.ready.set()
        try:
            async with asyncio.TaskGroup() as tg:
                ami = tg.create_task(self.ami.run(stop))
                tg.create_task(self.enforcer.run(stop))
                consumer = tg.create_task(self._consume())
                timers = tg.create_task(self._timers())
                periodic = tg.create_task(self._reconcile_periodically())
                await stop.wait()
                periodic.cancel()
                await ami  # closed: nothing more arrives; apply what did (hangups to charge)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STOP_APPLY_S):
                        await self.ami.inbox.drained()
                consumer.cancel()
                timers.cancel()
            # Cdrs already gathered reconcile now rather than be forgotten with this process.
            for cmd in self.tracker.due(FAR_FUTURE_MS):
                self.executor.submit(cmd)
        finally:
            for task in list(self._background):
                task.cancel()
            await self.fastagi.close()
            await self.authorizer.aclose()
            if not await self.executor.drain(self.drain_on_stop_s):
                log.warning("%s: %d engine commands still pending at stop; reservation TTLs "
                            "cover them", self.name, self.executor.pending)
            await self.executor.aclose()

    async def _consume(self) -> None:
        """The single ordered consumer of AMI events."""
        inbox = self.ami.inbox
        while True:
            item = await inbox.get()
            if isinstance(item, Message):
                cmds = self.tracker.apply(item, self.clock())
                for cmd in cmds:
                    self.executor.submit(cmd)
                if cmds:
                    self._poke()
            elif isinstance(item, ActionResult):
                if isinstance(item.tag, SnapshotTag):
                    await self.recovery.apply(item.tag, item.messages)
                    self._poke()
            elif isinstance(item, Connected):
                self.enforcer.reconnected()
                task = asyncio.create_task(self.recovery.request())
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            elif isinstance(item, Disconnected):
                log.warning("%s: AMI connection lost; FastAGI keeps authorizing, calls are "
                            "reconciled on reconnect", self.name)

    async def _timers(self) -> None:
        while True:
            for cmd in self.tracker.due(self.clock()):
                self.executor.submit(cmd)
            now = self.clock()
            nxt = self.tracker.next_due_ms()
            wait_ms = 60_000 if nxt is None else min(max(nxt - now, 0), 60_000)
            self._sleep_until = now + wait_ms
            self._timer_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_ms / 1000 + 0.001):
                    await self._timer_wake.wait()

    async def _reconcile_periodically(self) -> None:
        interval = self.config.charging.reconcile_interval_s
        while True:
            await asyncio.sleep(interval)
            if self.ami.connected:
                await self.recovery.request()
