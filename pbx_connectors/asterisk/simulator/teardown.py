"""How a call ends, event by event, in the order the recorded Asterisk 22 produced.

Each function is one ending seen in the transcripts: the dialplan refusing the call before Dial
(05, 07), the callee busy (08) or not answering (09), the caller cancelling while it rings,
and an answered call ended by the callee (03), by Dial's ``L()`` limit (06) or from the
caller's side (04: AMI Hangup; also AbsoluteTimeout and the handset hanging up). The CDRs are
computed by the caller before these run; ``cdr_early`` puts them where the transcripts do.
"""

from __future__ import annotations

from . import events as ev
from .channels import STATE_BUSY, Channel
from .legs import Legs


def _b(legs: Legs) -> tuple[Channel, Channel]:
    assert legs.b1 is not None and legs.b2 is not None
    return legs.b1, legs.b2


def caller_hangs_up_first(legs: Legs, cause: int) -> None:
    """The handset half hangs up: its Local peer (the A-leg) gets the hangup queued."""
    if legs.alive(legs.h):
        legs.hangup_request(legs.a, cause)
        legs.hang(legs.h, cause)


def end_unbridged(legs: Legs, cause: int, h_status: str = "NOANSWER") -> None:
    """The A-leg's dialplan ends before any Dial (05, 07): ``Hangup(cause)`` or a hangup."""
    a, h = legs.a, legs.h
    legs.soft_hangup(a)
    if legs.alive(h):
        legs.hangup_request(h, cause)
    legs.cdr_early()
    legs.hang(a, cause)
    if legs.alive(h):
        legs.emit(ev.dial_end(None, h, h_status))
        legs.hang(h, cause)


def callee_busy(legs: Legs) -> None:
    """08: the callee runs ``Busy()``; Dial gives up at once with DIALSTATUS=BUSY."""
    b1, b2 = _b(legs)
    legs.exten(b2, 10, "Busy", "10")
    legs.emit(ev.dial_end(legs.a, b1, "BUSY"))
    legs.hangup_request(b2, 0)
    legs.var(legs.a, "DIALSTATUS", "BUSY")
    legs.hang(b1, 0)
    legs.state(b2, STATE_BUSY)
    legs.soft_hangup(b2)


def callee_congestion(legs: Legs) -> None:
    """The callee runs ``Congestion()``: DIALSTATUS=CONGESTION (CDR disposition FAILED)."""
    b1, b2 = _b(legs)
    legs.exten(b2, 12, "Congestion", "10")
    legs.emit(ev.dial_end(legs.a, b1, "CONGESTION"))
    legs.hangup_request(b2, 0)
    legs.var(legs.a, "DIALSTATUS", "CONGESTION")
    legs.hang(b1, 0)
    legs.soft_hangup(b2)


def callee_noanswer(legs: Legs, cause: int = 0) -> None:
    """09: the Dial timeout expires (or the callee leg goes away) while it rings."""
    b1, b2 = _b(legs)
    legs.emit(ev.dial_end(legs.a, b1, "NOANSWER"))
    legs.hangup_request(b2, cause)
    legs.hang(b1, cause)
    legs.soft_hangup(b2)
    legs.hang(b2, cause)
    legs.var(legs.a, "DIALSTATUS", "NOANSWER")


def end_dial_failed(legs: Legs, status: str, cause: int, priority: int) -> None:
    """08/09: after an unanswered Dial the dialplan logs DIALSTATUS and hangs up with cause."""
    a, h = legs.a, legs.h
    legs.exten(a, priority, "NoOp", f"DIALSTATUS={status} DIALEDTIME= ANSWEREDTIME=")
    legs.exten(a, priority + 1, "Hangup", str(cause))
    legs.soft_hangup(a)
    if legs.alive(h):
        legs.var(h, "CHANLOCALSTATUS", status)
        legs.hangup_request(h, cause)
    legs.cdr_early()
    legs.hang(a, cause)
    if legs.alive(h):
        legs.emit(ev.dial_end(None, h, status))
        legs.hang(h, cause)
    if legs.alive(legs.b2):
        assert legs.b2 is not None
        legs.hang(legs.b2, cause)


