"""One simulated call: Local-channel legs, the FastAGI step and Dial, as Asterisk runs them.

The dialplan played for the A-leg (context ``outbound``; without a FastAGI server configured it
is ``outbound-noagi`` of transcript 03: a NoOp, then the Dial)::

    exten => _X.,1,NoOp(OUTBOUND ${CALLERID(num)} -> ${EXTEN} authorize via agi://H:P/S)
     same => n,AGI(agi://H:P/S,${CHANNEL(linkedid)})
     same => n,NoOp(AGISTATUS=... CHARGING_STATUS=... CHARGING_REASON=... CHARGING_MAXMS=...)
     same => n,GotoIf($["${AGISTATUS}" != "SUCCESS"]?failed)
     same => n,GotoIf($["${CHARGING_STATUS}" = "ALLOWED"]?allowed)
     same => n,Hangup(21)
     same => n(failed),Hangup(38)
     same => n(allowed),Dial(Local/${EXTEN}@callee/n,${DIALTIMEOUT},L(${CHARGING_MAXMS}))
     same => n,NoOp(DIALSTATUS=${DIALSTATUS} DIALEDTIME=${DIALEDTIME} ANSWEREDTIME=...)
     same => n,Hangup(17 on BUSY, 34 on CONGESTION, 19 otherwise)

Like Asterisk, an empty CHARGING_MAXMS gives ``L()``, which Dial ignores: no limit; a value
that is not a positive number makes Dial refuse to run (the call ends, cause 0).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import agi_step, progress
from . import events as ev
from . import teardown as td
from .agi_client import AgiExchange, AgiStatus, run_fastagi
from .channels import STATE_RINGING, Channel, cause_text
from .clock import US, EventClock
from .legs import DIAL_VARS, Legs, Sink, seconds_text
from .scenario import CallRecord, CallSpec, EndedBy

_LIMIT_RE = re.compile(r"^\d+(\.\d+)?$")
_DISPOSITION = {"BUSY": "BUSY", "NOANSWER": "NO ANSWER", "CONGESTION": "FAILED"}


@dataclass(frozen=True, slots=True)
class CallConfig:
    agi: tuple[str, int] | None
    agi_script: str = "authorize"
    agi_timeout_s: float = 30.0
    agi_connect_timeout_s: float = 2.0
    dial_timeout_s: float = 30.0
    cel: bool = True
    record_events: bool = True
    version: str = "22.10.1"


class HangupRequest(NamedTuple):
    reason: EndedBy
    cause: int
    target: Channel


def parse_limit(raw: str) -> tuple[bool, int | None]:
    """``L(raw)``: (accepted, limit in ms); empty means no limit."""
    if raw == "":
        return True, None
    if _LIMIT_RE.match(raw) and (ms := int(float(raw))) > 0:
        return True, ms
    return False, None


class Call:
    """Runs one ``CallSpec``; AMI actions reach it through ``request_hangup``/``set_timeout``."""

    def __init__(self, spec: CallSpec, call_id: str, cfg: CallConfig, clock: EventClock,
                 sink: Sink, next_local: Callable[[], int], next_uniqueid: Callable[[], str],
                 flow: Callable[[], Awaitable[None]]) -> None:
        self.spec = spec
        self.call_id = call_id
        self._cfg = cfg
        self._next_local = next_local
        self._next_uniqueid = next_uniqueid
        self._flow = flow
        context = "outbound" if cfg.agi is not None else "outbound-noagi"
        self.legs = Legs(spec, call_id, context, next_local(), clock, sink,
                         cel=cfg.cel, record=cfg.record_events)
        self._loop = asyncio.get_running_loop()
        self._hangup: asyncio.Future[HangupRequest] = self._loop.create_future()
        self._timeout: asyncio.TimerHandle | None = None
        self.answered = asyncio.Event()
        self.ended = False
        self.ended_by: EndedBy | None = None
        self.agi = AgiExchange()
        self.agi_env: list[tuple[str, str]] = []
        self.agi_status: str | None = None
        self.agi_variables: dict[str, str] = {}
        self.limit_ms: int | None = None
        self.dial_status: str | None = None
        self._dial_data = ""
        self._answer_mono = 0.0

    # -- control (AMI actions) ------------------------------------------------------------
    def request_hangup(self, reason: EndedBy, cause: int, target: Channel) -> None:
        if not self._hangup.done():
            self._hangup.set_result(HangupRequest(reason, cause, target))

    def set_timeout(self, seconds: float, target: Channel) -> None:
        """AMI AbsoluteTimeout: hang up ``seconds`` from now (replaces an earlier one)."""
        if self._timeout is not None:
            self._timeout.cancel()
        self._timeout = self._loop.call_later(
            seconds, self.request_hangup, "absolute_timeout", 16, target)

    async def _wait_until(self, when: float | None) -> HangupRequest | None:
        """Sleep until loop time ``when`` (None: forever) unless a hangup is requested first.

        Slow AMI clients are given a chance to catch up first (``flow``), within the sleep."""
        if not self._hangup.done():
            await self._flow()
        if self._hangup.done():
            return self._hangup.result()
        try:
            async with asyncio.timeout_at(when):
                return await asyncio.shield(self._hangup)
        except TimeoutError:
            return None

    # -- the script --------------------------------------------------------------------------
    async def run(self) -> CallRecord:
        try:
            await self._script()
            self.legs.cdr_late()
        finally:
            self.ended = True
            if self._timeout is not None:
                self._timeout.cancel()
            if not self._hangup.done():
                self._hangup.cancel()
        return self._record()

    async def _script(self) -> None:
        progress.start(self.legs, self._inherited())
        priority = 2
        if self._cfg.agi is not None:
            if not await self._authorize():
                return
            priority = 8
        else:
            self.legs.exten(self.legs.a, 1, "NoOp",
                            f"OUTBOUND-NOAGI {self.spec.caller} -> {self.spec.destination}")
        await self._dial(priority)

    def _inherited(self) -> list[tuple[str, str]]:
        """The variables the transcripts' originator set (``__`` = inherited by Dial)."""
        s = self.spec
        dial_timeout = s.ring_s if s.outcome == "noanswer" else self._cfg.dial_timeout_s
        return [("__CALLSECS", seconds_text(s.talk_s)), ("__RINGSECS", seconds_text(s.ring_s)),
                ("__CALLEE_MODE", s.outcome), ("__DIALTIMEOUT", seconds_text(dial_timeout))]

    # -- FastAGI -----------------------------------------------------------------------------
    async def _authorize(self) -> bool:
        """AGI then the two GotoIfs; False when the call ended there."""
        assert self._cfg.agi is not None
        host, port = self._cfg.agi
        legs, a = self.legs, self.legs.a
        url = f"agi://{host}:{port}/{self._cfg.agi_script}"
        legs.exten(a, 1, "NoOp",
                   f"OUTBOUND {self.spec.caller} -> {self.spec.destination} authorize via {url}")
        legs.exten(a, 2, "AGI", f"{url},{a.linkedid}")
        self.agi_env = agi_step.environment(legs, url, self._cfg.agi_script, self._cfg.version)
        result = await self._run_agi(host, port)
        if isinstance(result, HangupRequest):
            self._end_before_dial(result, "AGI", a.app_data, agi_hangup=result.reason != "stuck")
            return False
        self.agi_status = result
        legs.var(a, "AGISTATUS", result)
        v = a.variables
        legs.exten(a, 3, "NoOp", f"AGISTATUS={result}"
                   f" CHARGING_STATUS={v.get('CHARGING_STATUS', '')}"
                   f" CHARGING_REASON={v.get('CHARGING_REASON', '')}"
                   f" CHARGING_MAXMS={v.get('CHARGING_MAXMS', '')}")
        failed = result != "SUCCESS"
        legs.exten(a, 4, "GotoIf", f"{int(failed)}?failed")
        if failed:
            legs.exten(a, 7, "Hangup", "38")
            self._reject(38, "agi_failure", "Hangup", "38")
            return False
        allowed = v.get("CHARGING_STATUS") == "ALLOWED"
        legs.exten(a, 5, "GotoIf", f"{int(allowed)}?allowed")
        if not allowed:
            legs.exten(a, 6, "Hangup", "21")
            self._reject(21, "rejected", "Hangup", "21")
            return False
        if self._hangup.done():
            self._end_before_dial(self._hangup.result(), "GotoIf", "1?allowed", agi_hangup=False)
            return False
        return True

    async def _run_agi(self, host: str, port: int) -> AgiStatus | HangupRequest:
        cfg = self._cfg
        task = asyncio.ensure_future(run_fastagi(host, port, self.agi_env, self._agi_command,
                                                 self.agi, cfg.agi_connect_timeout_s))
        either: set[asyncio.Future[Any]] = {task, self._hangup}
        try:
            await asyncio.wait(either, timeout=cfg.agi_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if self._hangup.done():
            return self._hangup.result()
        if task.cancelled():  # the FastAGI server never closed: a real Asterisk waits forever
            return HangupRequest("stuck", 16, self.legs.h)
        return task.result()

    def _agi_command(self, line: str) -> str:
        return agi_step.handle_command(self.legs, line, self.agi_variables)

    # -- endings before Dial -----------------------------------------------------------------
    def _reject(self, cause: int, reason: EndedBy, last_app: str, last_data: str) -> None:
        legs = self.legs
        end = legs.begin_end()
        legs.cdrs = [legs.cdr(last_app, last_data, "", legs.a.created_us, None, end, "NO ANSWER")]
        td.end_unbridged(legs, cause)
        self.ended_by = reason

    def _end_before_dial(self, req: HangupRequest, last_app: str, last_data: str,
                         agi_hangup: bool) -> None:
        legs = self.legs
        end = legs.begin_end()
        legs.cdrs = [legs.cdr(last_app, last_data, "", legs.a.created_us, None, end, "NO ANSWER")]
        if req.target is legs.h or req.reason == "stuck":
            td.caller_hangs_up_first(legs, req.cause)
        if agi_hangup:
            self.agi_status = "HANGUP"
            legs.var(legs.a, "AGISTATUS", "HANGUP")
        td.end_unbridged(legs, req.cause, h_status="CANCEL")
        self.ended_by = req.reason

    # -- Dial --------------------------------------------------------------------------------
    async def _dial(self, priority: int) -> None:
        legs, s, a = self.legs, self.spec, self.legs.a
        dial_timeout = s.ring_s if s.outcome == "noanswer" else self._cfg.dial_timeout_s
        data = f"Local/{s.destination}@callee/n,{seconds_text(dial_timeout)}"
        accepted = True
        if self._cfg.agi is not None:
            raw = a.variables.get("CHARGING_MAXMS", "")
            data += f",L({raw})"
            accepted, self.limit_ms = parse_limit(raw)
        self._dial_data = data
        legs.exten(a, priority, "Dial", data)
        legs.dial_start_us = legs.clock.now_us()
        for name in DIAL_VARS:
            legs.var(a, name, "")
        if not accepted:  # Dial logs "does not accept L(...)" and returns -1
            self._reject(0, "rejected", "Dial", data)
            return
        ids = (self._next_uniqueid(), self._next_uniqueid())
        progress.open_callee(legs, self._inherited(), self._next_local(), ids)
        if await self._ring(priority, dial_timeout):
            await self._talk()

    async def _ring(self, priority: int, dial_timeout: float) -> bool:
        """The callee's dialplan up to its answer; True when answered."""
        legs, s = self.legs, self.spec
        a, h = legs.a, legs.h
        assert legs.b1 is not None and legs.b2 is not None
        b1, b2 = legs.b1, legs.b2
        legs.exten(b2, 1, "NoOp", f"CALLEE {s.destination} (mode={s.outcome}) "
                                  f"called by {s.caller}")
        legs.exten(b2, 2, "Set", "CDR_PROP(disable)=1")
        legs.exten(b2, 3, "GotoIf", f"{int(s.outcome == 'busy')}?busy")
        if s.outcome == "busy":
            self._dial_failed("BUSY", 17, "busy", priority, td.callee_busy)
            return False
        legs.exten(b2, 4, "GotoIf", f"{int(s.outcome == 'congestion')}?congestion")
        if s.outcome == "congestion":
            self._dial_failed("CONGESTION", 34, "congestion", priority, td.callee_congestion)
            return False
        legs.exten(b2, 5, "Ringing", "")
        legs.state(b1, STATE_RINGING)
        noanswer = s.outcome == "noanswer" or s.ring_s >= dial_timeout
        legs.exten(b2, 6, "GotoIf", f"{int(noanswer)}?noanswer")
        legs.state(h, STATE_RINGING)
        legs.var(a, "RINGTIME", "0")
        legs.var(a, "RINGTIME_MS", str(max(0, (legs.clock.now_us() - (legs.dial_start_us or 0))
                                           // 1000)))
        legs.exten(b2, 7, "Wait", "86400" if noanswer else seconds_text(s.ring_s))
        legs.emit(ev.dial_state(None, h, "RINGING"))
        legs.emit(ev.dial_state(a, b1, "RINGING"))
        ring = dial_timeout if noanswer else s.ring_s
        req = await self._wait_until(self._loop.time() + ring)
        if req is not None:
            if req.target in (b1, b2):
                self._dial_failed("NOANSWER", 19, req.reason, priority,
                                  lambda legs: td.callee_noanswer(legs, req.cause))
                return False
            end = legs.begin_end()
            legs.cdrs = [legs.cdr("Dial", self._dial_data, b1.name, a.created_us, None, end,
                                  "NO ANSWER")]
            if req.target is h:
                td.caller_hangs_up_first(legs, req.cause)
            td.cancel_dial(legs, req.cause)
            self.dial_status, self.ended_by = "CANCEL", req.reason
            return False
        if noanswer:
            self._dial_failed("NOANSWER", 19, "noanswer", priority, td.callee_noanswer)
            return False
        progress.answer(legs)
        self._answer_mono = self._loop.time()
        self.dial_status = "ANSWER"
        self.answered.set()
        return True

    def _dial_failed(self, status: str, cause: int, reason: EndedBy, priority: int,
                     callee_part: Callable[[Legs], None]) -> None:
        """An unanswered Dial: two CDRs (``unanswered = yes``), the Dial's and the Hangup's."""
        legs = self.legs
        assert legs.b1 is not None
        end = legs.begin_end()
        disposition = _DISPOSITION[status]
        legs.cdrs = [
            legs.cdr("Dial", self._dial_data, legs.b1.name, legs.a.created_us, None, end,
                     disposition),
            legs.cdr("Hangup", str(cause), "", end, None, end, disposition),
        ]
        callee_part(legs)
        td.end_dial_failed(legs, status, cause, priority + 1)
        self.dial_status, self.ended_by = status, reason

    async def _talk(self) -> None:
        legs, s = self.legs, self.spec
        assert legs.b1 is not None and legs.answer_us is not None
        limit_s = math.inf if self.limit_ms is None else self.limit_ms / 1000
        planned = min(s.talk_s, limit_s)
        req = await self._wait_until(self._answer_mono + planned)
        if req is None:
            legs.not_before = legs.answer_us + round(planned * US)
        end = legs.begin_end()
        legs.cdrs = [legs.cdr("Dial", self._dial_data, legs.b1.name, legs.a.created_us,
                              legs.answer_us, end, "ANSWERED")]
        if req is not None:
            if req.target in (legs.b1, legs.b2):
                td.end_by_callee(legs, req.cause, dialplan=False)
            else:
                if req.target is legs.h:
                    td.caller_hangs_up_first(legs, req.cause)
                td.end_from_caller_side(legs, req.cause)
            self.ended_by = req.reason
        elif limit_s <= s.talk_s:
            td.end_by_limit(legs)
            self.ended_by = "limit"
        elif s.hangup_by == "callee":
            td.end_by_callee(legs, 16, dialplan=True)
            self.ended_by = "callee"
        else:
            td.caller_hangs_up_first(legs, 16)
            td.end_from_caller_side(legs, 16)
            self.ended_by = "caller"

    # -- result ------------------------------------------------------------------------------
    def _record(self) -> CallRecord:
        legs = self.legs
        assert self.ended_by is not None and legs.hangup_us is not None
        assert legs.hangup_cause is not None and legs.cdrs
        first = legs.cdrs[0]
        return CallRecord(
            spec=self.spec, call_id=self.call_id, uniqueid=legs.a.uniqueid,
            linkedid=legs.a.linkedid, channel=legs.a.name, handset_channel=legs.h.name,
            callee_channel=legs.b1.name if legs.b1 else None,
            callee_uniqueid=legs.b1.uniqueid if legs.b1 else None,
            accountcode=legs.a.accountcode, agi_status=self.agi_status,
            agi_env=tuple(self.agi_env), agi_commands=tuple(self.agi.commands),
            agi_variables=dict(self.agi_variables), limit_ms=self.limit_ms,
            dial_status=self.dial_status,
            answer_time=None if legs.answer_us is None else legs.answer_us / US,
            end_time=legs.hangup_us / US, hangup_cause=legs.hangup_cause,
            hangup_cause_txt=cause_text(legs.hangup_cause),
            billable_seconds=first.billable_seconds, disposition=first.disposition,
            ended_by=self.ended_by, cdrs=tuple(legs.cdr_events), events=tuple(legs.events))
