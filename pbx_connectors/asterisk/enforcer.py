"""Mid-call enforcement: keep each answered call's reservation ahead of it; cut it when refused.

An answered call is extended ``extend_ahead`` seconds before its covered time runs out. When an
extension is refused (the account's money is spent across its calls), the call is shortened
with AMI ``AbsoluteTimeout`` to the whole seconds still covered (the PBX then cuts it even if
this process dies), the extension is retried every ``topup_poll_s`` (a mid-call top-up lifts the
limit with a new ``AbsoluteTimeout``), and at the covered time an AMI ``Hangup`` makes sure.
Billing floors answered milliseconds to seconds, so a call cut at its covered second is never
charged beyond its reservation.

Nothing is replayed after an AMI reconnect (the panoramisk defect): a cut that could not be
sent is decided again from the call's current state, once the tracker still says it is live.
If the engine cannot be reached, the call keeps its covered time; past it, a fail_closed tenant's
call is cut and a fail_open tenant's call goes on until the engine answers again.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from charging_engine.catalog import FailurePolicy
from charging_engine.sessions.model import NotFound
from charging_engine.sessions.service import ChargingService
from pbx_connectors.asterisk.ami_client import AmiDisconnected, AmiRejected
from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.commands import Leg
from pbx_connectors.asterisk.config import ChargingConfig

log = logging.getLogger("pbx_connectors.asterisk.enforcer")

MAX_SEQUENCE = 100_000  # the engine's extension sequence bound
MAX_ANSWER_LAG_S = 10.0  # how far back a PBX answer Timestamp may place the answer
RETRY_CUT_S = 1.0
# A call out of money ends half a second before its covered time: billing floors answered
# time to whole seconds, and the PBX's CDR and its Hangup event are microseconds apart, so an
# end in mid-second is billed the same second by both (an end on the boundary may not be).
CUT_BEFORE_S = 0.5
HANGUP_AFTER_S = 0.25  # the backstop Hangup, if the AbsoluteTimeout did not end the call
LAST_CHANCE_S = 0.3  # a cut-short call retries its extension once more this long before its end


class ActionSender(Protocol):
    async def action(
        self, name: str, *, tag: object | None = None, within_s: float | None = None,
        **fields: str | int,
    ) -> list[Message]: ...


@dataclass(slots=True)
class Supervised:
    leg: Leg
    anchor: float  # loop time of the answer
    granted: int  # answered seconds covered by the reservation
    next_at: float = 0.0
    cut_at: float | None = None  # set once an extension was refused
    shortened: bool = False  # an AbsoluteTimeout is in force on the PBX
    hangups: int = 0
    failures: int = 0
    busy: bool = False
    gen: int = 0

    @property
    def deadline(self) -> float:
        return self.anchor + self.granted

    @property
    def target(self) -> float:
        """When the PBX should end the call if no more time is covered."""
        return self.deadline - CUT_BEFORE_S


class Enforcer:
    def __init__(
        self, service: ChargingService, ami: ActionSender, channel_of: Callable[[str], str | None],
        config: ChargingConfig, policy_of: Callable[[], FailurePolicy | None], name: str = "pbx",
        max_parallel: int = 64,
    ) -> None:
        self.service = service
        self.ami = ami
        self.channel_of = channel_of
        self.config = config
        self.policy_of = policy_of
        self.name = name
        self._calls: dict[str, Supervised] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(max_parallel)
        self._tasks: set[asyncio.Task[None]] = set()
        self.cuts = 0
        self.extensions = 0
        self.refusals = 0

    @property
    def ahead(self) -> float:
        return min(self.config.extend_ahead_s, self.service.policy.slice_seconds / 2)

    def supervised(self, call_id: str) -> Supervised | None:
        return self._calls.get(call_id)

    def __len__(self) -> int:
        return len(self._calls)

    # --- inputs ----------------------------------------------------------------------------

    def start(self, leg: Leg, granted: int, answered_ms: int, now_ms: int,
              max_lag_s: float = MAX_ANSWER_LAG_S) -> None:
        """The engine recorded the answer; ``granted`` seconds are covered from it."""
        loop = asyncio.get_running_loop()
        lag = min(max((now_ms - answered_ms) / 1000, 0.0), max_lag_s)
        sup = Supervised(leg, loop.time() - lag, granted)
        self._calls[leg.call_id] = sup
        self._schedule(sup, sup.deadline - self.ahead)

    def stop(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def reconnected(self) -> None:
        """AMI is back: decide now about calls whose cut could not be sent."""
        loop = asyncio.get_running_loop()
        for sup in self._calls.values():
            if sup.cut_at is not None and sup.cut_at <= loop.time():
                self._schedule(sup, loop.time())

    # --- loop ------------------------------------------------------------------------------

    def _schedule(self, sup: Supervised, at: float) -> None:
        sup.gen += 1
        sup.next_at = at
        heapq.heappush(self._heap, (at, sup.gen, sup.leg.call_id))
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                now = loop.time()
                while self._heap and self._heap[0][0] <= now:
                    _, gen, call_id = heapq.heappop(self._heap)
                    sup = self._calls.get(call_id)
                    if sup is None or sup.gen != gen or sup.busy:
                        continue
                    sup.busy = True
                    t = asyncio.create_task(self._step(sup))
                    self._tasks.add(t)
                    t.add_done_callback(self._tasks.discard)
                self._wake.clear()
                timeout = (self._heap[0][0] - now) if self._heap else 3600.0
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waker, stopper}, timeout=max(timeout, 0.0),
                                   return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
        finally:
            stopper.cancel()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(stopper, *self._tasks, return_exceptions=True)

    async def _step(self, sup: Supervised) -> None:
        try:
            async with self._sem:
                await self._decide(sup)
        except Exception:
            log.exception("%s: enforcing call %s failed; retrying", self.name, sup.leg.call_id)
            if self._calls.get(sup.leg.call_id) is sup:
                self._schedule(sup, asyncio.get_running_loop().time() + RETRY_CUT_S)
        finally:
            sup.busy = False

    async def _decide(self, sup: Supervised) -> None:
        loop = asyncio.get_running_loop()
        if self._calls.get(sup.leg.call_id) is not sup:
            return
        if sup.cut_at is not None and loop.time() >= sup.cut_at:
            await self._cut(sup)
            return
        if sup.granted + 1 > MAX_SEQUENCE:
            sup.cut_at = sup.target + HANGUP_AFTER_S
            self._schedule(sup, sup.cut_at)
            return
        leg = sup.leg
        try:
            async with asyncio.timeout(self.config.topup_poll_s):
                ext = await self.service.extend(
                    leg.tenant, leg.account, leg.call_id, sequence=sup.granted + 1)
        except NotFound:
            log.warning("%s: call %s has no engine session any more; cutting it", self.name,
                        leg.call_id)
            sup.cut_at = loop.time()
            await self._cut(sup)
            return
        except Exception as exc:
            self._engine_unreachable(sup, exc)
            return
        sup.failures = 0
        if self._calls.get(leg.call_id) is not sup:
            return
        if ext.extended:
            self.extensions += 1
            sup.granted = max(sup.granted, ext.max_seconds)
            sup.cut_at = None
            if sup.shortened:
                await self._limit(sup, align=False)  # lift it now, before the old one fires
            self._schedule(sup, sup.deadline - self.ahead)
            return
        self.refusals += 1
        sup.granted = max(sup.granted, ext.max_seconds) if ext.max_seconds else sup.granted
        first = sup.cut_at is None
        sup.cut_at = sup.target + HANGUP_AFTER_S
        if first:
            log.info("%s: call %s (%s) refused more time (%s): cut in %.1fs", self.name,
                     leg.call_id, leg.account, ext.reason.value, sup.target - loop.time())
            await self._limit(sup, align=True)
        now = loop.time()
        last_chance = sup.target - LAST_CHANCE_S
        nxt = now + self.config.topup_poll_s
        if now < last_chance < nxt:
            nxt = last_chance  # a top-up until just before the end still saves the call
        self._schedule(sup, min(nxt, sup.cut_at))

    def _engine_unreachable(self, sup: Supervised, exc: Exception) -> None:
        loop = asyncio.get_running_loop()
        sup.failures += 1
        delay = min(0.2 * 2 ** min(sup.failures, 6), self.config.topup_poll_s)
        log.warning("%s: extending call %s failed (%s: %s)", self.name, sup.leg.call_id,
                    type(exc).__name__, exc)
        if loop.time() + delay < sup.target:
            self._schedule(sup, loop.time() + delay)
        elif self.policy_of() is FailurePolicy.FAIL_OPEN:
            self._schedule(sup, loop.time() + delay)  # keep trying; never cut for our outage
        else:
            sup.cut_at = sup.target
            self._schedule(sup, max(sup.target, loop.time()))

    async def _limit(self, sup: Supervised, align: bool) -> None:
        """Have the PBX end the call at ``sup.target`` by itself (it then does so even if this
        process dies). AbsoluteTimeout counts whole seconds from when it arrives; to cut, it is
        sent at the moment that makes its expiry land on the target (``align``); to lift a
        limit it is sent at once and expires at most a second early (the next refusal or
        extension sets it again)."""
        loop = asyncio.get_running_loop()
        target = sup.target
        whole = int(target - loop.time())
        if whole < 1:
            return  # too close: the Hangup at cut_at does it
        wait = target - whole - loop.time()
        if align and wait > 0:
            await asyncio.sleep(wait)
        channel = self.channel_of(sup.leg.call_id)
        if channel is None or self._calls.get(sup.leg.call_id) is not sup:
            return
        try:
            await self.ami.action("AbsoluteTimeout", Channel=channel, Timeout=whole)
            sup.shortened = True
        except (AmiDisconnected, AmiRejected) as exc:
            log.info("%s: AbsoluteTimeout on %s not set (%s); the Hangup will cut it",
                     self.name, channel, exc)

    async def _cut(self, sup: Supervised) -> None:
        loop = asyncio.get_running_loop()
        channel = self.channel_of(sup.leg.call_id)
        if channel is None:
            self.stop(sup.leg.call_id)
            return
        try:
            await self.ami.action("Hangup", Channel=channel, Cause=self.config.hangup_cause)
        except AmiRejected as exc:
            log.info("%s: Hangup %s: %s (already gone)", self.name, channel, exc)
            self.stop(sup.leg.call_id)
            return
        except AmiDisconnected as exc:
            log.warning("%s: Hangup %s not sent (%s); deciding again in %.0fs", self.name,
                        channel, exc, RETRY_CUT_S)
            self._schedule(sup, loop.time() + RETRY_CUT_S)
            return
        self.cuts += 1
        sup.hangups += 1
        log.info("%s: cut call %s (%s) on %s after %ds covered", self.name, sup.leg.call_id,
                 sup.leg.account, channel, sup.granted)
        # Its Hangup event stops supervision; if none comes, check again.
        self._schedule(sup, loop.time() + max(2.0, self.config.topup_poll_s))
