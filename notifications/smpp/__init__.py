"""SMPP 3.4 for the SMS channel: a sans-I/O codec, an asyncio ESME and an SMSC simulator.

``codes`` (the numbers), ``commands`` (PDUs as values), ``pdu`` (framing and the codec) and
``receipt`` (the delivery receipt text) do no I/O; ``link`` runs one connection over asyncio,
``client`` keeps a bound session for the outbox, ``smsc`` is the simulator for tests and the
demo. Nothing is wired at import time.
"""

from .client import (
    BindRefused,
    Delivery,
    DeliveryReport,
    MobileMessage,
    NotBound,
    OnDeliver,
    SmppClient,
    SmppClientError,
    SubmitError,
    SubmitRejected,
    SubmitUncertain,
)
from .commands import (
    BindTransceiver,
    BindTransceiverResp,
    Body,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    Unknown,
    response_for,
)
from .pdu import Framer, PduError, ProtocolError, SmppError, decode, encode
from .receipt import Receipt, format_receipt, parse_receipt
from .smsc import Smsc, StoredMessage, StoredPart

__all__ = [
    "BindRefused",
    "BindTransceiver",
    "BindTransceiverResp",
    "Body",
    "DeliverSm",
    "DeliverSmResp",
    "Delivery",
    "DeliveryReport",
    "EnquireLink",
    "EnquireLinkResp",
    "Framer",
    "GenericNack",
    "MobileMessage",
    "NotBound",
    "OnDeliver",
    "Pdu",
    "PduError",
    "ProtocolError",
    "Receipt",
    "SmppClient",
    "SmppClientError",
    "SmppError",
    "Smsc",
    "StoredMessage",
    "StoredPart",
    "SubmitError",
    "SubmitRejected",
    "SubmitSm",
    "SubmitSmResp",
    "SubmitUncertain",
    "Unbind",
    "UnbindResp",
    "Unknown",
    "decode",
    "encode",
    "format_receipt",
    "parse_receipt",
    "response_for",
]
