"""SMS text, sans I/O: which alphabet a text needs, how it is cut into parts, and back.

A text that the GSM 03.38 default alphabet and its extension table can carry goes as GSM-7
(an extension character, ``€ [ ] { } ~ ^ \\ |`` and form feed, costs two septets: the escape
0x1B and its code); anything else goes as UCS-2, here UTF-16BE, so a character outside the
BMP (an emoji) travels as a surrogate pair. One message holds 160 septets or 70 UTF-16
units. A longer text is cut into parts of 153 septets or 67 units behind the 6-octet
concatenation UDH ``05 00 03 ref total seq`` (8-bit reference, at most 255 parts), never
between an escape and its code nor between the halves of a surrogate pair.

Over SMPP, GSM-7 goes **unpacked**: one septet per octet with ``data_coding`` 0x00, the SMSC
default alphabet, which is what SMSCs expect; they pack for the air interface themselves,
fill bits after the UDH included. Packed septets could not travel safely anyway: SMPP's
``sm_length`` counts octets, so a receiver could not tell a final seven zero bits from an
``@``. ``pack_septets`` / ``unpack_septets`` implement the air format (TS 23.040, with the
fill bits a UDH needs) for whoever meets it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from enum import StrEnum

# TS 23.038 6.2.1, code points 0x00-0x7F; 0x1B is the escape to the extension table.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
ESCAPE = 0x1B
# TS 23.038 6.2.1.1, the default extension table (each preceded by the escape).
GSM_EXTENSION = {
    "\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}
_BASIC = {c: i for i, c in enumerate(GSM_BASIC) if i != ESCAPE}
_EXTENDED = {code: c for c, code in GSM_EXTENSION.items()}

DCS_GSM7 = 0x00  # SMSC default alphabet, sent unpacked
DCS_IA5 = 0x01
DCS_LATIN1 = 0x03
DCS_UCS2 = 0x08

SINGLE_SEPTETS, PART_SEPTETS = 160, 153
SINGLE_UNITS, PART_UNITS = 70, 67
MAX_PARTS = 255
IEI_CONCAT_8, IEI_CONCAT_16 = 0x00, 0x08


class EncodingError(ValueError):
    """A text that cannot be sent (too many parts), or a UDH or payload that cannot be read."""


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


def is_gsm7(text: str) -> bool:
    return all(c in _BASIC or c in GSM_EXTENSION for c in text)


def choose_encoding(text: str) -> Encoding:
    return Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2


def septet_count(text: str) -> int:
    """Septets of a GSM-7 text (two for an extension character)."""
    return len(encode_gsm7(text))


def ucs2_units(text: str) -> int:
    """UTF-16 code units (two for a character outside the BMP)."""
    return len(text.encode("utf-16-be")) // 2


def _gsm7_char(c: str) -> bytes:
    code = _BASIC.get(c)
    if code is not None:
        return bytes((code,))
    ext = GSM_EXTENSION.get(c)
    if ext is None:
        raise EncodingError(f"{c!r} is not in the GSM 7-bit alphabet")
    return bytes((ESCAPE, ext))


def encode_gsm7(text: str) -> bytes:
    """Unpacked septets, one per octet."""
    return b"".join(_gsm7_char(c) for c in text)


def decode_gsm7(data: bytes) -> str:
    """Unpacked septets to text. An escape before an unknown code reads as the basic character
    (TS 23.038's fallback); an octet above 0x7F, which no septet is, as U+FFFD."""
    out: list[str] = []
    escaped = False
    for b in data:
        if b > 0x7F:
            out.append("\ufffd")
            escaped = False
        elif escaped:
            out.append(_EXTENDED.get(b) or (" " if b == ESCAPE else GSM_BASIC[b]))
            escaped = False
        elif b == ESCAPE:
            escaped = True
        else:
            out.append(GSM_BASIC[b])
    return "".join(out)


def decode_text(payload: bytes, data_coding: int) -> str:
    """A payload (UDH removed) in its ``data_coding``; an unknown one reads as Latin-1."""
    if data_coding == DCS_GSM7:
        return decode_gsm7(payload)
    if data_coding == DCS_UCS2:
        return payload.decode("utf-16-be", "replace")
    if data_coding == DCS_IA5:
        return payload.decode("ascii", "replace")
    return payload.decode("latin-1")


def fill_bits(udh_octets: int) -> int:
    """Bits between a UDH and the first septet, so that septets start on a septet boundary."""
    return (7 - (udh_octets * 8) % 7) % 7


def pack_septets(septets: bytes, fill: int = 0) -> bytes:
    """TS 23.040 packing: septet ``i`` at bit ``fill + 7 * i``, least significant bit first."""
    acc = 0
    for i, s in enumerate(septets):
        if s > 0x7F:
            raise EncodingError(f"0x{s:02x} is not a septet")
        acc |= s << (fill + 7 * i)
    return acc.to_bytes((fill + 7 * len(septets) + 7) // 8, "little")


def unpack_septets(data: bytes, count: int, fill: int = 0) -> bytes:
    """The ``count`` septets packed in ``data`` after ``fill`` bits (the reverse of packing)."""
    if fill + 7 * count > 8 * len(data):
        raise EncodingError(f"{len(data)} octets cannot hold {count} septets")
    acc = int.from_bytes(data, "little")
    return bytes((acc >> (fill + 7 * i)) & 0x7F for i in range(count))


@dataclass(frozen=True, slots=True)
class Concat:
    """The concatenation information element: part ``seq`` (from 1) of ``total``."""

    ref: int
    total: int
    seq: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One message as it goes on the wire: UDH (empty for a single message) and payload."""

    encoding: Encoding
    udh: bytes
    payload: bytes

    @property
    def data_coding(self) -> int:
        return DCS_GSM7 if self.encoding is Encoding.GSM7 else DCS_UCS2

    @property
    def udhi(self) -> bool:
        return bool(self.udh)

    @property
    def short_message(self) -> bytes:
        return self.udh + self.payload

    @property
    def length(self) -> int:
        """Septets (GSM-7) or UTF-16 units (UCS-2) of the payload."""
        return len(self.payload) if self.encoding is Encoding.GSM7 else len(self.payload) // 2


def _cut(pieces: list[bytes], capacity: int) -> list[bytes]:
    """Greedy: each chunk takes whole pieces while they fit."""
    chunks: list[bytes] = []
    current = bytearray()
    for piece in pieces:
        if len(current) + len(piece) > capacity:
            chunks.append(bytes(current))
            current.clear()
        current += piece
    chunks.append(bytes(current))
    return chunks


def segment(text: str, reference: int = 0) -> list[Segment]:
    """``text`` as one message, or as concatenated parts carrying ``reference`` (0-255)."""
    encoding = choose_encoding(text)
    if encoding is Encoding.GSM7:
        pieces = [_gsm7_char(c) for c in text]
        single, part = SINGLE_SEPTETS, PART_SEPTETS
    else:
        pieces = [c.encode("utf-16-be") for c in text]  # a surrogate pair stays one piece
        single, part = 2 * SINGLE_UNITS, 2 * PART_UNITS
    whole = b"".join(pieces)
    if len(whole) <= single:
        return [Segment(encoding, b"", whole)]
    chunks = _cut(pieces, part)
    if len(chunks) > MAX_PARTS:
        raise EncodingError(f"{len(chunks)} parts: a concatenated SMS has at most {MAX_PARTS}")
    ref, total = reference & 0xFF, len(chunks)
    return [Segment(encoding, bytes((5, IEI_CONCAT_8, 3, ref, total, seq)), chunk)
            for seq, chunk in enumerate(chunks, 1)]


def parse_udh(short_message: bytes) -> tuple[Concat | None, bytes]:
    """Split a UDHI message into its concatenation element (8- or 16-bit reference, if
    any) and the payload after the header."""
    if not short_message or short_message[0] + 1 > len(short_message):
        raise EncodingError("the user data header is longer than the message")
    end = short_message[0] + 1
    concat: Concat | None = None
    pos = 1
    while pos < end:
        if pos + 2 > end or pos + 2 + short_message[pos + 1] > end:
            raise EncodingError("an information element runs past the user data header")
        iei, length = short_message[pos], short_message[pos + 1]
        value = short_message[pos + 2: pos + 2 + length]
        if iei == IEI_CONCAT_8 and length == 3:
            concat = Concat(value[0], value[1], value[2])
        elif iei == IEI_CONCAT_16 and length == 4:
            concat = Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
        pos += 2 + length
    if concat is not None and not 1 <= concat.seq <= concat.total:
        raise EncodingError(f"part {concat.seq} of {concat.total}")
    return concat, short_message[end:]


def reassemble(segments: Iterable[Segment]) -> str:
    """The text of a complete set of segments, in any order (through their wire form)."""
    parts: dict[int, bytes] = {}
    data_coding, total = DCS_GSM7, 1
    for seg in segments:
        data_coding = seg.data_coding
        if not seg.udh:
            return decode_text(seg.payload, data_coding)
        concat, payload = parse_udh(seg.short_message)
        if concat is None:
            return decode_text(payload, data_coding)
        parts[concat.seq], total = payload, concat.total
    if sorted(parts) != list(range(1, total + 1)):
        raise EncodingError(f"parts {sorted(parts)} of {total}")
    return decode_text(b"".join(parts[i] for i in sorted(parts)), data_coding)


class Reassembler:
    """Parts of concatenated messages, kept until each message is whole.

    The payloads are joined before decoding, so a sender that split an escape pair or a
    surrogate pair is still read right. ``add`` returns the text once every part is in and
    keeps the parts until ``discard`` (a receiver that failed to hand the text on can be
    given the last part again). At most ``max_pending`` messages are kept; the oldest goes
    first, as a message one of whose parts was lost on the way.
    """

    __slots__ = ("_messages", "max_pending")

    def __init__(self, max_pending: int = 1024) -> None:
        self.max_pending = max_pending
        self._messages: OrderedDict[tuple[Hashable, int, int], dict[int, tuple[int, bytes]]] = (
            OrderedDict())

    def __len__(self) -> int:
        return len(self._messages)

    def add(self, origin: Hashable, concat: Concat, data_coding: int, payload: bytes) -> str | None:
        key = (origin, concat.ref, concat.total)
        parts = self._messages.get(key)
        if parts is None:
            parts = self._messages[key] = {}
            while len(self._messages) > self.max_pending:
                self._messages.popitem(last=False)
        parts[concat.seq] = (data_coding, payload)
        if len(parts) < concat.total:
            return None
        ordered = [parts[i] for i in range(1, concat.total + 1)]
        return decode_text(b"".join(p for _, p in ordered), ordered[0][0])

    def discard(self, origin: Hashable, concat: Concat) -> None:
        self._messages.pop((origin, concat.ref, concat.total), None)
