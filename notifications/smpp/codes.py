"""SMPP 3.4 numbers: command ids, command_status, esm_class bits, TLV tags, message states.

Only the ones this layer uses or may meet; the section numbers are the v3.4 specification's.
"""

from __future__ import annotations

HEADER_LEN = 16
MAX_PDU = 70_000  # a 64 KiB message_payload and the rest of a deliver_sm fit; more is garbage
INTERFACE_VERSION = 0x34
MAX_SHORT_MESSAGE = 254
MAX_SEQUENCE = 0x7FFFFFFF

# command_id (§5.1.2); a response is its request's id with the top bit set
RESP = 0x80000000
GENERIC_NACK = 0x80000000
SUBMIT_SM, SUBMIT_SM_RESP = 0x00000004, 0x80000004
DELIVER_SM, DELIVER_SM_RESP = 0x00000005, 0x80000005
UNBIND, UNBIND_RESP = 0x00000006, 0x80000006
BIND_TRANSCEIVER, BIND_TRANSCEIVER_RESP = 0x00000009, 0x80000009
ENQUIRE_LINK, ENQUIRE_LINK_RESP = 0x00000015, 0x80000015
COMMAND_NAMES = {
    GENERIC_NACK: "generic_nack", SUBMIT_SM: "submit_sm", SUBMIT_SM_RESP: "submit_sm_resp",
    DELIVER_SM: "deliver_sm", DELIVER_SM_RESP: "deliver_sm_resp", UNBIND: "unbind",
    UNBIND_RESP: "unbind_resp", BIND_TRANSCEIVER: "bind_transceiver",
    BIND_TRANSCEIVER_RESP: "bind_transceiver_resp", ENQUIRE_LINK: "enquire_link",
    ENQUIRE_LINK_RESP: "enquire_link_resp",
}

# command_status (§5.1.3)
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RINVSERTYP = 0x15
ESME_RSUBMITFAIL = 0x45
ESME_RINVSYSTYP = 0x53
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
ESME_RINVOPTPARSTREAM = 0xC0
ESME_RINVPARLEN = 0xC2
ESME_RUNKNOWNERR = 0xFF
STATUS_NAMES = {v: k for k, v in globals().items() if k.startswith("ESME_")}

# esm_class (§5.2.12) and registered_delivery (§5.2.17)
ESM_UDHI = 0x40
ESM_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04
RECEIPT_ALWAYS, RECEIPT_ON_FAILURE = 0x01, 0x02
RECEIPT_MASK = 0x03

# address type of number / numbering plan (§5.2.5, §5.2.6)
TON_UNKNOWN, TON_INTERNATIONAL, TON_ALPHANUMERIC = 0x00, 0x01, 0x05
NPI_UNKNOWN, NPI_E164 = 0x00, 0x01

# optional parameters (§5.3.2)
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_SC_INTERFACE_VERSION = 0x0210
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_MESSAGE_STATE = 0x0427

# message_state (§5.2.28) and the receipt's stat: words (Appendix B)
MESSAGE_STATES = {"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5,
                  "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}
STATE_NAMES = {code: name for name, code in MESSAGE_STATES.items()}


def command_name(command_id: int) -> str:
    return COMMAND_NAMES.get(command_id, f"0x{command_id:08x}")


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08x}")


def numbering(address: str) -> tuple[str, int, int]:
    """An address with its TON and NPI: an E.164 number (``+`` optional) is international
    ISDN, anything else alphanumeric (a sender name)."""
    digits = address.removeprefix("+")
    if digits.isascii() and digits.isdigit():
        return digits, TON_INTERNATIONAL, NPI_E164
    return address, TON_ALPHANUMERIC, NPI_UNKNOWN
