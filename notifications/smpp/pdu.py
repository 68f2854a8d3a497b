"""SMPP 3.4 wire codec, sans I/O: bytes in, PDUs out; PDUs in, bytes out.

A PDU is a 16-octet header (command_length, command_id, command_status, sequence_number, all
big-endian) and a body of integers, C-octet strings (each with a maximum length, its NUL
included) and optional TLVs. ``Framer`` cuts a byte stream into whole PDUs; ``decode`` reads
one (an unknown command_id is kept as ``Unknown``, to be answered with generic_nack);
``encode`` is the reverse and refuses what a peer would reject. A response with a non-zero
command_status is sent without a body (as §4.4.2 says for submit_sm_resp), and read with or
without one. The PDUs are in ``commands``, the numbers in ``codes``.

Errors::

    SmppError
    ├── ProtocolError   the stream cannot be framed (an absurd command_length): drop the link
    └── PduError        one framed PDU is malformed: answer it with ``status``
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .codes import (
    BIND_TRANSCEIVER,
    BIND_TRANSCEIVER_RESP,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ESME_RINVCMDLEN,
    ESME_RINVDSTADR,
    ESME_RINVEXPIRY,
    ESME_RINVMSGLEN,
    ESME_RINVOPTPARSTREAM,
    ESME_RINVPARLEN,
    ESME_RINVPASWD,
    ESME_RINVSCHED,
    ESME_RINVSERTYP,
    ESME_RINVSRCADR,
    ESME_RINVSYSID,
    ESME_RINVSYSTYP,
    HEADER_LEN,
    MAX_PDU,
    MAX_SEQUENCE,
    MAX_SHORT_MESSAGE,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    TAG_MESSAGE_STATE,
    TAG_NETWORK_ERROR_CODE,
    TAG_RECEIPTED_MESSAGE_ID,
    TAG_SC_INTERFACE_VERSION,
    command_name,
)
from .commands import (
    HEADER_ONLY,
    BindTransceiver,
    BindTransceiverResp,
    Body,
    DeliverSm,
    DeliverSmResp,
    Pdu,
    ShortMessage,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    Unknown,
)

HEADER = struct.Struct(">IIII")
_TLV_LENGTHS = {TAG_RECEIPTED_MESSAGE_ID: (1, 65), TAG_SC_INTERFACE_VERSION: (1, 1),
                TAG_NETWORK_ERROR_CODE: (3, 3), TAG_MESSAGE_STATE: (1, 1)}


class SmppError(Exception):
    pass


class ProtocolError(SmppError, ValueError):
    """The byte stream broke SMPP framing; the connection must be dropped."""


class PduError(SmppError, ValueError):
    """One PDU's body is malformed; the peer gets ``status`` in the answer to ``sequence``."""

    def __init__(self, message: str, status: int, command_id: int = 0, sequence: int = 0):
        super().__init__(message)
        self.status, self.command_id, self.sequence = status, command_id, sequence


# -- encoding -------------------------------------------------------------------------------
def _cstr(value: str, max_len: int, what: str) -> bytes:
    raw = value.encode("ascii")
    if b"\0" in raw or len(raw) + 1 > max_len:
        raise ValueError(f"{what} {value!r}: at most {max_len - 1} ASCII characters, no NUL")
    return raw + b"\0"


def _time(value: str, what: str) -> bytes:
    if len(value) not in (0, 16):
        raise ValueError(f"{what} {value!r}: empty or 16 characters (§7.1)")
    return _cstr(value, 17, what)


def _tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    return b"".join(struct.pack(">HH", tag, len(v)) + v for tag, v in tlvs)


