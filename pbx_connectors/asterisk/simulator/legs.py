"""The channels of one call and the primitives that change them and say so on AMI.

Every change goes through a method here that updates the channel first and then emits the
event, so events carry the state the change produced (as Asterisk's snapshots do). Emission
stamps the event, keeps a copy for the call's record and hands it to the AMI sink.
"""

from __future__ import annotations

from collections.abc import Callable

from ..ami_protocol import Message
from . import events as ev
from .cdr import CdrRecord, tvdiff_ms
from .channels import STATE_DOWN, STATE_RING, Bridge, Channel
from .clock import US, EventClock, format_ts
from .scenario import CallSpec

# sink(message, event kinds this call sends twice)
Sink = Callable[[Message, frozenset[str]], None]

DIAL_VARS = ("DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME",
             "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS",
             "PROGRESSTIME", "PROGRESSTIME_MS")


def seconds_text(s: float) -> str:
    return f"{s:g}"


class Legs:
    """Handset half ``h`` (``;1``), billable A-leg ``a`` (``;2``), callee halves ``b1``/``b2``."""

    def __init__(self, spec: CallSpec, call_id: str, context: str, local_no: int,
                 clock: EventClock, sink: Sink, *, cel: bool, record: bool) -> None:
        self.spec = spec
        self.clock = clock
        self._sink = sink
        self._cel_on = cel
        self._record = record
        to, acct = spec.destination, spec.account
        base = f"Local/{to}@{context}-{local_no:08x}"
        hid = f"{call_id}-h"
        self.h = Channel(f"{base};1", hid, hid, context, to, STATE_DOWN, accountcode=acct)
        self.a = Channel(f"{base};2", f"{call_id}-a", hid, context, to, STATE_RING,
                         accountcode=acct)
        self.b1: Channel | None = None
        self.b2: Channel | None = None
        self.bridge: Bridge | None = None
        self.live: list[Channel] = []
        self.events: list[Message] = []
        self.not_before = 0
        self.dial_start_us: int | None = None
        self.dial_end_us: int | None = None
        self.answer_us: int | None = None
        self.end_us: int | None = None
        self.hangup_us: int | None = None
        self.hangup_cause: int | None = None
        self.cdrs: list[CdrRecord] = []
        self.cdr_events: list[Message] = []
        self._cdr_sent = False

    # -- emission ------------------------------------------------------------------------
    def emit(self, msg: Message) -> int:
        us = self.clock.now_us(self.not_before)
        msg.pairs.insert(2, ("Timestamp", format_ts(us)))
        if self._record:
            self.events.append(msg)
        self._sink(msg, self.spec.duplicate)
        return us

    def cel(self, ch: Channel, name: str, peer: str = "",
            extra: dict[str, object] | None = None) -> None:
        if self._cel_on:
            self.emit(ev.cel(ch, name, self.clock.now_us() / US, peer, extra))

    # -- channel lifecycle -----------------------------------------------------------------
    def open(self, ch: Channel) -> None:
        self.cel(ch, "CHAN_START")
        ch.created_us = self.emit(ev.newchannel(ch))
        self.live.append(ch)

    def state(self, ch: Channel, state: int) -> None:
        ch.state = state
        self.emit(ev.newstate(ch))

    def exten(self, ch: Channel, priority: int, app: str, data: str) -> None:
        ch.priority, ch.application, ch.app_data = priority, app, data
        self.emit(ev.newexten(ch, app, data))

    def var(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value
        self.emit(ev.varset(ch, name, value))

    def soft_hangup(self, ch: Channel) -> None:
        self.emit(ev.soft_hangup_request(ch))

    def hangup_request(self, ch: Channel, cause: int) -> None:
        self.emit(ev.hangup_request(ch, cause))

    def hang(self, ch: Channel, cause: int) -> None:
        if ch.hungup:
            return
        ch.hungup = True
        self.live.remove(ch)
        us = self.emit(ev.hangup(ch, cause))
        if ch is self.a:
            self.hangup_us, self.hangup_cause = us, cause
        self.cel(ch, "HANGUP", extra={"hangupcause": cause, "hangupsource": "",
                                      "dialstatus": self.a.variables.get("DIALSTATUS", "")})
        self.cel(ch, "CHAN_END")
        if not self.live:
            self.cel(ch, "LINKEDID_END")

    def alive(self, ch: Channel | None) -> bool:
        return ch is not None and not ch.hungup and ch in self.live

    # -- bridge ------------------------------------------------------------------------------
    def enter_bridge(self, ch: Channel) -> None:
        assert self.bridge is not None
        self.bridge.members.append(ch)
        ch.bridge_id = self.bridge.uniqueid
        self.emit(ev.bridge_enter(self.bridge, ch))

    def leave_bridge(self, ch: Channel) -> None:
        if self.bridge is None or ch not in self.bridge.members:
            return
        self.bridge.members.remove(ch)
        ch.bridge_id = ""
        self.emit(ev.bridge_leave(self.bridge, ch))

    def destroy_bridge(self) -> None:
        if self.bridge is not None:
            self.emit(ev.bridge_destroy(self.bridge))

    # -- timing and CDRs ---------------------------------------------------------------------
    def begin_end(self) -> int:
        """The moment the call starts to end: the CDR end time."""
        self.end_us = self.clock.now_us(self.not_before)
        return self.end_us

    def elapsed_ms(self, since_us: int | None) -> int:
        assert self.end_us is not None
        return 0 if since_us is None else tvdiff_ms(self.end_us, since_us)

    def cdr(self, last_app: str, last_data: str, dest_channel: str, start_us: int,
            answer_us: int | None, end_us: int, disposition: str) -> CdrRecord:
        caller = self.spec.caller
        return CdrRecord(
            accountcode=self.a.accountcode, source=caller, destination=self.spec.destination,
            destination_context=self.a.context, callerid=f'"{caller}" <{caller}>',
            channel=self.a.name, destination_channel=dest_channel, last_application=last_app,
            last_data=last_data, start_us=start_us, answer_us=answer_us, end_us=end_us,
            disposition=disposition, uniqueid=self.a.uniqueid, linkedid=self.a.linkedid)

    def cdr_early(self) -> None:
        """The transcripts' position of the Cdr (before the A-leg's Hangup), if chosen."""
        if self.spec.cdr_first:
            self._send_cdrs()

    def cdr_late(self) -> None:
        """After every Hangup of the call, unless already sent early."""
        self._send_cdrs()

    def _send_cdrs(self) -> None:
        if self._cdr_sent:
            return
        self._cdr_sent = True
        for rec in self.cdrs:
            msg = ev.cdr(rec.fields())
            self.emit(msg)
            self.cdr_events.append(msg)
