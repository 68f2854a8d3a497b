"""SMPP 3.4 PDUs as values: one frozen dataclass per command's body, and ``Pdu`` (a body
with its header's sequence_number and command_status). ``pdu`` reads and writes them.

submit_sm and deliver_sm share one layout (§4.4.1, §4.6.1): the message is in
``short_message`` (at most 254 octets, behind a UDH when ``esm_class`` has UDHI 0x40) or in
the message_payload TLV; ``payload`` is whichever is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from .codes import (
    BIND_TRANSCEIVER,
    BIND_TRANSCEIVER_RESP,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    ESM_DELIVERY_RECEIPT,
    ESM_TYPE_MASK,
    ESM_UDHI,
    ESME_ROK,
    GENERIC_NACK,
    INTERFACE_VERSION,
    RESP,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    TAG_MESSAGE_PAYLOAD,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    UNBIND,
    UNBIND_RESP,
)

Tlv = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class BindTransceiver:
    command_id: ClassVar[int] = BIND_TRANSCEIVER
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindTransceiverResp:
    command_id: ClassVar[int] = BIND_TRANSCEIVER_RESP
    system_id: str = ""
    sc_interface_version: int | None = None


@dataclass(frozen=True, slots=True)
class ShortMessage:
    """The fields of submit_sm and deliver_sm: the three that matter most first (``pdu``
    writes them in wire order)."""

    source_addr: str = ""
    destination_addr: str = ""
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: tuple[Tlv, ...] = field(default=())

    def tlv(self, tag: int) -> bytes | None:
        return next((v for t, v in self.tlvs if t == tag), None)

    @property
    def udhi(self) -> bool:
        return bool(self.esm_class & ESM_UDHI)

    @property
    def payload(self) -> bytes:
        """The user data: message_payload when present, else short_message."""
        mp = self.tlv(TAG_MESSAGE_PAYLOAD)
        return self.short_message if mp is None else mp


@dataclass(frozen=True, slots=True)
class SubmitSm(ShortMessage):
    command_id: ClassVar[int] = SUBMIT_SM


@dataclass(frozen=True, slots=True)
class DeliverSm(ShortMessage):
    command_id: ClassVar[int] = DELIVER_SM

    @property
    def is_receipt(self) -> bool:
        return self.esm_class & ESM_TYPE_MASK == ESM_DELIVERY_RECEIPT

    @property
    def receipted_message_id(self) -> str | None:
        v = self.tlv(TAG_RECEIPTED_MESSAGE_ID)
        return None if v is None else v.rstrip(b"\0").decode("ascii", "replace")

    @property
    def message_state(self) -> int | None:
        v = self.tlv(TAG_MESSAGE_STATE)
        return v[0] if v else None


@dataclass(frozen=True, slots=True)
class SubmitSmResp:
    command_id: ClassVar[int] = SUBMIT_SM_RESP
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class DeliverSmResp:
    command_id: ClassVar[int] = DELIVER_SM_RESP
    message_id: str = ""  # unused, always NULL (§4.6.2)


@dataclass(frozen=True, slots=True)
class EnquireLink:
    command_id: ClassVar[int] = ENQUIRE_LINK


@dataclass(frozen=True, slots=True)
class EnquireLinkResp:
    command_id: ClassVar[int] = ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True)
class Unbind:
    command_id: ClassVar[int] = UNBIND


@dataclass(frozen=True, slots=True)
class UnbindResp:
    command_id: ClassVar[int] = UNBIND_RESP


@dataclass(frozen=True, slots=True)
class GenericNack:
    command_id: ClassVar[int] = GENERIC_NACK


@dataclass(frozen=True, slots=True)
class Unknown:
    """A command this layer does not implement, kept for a generic_nack."""

    command_id: int
    body: bytes = b""


Body = (BindTransceiver | BindTransceiverResp | SubmitSm | SubmitSmResp | DeliverSm
        | DeliverSmResp | EnquireLink | EnquireLinkResp | Unbind | UnbindResp | GenericNack
        | Unknown)
RESPONSES: dict[int, Callable[[], Body]] = {
    BIND_TRANSCEIVER: BindTransceiverResp, SUBMIT_SM: SubmitSmResp, DELIVER_SM: DeliverSmResp,
    ENQUIRE_LINK: EnquireLinkResp, UNBIND: UnbindResp,
}
HEADER_ONLY: dict[int, Callable[[], Body]] = {
    ENQUIRE_LINK: EnquireLink, ENQUIRE_LINK_RESP: EnquireLinkResp, UNBIND: Unbind,
    UNBIND_RESP: UnbindResp, GENERIC_NACK: GenericNack,
}


@dataclass(frozen=True, slots=True)
class Pdu:
    body: Body
    sequence: int
    status: int = ESME_ROK

    @property
    def command_id(self) -> int:
        return self.body.command_id

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESP)


def response_for(command_id: int, sequence: int, status: int = ESME_ROK,
                 body: Body | None = None) -> Pdu:
    """The answer to a request: its own _resp (empty unless ``body``), or generic_nack for a
    command without one."""
    return Pdu(body or RESPONSES.get(command_id, GenericNack)(), sequence, status)
