"""AMI event builders with the header sets and order of a real Asterisk 22.

Each returns a ``Message`` starting ``Event``, ``Privilege``; the emitter inserts ``Timestamp``
after ``Privilege`` (``timestampevents = yes``) when it sends it. Field lists were taken from
the recorded transcripts in ``shared/field-notes/asterisk-transcripts``.
"""

from __future__ import annotations

import json
import time

from ..ami_protocol import Message, ProtocolError
from .channels import Bridge, Channel, cause_text

CALL = "call,all"
DIALPLAN = "dialplan,all"
AGI = "agi,all"
CDR = "cdr,all"


def encode(msg: Message) -> bytes:
    """``Message.encode`` with one check for the whole message instead of one per header.

    Any CR or LF inside a key or value shows up as an extra line break in the joined text.
    """
    text = "".join([f"{k}: {v}\r\n" for k, v in msg.pairs]) + "\r\n"
    lines = len(msg.pairs) + 1
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ProtocolError(f"{msg.event or 'message'} holds a line break in a header")
    return text.encode()


def _event(name: str, privilege: str, pairs: list[tuple[str, str]]) -> Message:
    return Message([("Event", name), ("Privilege", privilege), *pairs])


def newchannel(ch: Channel) -> Message:
    return _event("Newchannel", CALL, ch.snapshot())


def newstate(ch: Channel) -> Message:
    return _event("Newstate", CALL, ch.snapshot())


def newexten(ch: Channel, application: str, data: str) -> Message:
    return _event("Newexten", DIALPLAN, [*ch.snapshot(), ("Extension", ch.exten),
                                         ("Application", application), ("AppData", data)])


def varset(ch: Channel, variable: str, value: str) -> Message:
    return _event("VarSet", DIALPLAN, [*ch.snapshot(), ("Variable", variable), ("Value", value)])


def newcallerid(ch: Channel) -> Message:
    return _event("NewCallerid", CALL,
                  [*ch.snapshot(), ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])


def newconnectedline(ch: Channel) -> Message:
    return _event("NewConnectedLine", CALL, ch.snapshot())


def local_bridge(one: Channel, two: Channel) -> Message:
    return _event("LocalBridge", CALL, [*one.snapshot("LocalOne"), *two.snapshot("LocalTwo"),
                                        ("Context", one.context), ("Exten", one.exten),
                                        ("LocalOptimization", "No")])


def _dial(name: str, caller: Channel | None, dest: Channel, tail: tuple[str, str]) -> Message:
    pairs = caller.snapshot() if caller is not None else []
    return _event(name, CALL, [*pairs, *dest.snapshot("Dest"), tail])


def dial_begin(caller: Channel | None, dest: Channel, dialstring: str) -> Message:
    """``caller`` is None for the originate-style dial of a Local ``;1`` half."""
    return _dial("DialBegin", caller, dest, ("DialString", dialstring))


def dial_state(caller: Channel | None, dest: Channel, status: str) -> Message:
    return _dial("DialState", caller, dest, ("DialStatus", status))


def dial_end(caller: Channel | None, dest: Channel, status: str) -> Message:
    return _dial("DialEnd", caller, dest, ("DialStatus", status))


def bridge_create(bridge: Bridge) -> Message:
    return _event("BridgeCreate", CALL, bridge.snapshot())


def bridge_enter(bridge: Bridge, ch: Channel) -> Message:
    return _event("BridgeEnter", CALL, [*bridge.snapshot(), *ch.snapshot()])


def bridge_leave(bridge: Bridge, ch: Channel) -> Message:
    return _event("BridgeLeave", CALL, [*bridge.snapshot(), *ch.snapshot()])


def bridge_destroy(bridge: Bridge) -> Message:
    return _event("BridgeDestroy", CALL, bridge.snapshot())


def soft_hangup_request(ch: Channel, cause: int = 16) -> Message:
    # Its Cause is the soft-hangup flag (AST_SOFTHANGUP_APPUNLOAD = 16), not a Q.850 cause.
    return _event("SoftHangupRequest", CALL, [*ch.snapshot(), ("Cause", str(cause))])


def hangup_request(ch: Channel, cause: int) -> Message:
    return _event("HangupRequest", CALL, [*ch.snapshot(), ("Cause", str(cause))])


def hangup(ch: Channel, cause: int) -> Message:
    return _event("Hangup", CALL, [*ch.snapshot(), ("Cause", str(cause)),
                                   ("Cause-txt", cause_text(cause))])


def agi_exec_start(ch: Channel, command_id: int, command: str) -> Message:
    return _event("AGIExecStart", AGI, [*ch.snapshot(), ("CommandId", str(command_id)),
                                        ("Command", command)])


def agi_exec_end(ch: Channel, command_id: int, command: str, code: int, result: str) -> Message:
    return _event("AGIExecEnd", AGI, [*ch.snapshot(), ("CommandId", str(command_id)),
                                      ("Command", command), ("ResultCode", str(code)),
                                      ("Result", result)])


def cdr(fields: list[tuple[str, str]]) -> Message:
    return _event("Cdr", CDR, fields)


def local_time(ts: float) -> str:
    """CDR/CEL time format: the server's local time, 1 s resolution."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def cel(ch: Channel, name: str, ts: float, peer: str = "", extra: dict[str, object] | None = None,
        ) -> Message:
    """A cel_manager ``CEL`` event (the common subset: start, answer, hangup, end)."""
    return _event("CEL", CALL, [
        ("EventName", name),
        ("AccountCode", ch.accountcode),
        ("CallerIDnum", "" if ch.caller_num == "<unknown>" else ch.caller_num),
        ("CallerIDname", "" if ch.caller_name == "<unknown>" else ch.caller_name),
        ("CallerIDani", ""),
        ("CallerIDrdnis", ""),
        ("CallerIDdnid", ""),
        ("Exten", ch.exten),
        ("Context", ch.context),
        ("Channel", ch.name),
        ("Application", ch.application),
        ("AppData", ch.app_data),
        ("EventTime", local_time(ts)),
        ("AMAFlags", "DOCUMENTATION"),
        ("UniqueID", ch.uniqueid),
        ("LinkedID", ch.linkedid),
        ("Userfield", ""),
        ("Peer", peer),
        ("PeerAccount", ""),
        ("Extra", json.dumps(extra, separators=(",", ":")) if extra else ""),
    ])