def _encode_sm(b: ShortMessage) -> bytes:
    if len(b.short_message) > MAX_SHORT_MESSAGE:
        raise ValueError(f"short_message of {len(b.short_message)} octets (at most 254)")
    return b"".join((
        _cstr(b.service_type, 6, "service_type"),
        bytes((b.source_addr_ton, b.source_addr_npi)), _cstr(b.source_addr, 21, "source_addr"),
        bytes((b.dest_addr_ton, b.dest_addr_npi)),
        _cstr(b.destination_addr, 21, "destination_addr"),
        bytes((b.esm_class, b.protocol_id, b.priority_flag)),
        _time(b.schedule_delivery_time, "schedule_delivery_time"),
        _time(b.validity_period, "validity_period"),
        bytes((b.registered_delivery, b.replace_if_present_flag, b.data_coding,
               b.sm_default_msg_id, len(b.short_message))),
        b.short_message, _tlvs(b.tlvs),
    ))


def _encode_body(body: Body) -> bytes:
    match body:
        case BindTransceiver():
            return b"".join((
                _cstr(body.system_id, 16, "system_id"), _cstr(body.password, 9, "password"),
                _cstr(body.system_type, 13, "system_type"),
                bytes((body.interface_version, body.addr_ton, body.addr_npi)),
                _cstr(body.address_range, 41, "address_range")))
        case BindTransceiverResp():
            v = body.sc_interface_version
            tlv = () if v is None else ((TAG_SC_INTERFACE_VERSION, bytes((v,))),)
            return _cstr(body.system_id, 16, "system_id") + _tlvs(tlv)
        case SubmitSm() | DeliverSm():
            return _encode_sm(body)
        case SubmitSmResp() | DeliverSmResp():
            return _cstr(body.message_id, 65, "message_id")
        case Unknown():
            return body.body
        case _:
            return b""


def encode(pdu: Pdu) -> bytes:
    if not 0 <= pdu.sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence_number {pdu.sequence} out of range")
    body = b"" if pdu.is_response and pdu.status else _encode_body(pdu.body)
    return HEADER.pack(HEADER_LEN + len(body), pdu.command_id, pdu.status, pdu.sequence) + body


