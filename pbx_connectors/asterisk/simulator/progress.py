"""How a call gets going, event by event, as the recorded Asterisk 22 did it (03, 06).

The originate-style start of the Local pair (handset ``;1``, A-leg ``;2``), the Dial creating
the callee's Local pair, and the answer that bridges the A-leg with the callee. The endings
are in ``teardown.py``.
"""

from __future__ import annotations

import uuid

from . import events as ev
from .channels import STATE_DOWN, STATE_RING, STATE_UP, Bridge, Channel
from .legs import Legs, seconds_text

Vars = list[tuple[str, str]]


def start(legs: Legs, inherited: Vars) -> None:
    """Both halves of the caller's Local channel appear and the ``;1`` half is dialled."""
    caller = legs.spec.caller
    h, a = legs.h, legs.a
    legs.open(h)
    legs.open(a)
    legs.exten(h, 1, "AppDial2", "(Outgoing Line)")
    for name, value in reversed(inherited):
        legs.var(h, name, value)
    h.caller_num = h.caller_name = h.connected_num = h.connected_name = caller
    legs.emit(ev.newcallerid(h))
    legs.emit(ev.newconnectedline(h))
    for name, value in inherited:
        legs.var(a, name, value)
    a.caller_num = a.caller_name = a.connected_num = a.connected_name = caller
    legs.emit(ev.newcallerid(a))
    legs.emit(ev.newconnectedline(a))
    legs.emit(ev.local_bridge(h, a))
    legs.emit(ev.dial_begin(None, h, f"{h.exten}@{h.context}/n"))


def open_callee(legs: Legs, inherited: Vars, local_no: int, ids: tuple[str, str]) -> None:
    """Dial requests ``Local/<to>@callee``: its two halves, then DialBegin from the A-leg."""
    s, a = legs.spec, legs.a
    base = f"Local/{s.destination}@callee-{local_no:08x}"
    b1 = Channel(f"{base};1", ids[0], a.linkedid, "callee", s.destination, STATE_DOWN,
                 accountcode=a.accountcode)
    b2 = Channel(f"{base};2", ids[1], a.linkedid, "callee", s.destination, STATE_RING,
                 accountcode=a.accountcode)
    legs.b1, legs.b2 = b1, b2
    legs.open(b1)
    legs.open(b2)
    peer = f"{s.destination}@callee/n"
    legs.var(b1, "DIALEDPEERNUMBER", peer)
    for name, value in inherited:
        legs.var(b1, name, value)
    b1.caller_num, b1.caller_name = s.destination, s.caller
    b1.connected_num = b1.connected_name = s.caller
    legs.exten(b1, 1, "AppDial", "(Outgoing Line)")
    legs.emit(ev.newcallerid(b1))
    legs.emit(ev.newconnectedline(b1))
    legs.var(b2, "DIALEDPEERNUMBER", peer)
    for name, value in inherited:
        legs.var(b2, name, value)
    b2.caller_num = b2.caller_name = b2.connected_name = s.caller
    b2.connected_num = s.destination
    legs.emit(ev.newcallerid(b2))
    legs.emit(ev.newconnectedline(b2))
    legs.emit(ev.local_bridge(b1, b2))
    legs.emit(ev.dial_begin(a, b1, peer))


def answer(legs: Legs) -> None:
    """The callee answers: DialEnd ANSWER (the billable answer), bridge, talk Gosub."""
    s, a, h = legs.spec, legs.a, legs.h
    assert legs.b1 is not None and legs.b2 is not None
    b1, b2 = legs.b1, legs.b2
    legs.exten(b2, 8, "Answer", "")
    legs.state(b2, STATE_UP)
    legs.cel(b2, "ANSWER")
    legs.state(b1, STATE_UP)
    legs.cel(b1, "ANSWER")
    legs.var(a, "DIALSTATUS", "ANSWER")
    legs.var(a, "DIALEDPEERNAME", b1.name)
    legs.var(a, "DIALEDPEERNUMBER", f"{s.destination}@callee/n")
    legs.answer_us = legs.emit(ev.dial_end(a, b1, "ANSWER"))
    legs.state(a, STATE_UP)
    legs.cel(a, "ANSWER")
    legs.state(h, STATE_UP)
    legs.cel(h, "ANSWER")
    legs.bridge = Bridge(str(uuid.uuid4()))
    legs.emit(ev.bridge_create(legs.bridge))
    legs.emit(ev.dial_end(None, h, "ANSWER"))
    legs.exten(b1, 1, "AppDial", "(Outgoing Line)")
    legs.enter_bridge(b1)
    legs.enter_bridge(a)
    legs.var(b1, "BRIDGEPEER", a.name)
    legs.var(a, "BRIDGEPEER", b1.name)
    talk = seconds_text(s.talk_s)
    legs.exten(b2, 9, "Gosub", f"talk,s,1({talk})")
    b2.context, b2.exten = "talk", "s"
    legs.var(b2, "LOCAL(ARG1)", talk)
    legs.var(b2, "LOCAL(ARGC)", "1")
    legs.exten(b2, 1, "Wait", talk)
