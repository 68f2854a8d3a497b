"""Carries out the tracker's commands against the engine: per call in order, retried, counted.

Commands of one call run one after the other (an answer is recorded before the end that
follows it); different calls run concurrently, so one slow call never holds up the event
consumer. A command that fails for a transient reason (Redis down) is retried with backoff for
``command_retry_s``: every engine step is idempotent (the end under ``end:<call id>``, the
correction once per call), so retrying never charges twice. What is not retried is what can
never succeed (an unknown call, an invalid request); it is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from charging_engine.sessions.model import InvalidRequest, NotFound, Reason
from charging_engine.sessions.policy import wall_ms
from charging_engine.sessions.service import ChargingService
from pbx_connectors.asterisk.commands import (
    Answer,
    Command,
    End,
    LeftToTtl,
    Lost,
    OrphanCdr,
    Reconcile,
    Release,
    SettleFromCdr,
)
from pbx_connectors.asterisk.config import ChargingConfig
from pbx_connectors.asterisk.enforcer import MAX_ANSWER_LAG_S, Enforcer

log = logging.getLogger("pbx_connectors.asterisk.charging")
T = TypeVar("T")


class GaveUp(Exception):
    """A command kept failing for ``command_retry_s``; the reservation TTL is the backstop."""


class CommandExecutor:
    def __init__(
        self, service: ChargingService, enforcer: Enforcer, config: ChargingConfig,
        name: str = "pbx", clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.service = service
        self.enforcer = enforcer
        self.config = config
        self.name = name
        self.clock = clock
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats: Counter[str] = Counter()

    def submit(self, cmd: Command) -> None:
        key = cmd.leg.call_id
        prev = self._tails.get(key)
        task = asyncio.create_task(self._after(prev, cmd))
        self._tails[key] = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(key, t))

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._tails.get(key) is task:
            del self._tails[key]

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, within_s: float | None = None) -> bool:
        """Wait until every submitted command has run; False if ``within_s`` passed first."""
        try:
            async with asyncio.timeout(within_s):
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _after(self, prev: asyncio.Task[None] | None, cmd: Command) -> None:
        if prev is not None:
            await asyncio.gather(prev, return_exceptions=True)
        try:
            await self._run(cmd)
        except GaveUp as exc:
            self.stats["gave_up"] += 1
            log.error("%s: %s", self.name, exc)
        except (NotFound, InvalidRequest) as exc:
            self.stats["refused"] += 1
            log.warning("%s: %s for call %s refused: %s", self.name, type(cmd).__name__,
                        cmd.leg.call_id, exc)

    async def _retry(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.command_retry_s
        delay = 0.05
        while True:
            try:
                return await fn()
            except (NotFound, InvalidRequest):
                raise
            except Exception as exc:
                if loop.time() + delay > deadline:
                    raise GaveUp(f"{what} failed for {self.config.command_retry_s:.0f}s, "
                                 f"last error {type(exc).__name__}: {exc}") from exc
                self.stats["retries"] += 1
                log.warning("%s: %s failed (%s: %s); retrying in %.2fs", self.name, what,
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _run(self, cmd: Command) -> None:
        s, leg = self.service, cmd.leg
        t, a, c = leg.tenant, leg.account, leg.call_id
        match cmd:
            case Answer():
                await self._answer(cmd)
            case End():
                self.enforcer.stop(c)
                r = await self._retry(f"end {c}", lambda: s.end(
                    t, a, c, billable_seconds=cmd.billable_seconds, ended_at_ms=cmd.ended_at_ms))
                self.stats["ended" if r.reason is Reason.OK else "ended_duplicate"] += 1
            case Release():
                self.enforcer.stop(c)
                await self._retry(f"release {c}", lambda: s.end(t, a, c, billable_seconds=0))
                self.stats["released"] += 1
                log.info("%s: leg %s is part of call %s: released", self.name, c, cmd.billed_as)
            case Lost():
                self.enforcer.stop(c)
                self.stats["lost"] += 1
                log.warning("%s: call %s ended while AMI was away; waiting for its Cdr",
                            self.name, c)
            case Reconcile():
                await self._reconcile(cmd.leg.tenant, a, c, cmd.cdr_seconds)
            case SettleFromCdr():
                r = await self._retry(f"settle {c} from Cdr", lambda: s.end(
                    t, a, c, billable_seconds=cmd.cdr_seconds))
                self.stats["settled_from_cdr"] += 1
                if r.reason is Reason.DUPLICATE:  # the sweeper got there first: re-rate it
                    await self._reconcile(t, a, c, cmd.cdr_seconds)
            case OrphanCdr():
                try:
                    r = await self._retry(f"settle {c} from its Cdr", lambda: s.end(
                        t, a, c, billable_seconds=cmd.cdr_seconds))
                except NotFound:
                    return  # a leg the engine never authorized (callee, Local half, inbound)
                if r.reason is Reason.OK:
                    self.stats["settled_orphan_cdr"] += 1
                    log.info("%s: call %s settled from a Cdr (not tracked here)", self.name, c)
            case LeftToTtl():
                self.stats["left_to_ttl"] += 1
                log.warning("%s: call %s ended while AMI was away and no Cdr came: its "
                            "reservation TTL settles it", self.name, c)

    async def _answer(self, cmd: Answer) -> None:
        s, leg = self.service, cmd.leg
        at = None if cmd.estimated else cmd.at_ms
        try:
            ans = await self._retry(f"answer {leg.call_id}", lambda: s.answer(
                leg.tenant, leg.account, leg.call_id, answered_at_ms=at))
        except InvalidRequest:
            # The PBX clock is too far from ours to use its Timestamp: answer as of now.
            at = None
            ans = await self._retry(f"answer {leg.call_id}", lambda: s.answer(
                leg.tenant, leg.account, leg.call_id))
        except NotFound:
            self.stats["answer_without_session"] += 1
            log.warning("%s: call %s answered but has no engine session (failed open?)",
                        self.name, leg.call_id)
            return
        self.stats["answered"] += 1
        now = self.clock()
        lag = self.service.policy.max_call_seconds if cmd.recovered else MAX_ANSWER_LAG_S
        self.enforcer.start(leg, ans.max_seconds, ans.answered_at_ms, now, max_lag_s=lag)

    async def _reconcile(self, t: str, a: str, c: str, cdr_seconds: int) -> None:
        r = await self._retry(f"reconcile {c}", lambda: self.service.correct(
            t, a, c, cdr_seconds, self.config.cdr_tolerance_s))
        self.stats[f"cdr_{r.reason}"] += 1
        if r.corrected:
            log.warning("%s: call %s charged for %ss but its Cdr says %ss: corrected by %d "
                        "micros", self.name, c, r.charged_seconds, cdr_seconds, r.delta)