# -- decoding -------------------------------------------------------------------------------
class _Reader:
    __slots__ = ("command_id", "data", "pos", "sequence")

    def __init__(self, data: bytes, command_id: int, sequence: int) -> None:
        self.data, self.pos = data, HEADER_LEN
        self.command_id, self.sequence = command_id, sequence

    def fail(self, message: str, status: int) -> PduError:
        return PduError(f"{command_name(self.command_id)}: {message}", status, self.command_id,
                        self.sequence)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)

    def octets(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail("body shorter than its fields", ESME_RINVCMDLEN)
        out = self.data[self.pos: self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.octets(1)[0]

    def cstr(self, max_len: int, status: int, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end == -1:
            raise self.fail(f"{what} without its NUL", ESME_RINVCMDLEN)
        if end - self.pos + 1 > max_len:
            raise self.fail(f"{what} longer than {max_len - 1}", status)
        out = self.data[self.pos: end].decode("ascii", "replace")
        self.pos = end + 1
        return out

    def short_message(self) -> bytes:
        length = self.u8()
        if length > MAX_SHORT_MESSAGE:
            raise self.fail(f"sm_length {length}", ESME_RINVMSGLEN)
        return self.octets(length)

    def time(self, status: int, what: str) -> str:
        value = self.cstr(17, status, what)
        if len(value) not in (0, 16):
            raise self.fail(f"{what} {value!r} is not a §7.1 time", status)
        return value

    def tlvs(self) -> tuple[Tlv, ...]:
        out: list[Tlv] = []
        while not self.done:
            if self.pos + 4 > len(self.data):
                raise self.fail("truncated TLV", ESME_RINVOPTPARSTREAM)
            tag, length = struct.unpack_from(">HH", self.data, self.pos)
            if self.pos + 4 + length > len(self.data):
                raise self.fail(f"TLV 0x{tag:04x} runs past the PDU", ESME_RINVOPTPARSTREAM)
            low, high = _TLV_LENGTHS.get(tag, (0, 0xFFFF))
            if not low <= length <= high:
                raise self.fail(f"TLV 0x{tag:04x} of {length} octets", ESME_RINVPARLEN)
            out.append((tag, self.data[self.pos + 4: self.pos + 4 + length]))
            self.pos += 4 + length
        return tuple(out)


def _decode_sm(r: _Reader, cls: type[SubmitSm] | type[DeliverSm]) -> SubmitSm | DeliverSm:
    # keyword arguments are evaluated in the order written: the wire order
    return cls(service_type=r.cstr(6, ESME_RINVSERTYP, "service_type"),
               source_addr_ton=r.u8(), source_addr_npi=r.u8(),
               source_addr=r.cstr(21, ESME_RINVSRCADR, "source_addr"),
               dest_addr_ton=r.u8(), dest_addr_npi=r.u8(),
               destination_addr=r.cstr(21, ESME_RINVDSTADR, "destination_addr"),
               esm_class=r.u8(), protocol_id=r.u8(), priority_flag=r.u8(),
               schedule_delivery_time=r.time(ESME_RINVSCHED, "schedule_delivery_time"),
               validity_period=r.time(ESME_RINVEXPIRY, "validity_period"),
               registered_delivery=r.u8(), replace_if_present_flag=r.u8(),
               data_coding=r.u8(), sm_default_msg_id=r.u8(),
               short_message=r.short_message(), tlvs=r.tlvs())


def _decode_body(r: _Reader) -> Body:
    cid = r.command_id
    if cid == BIND_TRANSCEIVER:
        return BindTransceiver(
            r.cstr(16, ESME_RINVSYSID, "system_id"), r.cstr(9, ESME_RINVPASWD, "password"),
            r.cstr(13, ESME_RINVSYSTYP, "system_type"), r.u8(), r.u8(), r.u8(),
            r.cstr(41, ESME_RINVCMDLEN, "address_range"))
    if cid == BIND_TRANSCEIVER_RESP:
        if r.done:
            return BindTransceiverResp()
        system_id = r.cstr(16, ESME_RINVSYSID, "system_id")
        version = dict(r.tlvs()).get(TAG_SC_INTERFACE_VERSION)
        return BindTransceiverResp(system_id, version[0] if version else None)
    if cid in (SUBMIT_SM, DELIVER_SM):
        return _decode_sm(r, SubmitSm if cid == SUBMIT_SM else DeliverSm)
    if cid in (SUBMIT_SM_RESP, DELIVER_SM_RESP):
        message_id = "" if r.done else r.cstr(65, ESME_RINVCMDLEN, "message_id")
        return (SubmitSmResp if cid == SUBMIT_SM_RESP else DeliverSmResp)(message_id)
    cls = HEADER_ONLY.get(cid)
    if cls is not None:
        return cls()
    r.pos = len(r.data)
    return Unknown(cid, r.data[HEADER_LEN:])


def decode(frame: bytes) -> Pdu:
    """One whole PDU (as ``Framer`` yields it). Raises ``PduError`` for a malformed body."""
    if len(frame) < HEADER_LEN:
        raise ProtocolError(f"a PDU of {len(frame)} octets is shorter than its header")
    length, command_id, status, sequence = HEADER.unpack_from(frame)
    if length != len(frame):
        raise ProtocolError(f"command_length {length} for a frame of {len(frame)} octets")
    r = _Reader(frame, command_id, sequence)
    body = _decode_body(r)
    if not r.done:
        raise r.fail("octets after the last field", ESME_RINVCMDLEN)
    return Pdu(body, sequence, status)


class Framer:
    """Incremental framing: ``feed(data)``, then iterate ``frames()`` for whole PDUs."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def frames(self) -> Iterator[bytes]:
        buf, pos = self._buf, 0
        try:
            while len(buf) - pos >= 4:
                length = int.from_bytes(buf[pos: pos + 4], "big")
                if not HEADER_LEN <= length <= MAX_PDU:
                    raise ProtocolError(f"command_length {length} (must be 16 to {MAX_PDU})")
                if len(buf) - pos < length:
                    return
                frame = bytes(buf[pos: pos + length])
                pos += length
                yield frame
        finally:
            del buf[:pos]
