"""What a test asks the simulated PBX to do (``CallSpec``) and what happened (``CallRecord``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from ..ami_protocol import Message

Outcome = Literal["answer", "busy", "noanswer", "congestion"]
HangupBy = Literal["caller", "callee"]
EndedBy = Literal[
    "limit",             # Dial's L() limit (CHARGING_MAXMS) cut the answered call
    "ami_hangup",        # an AMI Hangup action
    "absolute_timeout",  # an AMI AbsoluteTimeout fired
    "caller",            # the handset hung up after talk_s
    "callee",            # the callee hung up after talk_s
    "rejected",          # the dialplan refused the call (CHARGING_STATUS not ALLOWED, bad MAXMS)
    "agi_failure",       # nothing answered the FastAGI connect (AGISTATUS=FAILURE)
    "stuck",             # the FastAGI server never closed; given up after agi_timeout_s
    "busy",              # the callee was busy
    "noanswer",          # the callee did not answer within the dial timeout
    "congestion",        # the callee's route was congested
]

_DEST_RE = re.compile(r"^[0-9A-Za-z+*#]{1,64}$")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_EVENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
MAX_SECONDS = 86_400.0


class ScenarioError(ValueError):
    """A call specification the simulator cannot play."""


def _check_text(name: str, value: object, *, empty: bool) -> None:
    if not isinstance(value, str):
        raise ScenarioError(f"{name} must be a string, not {type(value).__name__}")
    if not empty and not value:
        raise ScenarioError(f"{name} must not be empty")
    if len(value) > 80 or any(ord(c) < 32 or c in '"<>;,' for c in value):
        raise ScenarioError(f"{name} {value!r}: at most 80 printable characters, no \";,<>")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise ScenarioError(f"{name} must be between 0 and {MAX_SECONDS:g} seconds, not {value}")


@dataclass(frozen=True, slots=True)
class CallSpec:
    """One call: who calls what, how long it rings and talks, how it ends, which faults.

    ``ring_s`` is the ringing time before the callee answers (for ``noanswer`` it is the Dial
    timeout after which the caller gives up). ``duplicate`` names event kinds this call sends
    twice; ``cdr_first`` sends the A-leg's Cdr before its Hangup (as transcripts 03/04/06),
    otherwise after it (as some calls of transcript 10).
    """

    account: str
    caller: str
    destination: str
    ring_s: float = 0.2
    talk_s: float = 1.0
    outcome: Outcome = "answer"
    hangup_by: HangupBy = "caller"
    cdr_first: bool = False
    duplicate: frozenset[str] = frozenset()
    call_id: str | None = None

    def __post_init__(self) -> None:
        _check_text("account", self.account, empty=True)
        _check_text("caller", self.caller, empty=False)
        if not isinstance(self.destination, str) or not _DEST_RE.match(self.destination):
            raise ScenarioError(f"destination {self.destination!r}: 1-64 of 0-9 A-Z a-z + * #")
        _check_seconds("ring_s", self.ring_s)
        _check_seconds("talk_s", self.talk_s)
        if self.outcome not in get_args(Outcome):
            raise ScenarioError(f"outcome {self.outcome!r} is not one of {get_args(Outcome)}")
        if self.hangup_by not in get_args(HangupBy):
            raise ScenarioError(f"hangup_by {self.hangup_by!r} is not one of {get_args(HangupBy)}")
        if not isinstance(self.cdr_first, bool):
            raise ScenarioError("cdr_first must be a bool")
        if isinstance(self.duplicate, str) or not all(
            isinstance(k, str) and _EVENT_RE.match(k) for k in self.duplicate
        ):
            raise ScenarioError(f"duplicate must be a set of event names, not {self.duplicate!r}")
        object.__setattr__(self, "duplicate", frozenset(self.duplicate))
        if self.call_id is not None and not (
            isinstance(self.call_id, str) and _ID_RE.match(self.call_id)
        ):
            raise ScenarioError(f"call_id {self.call_id!r}: 1-64 of A-Z a-z 0-9 . _ -")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What happened to one call, with the values the PBX put on the wire.

    Times are epoch seconds equal to the events' ``Timestamp``: ``answer_time`` is the A-leg's
    ``DialEnd`` ANSWER, ``end_time`` its ``Hangup``. ``billable_seconds`` and ``disposition``
    are those of the A-leg's (first) Cdr; ``cdrs`` holds every Cdr event of the call and
    ``events`` every event it emitted (when the simulator records them).
    """

    spec: CallSpec
    call_id: str
    uniqueid: str
    linkedid: str
    channel: str
    handset_channel: str
    callee_channel: str | None
    callee_uniqueid: str | None
    accountcode: str
    agi_status: str | None
    agi_env: tuple[tuple[str, str], ...]
    agi_commands: tuple[str, ...]
    agi_variables: dict[str, str]
    limit_ms: int | None
    dial_status: str | None
    answer_time: float | None
    end_time: float
    hangup_cause: int
    hangup_cause_txt: str
    billable_seconds: int
    disposition: str
    ended_by: EndedBy
    cdrs: tuple[Message, ...] = ()
    events: tuple[Message, ...] = field(default=(), repr=False)

    @property
    def answered(self) -> bool:
        return self.answer_time is not None
