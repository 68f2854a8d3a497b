"""Channels and bridges as Asterisk 22 shows them on AMI, and the hangup cause table.

Pure data: the call scripts mutate these objects and the event builders (``events.py``) read
them, so every event carries the channel's state at that moment, as a real snapshot does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ast_state2str
STATE_DOWN, STATE_RING, STATE_RINGING, STATE_UP, STATE_BUSY = 0, 4, 5, 6, 7
_STATE_DESC = {0: "Down", 1: "Rsrvd", 2: "OffHook", 3: "Dialing", 4: "Ring", 5: "Ringing",
               6: "Up", 7: "Busy", 8: "Dialing Offhook", 9: "Pre-ring"}

# ast_cause2str (main/channel.c), the causes a dialplan or an AMI Hangup can produce.
CAUSE_TEXT: dict[int, str] = {
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    5: "Misdialed trunk prefix",
    6: "Channel unacceptable",
    7: "Call awarded and being delivered in an established channel",
    8: "Pre-empted",
    14: "Number ported elsewhere",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    23: "Redirected to new destination",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    30: "Response to STATus ENQuiry",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    43: "Access information discarded",
    44: "Requested channel not available",
    50: "Facility not subscribed",
    52: "Outgoing call barred",
    54: "Incoming call barred",
    57: "Bearer capability not authorized",
    58: "Bearer capability not available",
    65: "Bearer capability not implemented",
    66: "Channel not implemented",
    69: "Facility not implemented",
    81: "Invalid call reference value",
    88: "Incompatible destination",
    95: "Invalid message unspecified",
    96: "Mandatory information element is missing",
    97: "Message type nonexist.",
    98: "Wrong message",
    99: "Info. element nonexist or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
    102: "Recover on timer expiry",
    103: "Mandatory IE length error",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}

NORMAL_CLEARING = 16
USER_BUSY = 17
NO_ANSWER = 19
CALL_REJECTED = 21
CONGESTION = 34
NETWORK_OUT_OF_ORDER = 38


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


def state_desc(state: int) -> str:
    return _STATE_DESC.get(state, "Unknown")


@dataclass(slots=True)
class Channel:
    """One channel's snapshot fields (the ``ast_manager_build_channel_state_string`` set)."""

    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    state: int = STATE_DOWN
    priority: int = 1
    caller_num: str = "<unknown>"
    caller_name: str = "<unknown>"
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    accountcode: str = ""
    language: str = "en"
    application: str = ""
    app_data: str = ""
    bridge_id: str = ""
    created_us: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    hungup: bool = False

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        p = prefix
        return [
            (f"{p}Channel", self.name),
            (f"{p}ChannelState", str(self.state)),
            (f"{p}ChannelStateDesc", state_desc(self.state)),
            (f"{p}CallerIDNum", self.caller_num),
            (f"{p}CallerIDName", self.caller_name),
            (f"{p}ConnectedLineNum", self.connected_num),
            (f"{p}ConnectedLineName", self.connected_name),
            (f"{p}Language", self.language),
            (f"{p}AccountCode", self.accountcode),
            (f"{p}Context", self.context),
            (f"{p}Exten", self.exten),
            (f"{p}Priority", str(self.priority)),
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Linkedid", self.linkedid),
        ]


@dataclass(slots=True)
class Bridge:
    """A basic two-party bridge, as Dial creates it on answer."""

    uniqueid: str
    members: list[Channel] = field(default_factory=list)

    def snapshot(self) -> list[tuple[str, str]]:
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(len(self.members))),
            ("BridgeVideoSourceMode", "none"),
        ]


def duration_hms(seconds: float) -> str:
    """``CoreShowChannel`` Duration: HH:MM:SS of the channel's age."""
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