def cancel_dial(legs: Legs, cause: int) -> None:
    """The caller's side goes away while the callee rings: Dial ends with CANCEL."""
    a, h = legs.a, legs.h
    b1, b2 = _b(legs)
    legs.emit(ev.dial_end(a, b1, "CANCEL"))
    legs.hangup_request(b2, cause)
    legs.hang(b1, cause)
    legs.soft_hangup(b2)
    legs.hang(b2, cause)
    legs.var(a, "DIALSTATUS", "CANCEL")
    legs.soft_hangup(a)
    if legs.alive(h):
        legs.var(h, "CHANLOCALSTATUS", "CANCEL")
        legs.hangup_request(h, cause)
    legs.cdr_early()
    legs.hang(a, cause)
    if legs.alive(h):
        legs.emit(ev.dial_end(None, h, "CANCEL"))
        legs.hang(h, cause)


def _dial_times(legs: Legs) -> None:
    """Dial's result variables on the A-leg once the bridge is over (03, 04, 06)."""
    talk_ms = legs.elapsed_ms(legs.answer_us)
    dialed_ms = legs.elapsed_ms(legs.dial_start_us)
    legs.var(legs.a, "ANSWEREDTIME", str(talk_ms // 1000))
    legs.var(legs.a, "ANSWEREDTIME_MS", str(talk_ms))
    legs.var(legs.a, "DIALEDTIME", str(dialed_ms // 1000))
    legs.var(legs.a, "DIALEDTIME_MS", str(dialed_ms))
    legs.var(legs.a, "DIALSTATUS", "ANSWER")


def _unbridge_callee(legs: Legs, b1: Channel) -> None:
    """The callee side's Local half leaves the bridge (03, 06)."""
    legs.var(b1, "BRIDGEPEER", "")
    legs.var(legs.a, "BRIDGEPEER", "")
    legs.leave_bridge(b1)


def _caller_leaves(legs: Legs, cause: int) -> None:
    """Once the callee side is gone: early CDR, the caller leaves and the bridge goes, Dial's
    result variables, and the caller's hangup starts (03, 06)."""
    legs.cdr_early()
    legs.leave_bridge(legs.a)
    legs.destroy_bridge()
    _dial_times(legs)
    legs.soft_hangup(legs.a)
    if legs.alive(legs.h):
        legs.var(legs.h, "CHANLOCALSTATUS", "ANSWER")
        legs.hangup_request(legs.h, cause)


def end_by_callee(legs: Legs, cause: int, dialplan: bool) -> None:
    """03: the callee leg hangs up (its dialplan returns from the talk Gosub, or AMI)."""
    a, h = legs.a, legs.h
    b1, b2 = _b(legs)
    if dialplan:
        b2.context, b2.exten = "talk", "s"
        legs.exten(b2, 2, "Return", "")
        for name in ("ARGC", "ARG1", "GOSUB_RETVAL"):
            legs.var(b2, name, "")
        b2.context, b2.exten = "callee", legs.spec.destination
        legs.exten(b2, 10, "Hangup", "")
    legs.soft_hangup(b2)
    legs.hangup_request(b1, cause)
    legs.hang(b2, cause)
    _unbridge_callee(legs, b1)
    legs.hang(b1, cause)
    _caller_leaves(legs, cause)
    legs.hang(a, cause)
    if legs.alive(h):
        legs.hang(h, cause)


def end_by_limit(legs: Legs, cause: int = 16) -> None:
    """06: Dial's ``L()`` limit expires; the bridge pushes the callee out first."""
    a, h = legs.a, legs.h
    b1, b2 = _b(legs)
    _unbridge_callee(legs, b1)
    legs.hangup_request(b2, cause)
    legs.hang(b1, cause)
    _caller_leaves(legs, cause)
    legs.hang(a, cause)
    legs.soft_hangup(b2)
    legs.hang(b2, cause)
    if legs.alive(h):
        legs.hang(h, cause)


def end_from_caller_side(legs: Legs, cause: int) -> None:
    """04: the A-leg is hung up while bridged (AMI Hangup, AbsoluteTimeout, the handset)."""
    a, h = legs.a, legs.h
    b1, b2 = _b(legs)
    legs.var(a, "BRIDGEPEER", "")
    legs.cdr_early()
    legs.leave_bridge(a)
    _dial_times(legs)
    legs.soft_hangup(a)
    if legs.alive(h):
        legs.var(h, "CHANLOCALSTATUS", "ANSWER")
        legs.hangup_request(h, cause)
    legs.hang(a, cause)
    legs.var(b1, "BRIDGEPEER", "")
    legs.leave_bridge(b1)
    legs.hangup_request(b2, cause)
    legs.hang(b1, cause)
    legs.destroy_bridge()
    if legs.alive(h):
        legs.hang(h, cause)
    legs.soft_hangup(b2)
    legs.hang(b2, cause)
