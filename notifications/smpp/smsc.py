"""A protocol-faithful SMSC over real TCP, for the SMPP client's tests and the demo.

ESMEs bind as transceivers: an unknown system_id gets ESME_RINVSYSID, a wrong password
ESME_RINVPASWD, and the connection is then closed, as most SMSCs do. A bound session's
submit_sm is answered with a message id; each part is stored (``parts``) and concatenated
ones are reassembled (``messages``). GSM-7 (0x00, unpacked) and UCS-2 (0x08) are taken.
With registered_delivery a receipt deliver_sm follows for each part after ``receipt_delay_s``,
in the final state set per destination (``states``, DELIVRD by default). Like any SMSC it
sends a deliver_sm again (to another bound session of the account, if need be) until a
deliver_sm_resp accepts it: after a timeout or a dropped link at once, after a temporary
error (ESME_RX_T_APPN) ``retry_s`` later; a permanent error ends the attempts. ``mo``
sends a mobile-originated message, segmented when long. Every PDU is counted (``received``,
``sent``, by command name). Faults: ``drop`` closes every connection (new ones are still
accepted), ``stop_answering_enquire_link``, and ``reject`` (destination: command_status).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
from collections import Counter
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from notifications.sms.encoding import (
    DCS_GSM7,
    DCS_UCS2,
    GSM_BASIC,
    Concat,
    Encoding,
    EncodingError,
    Reassembler,
    decode_text,
    encode_gsm7,
    parse_udh,
    segment,
)

from .codes import (
    BIND_TRANSCEIVER,
    ENQUIRE_LINK,
    ESM_DELIVERY_RECEIPT,
    ESM_UDHI,
    ESME_RALYBND,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_RINVDSTADR,
    ESME_RINVPASWD,
    ESME_RINVSYSID,
    ESME_ROK,
    ESME_RSUBMITFAIL,
    ESME_RX_T_APPN,
    INTERFACE_VERSION,
    MESSAGE_STATES,
    RECEIPT_MASK,
    RECEIPT_ON_FAILURE,
    SUBMIT_SM,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    UNBIND,
    command_name,
    numbering,
)
from .commands import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    EnquireLink,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    Unknown,
    response_for,
)
from .link import Link, LinkDown
from .receipt import Receipt, format_receipt

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredPart:
    """One accepted submit_sm; ``text`` is this part's own text (its UDH removed)."""

    message_id: str
    system_id: str
    source: str
    destination: str
    text: str
    data_coding: int
    concat: Concat | None
    registered_delivery: int
    submitted_at: datetime
    pdu: SubmitSm


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A whole message: a single part, or every part of a concatenated one."""

    source: str
    destination: str
    text: str
    encoding: Encoding
    part_ids: tuple[str, ...]


class Smsc:
    """Listens on ``host:port`` (0: any free port, see ``port`` after ``start``).

    ``accounts`` maps system_id to password.
    """

    def __init__(self, accounts: Mapping[str, str], *, host: str = "127.0.0.1", port: int = 0,
                 system_id: str = "SIMSMSC", receipt_delay_s: float = 0.0,
                 response_timeout_s: float = 5.0, retry_s: float = 0.2,
                 states: Mapping[str, str] | None = None) -> None:
        self.accounts = dict(accounts)
        self.host, self._port = host, port
        self.system_id = system_id
        self.receipt_delay_s = receipt_delay_s
        self.response_timeout_s = response_timeout_s
        self.retry_s = retry_s
        self.states: dict[str, str] = dict(states or {})
        self.reject: dict[str, int] = {}
        self.answers_enquire_link = True
        self.parts: list[StoredPart] = []
        self.messages: list[StoredMessage] = []
        self.binds: list[tuple[str, int]] = []  # (system_id, command_status) of each bind
        self.received: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._links: set[Link] = set()
        self._bound: dict[Link, str] = {}
        self._bind_event = asyncio.Event()  # set (and replaced) at each bind
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._reference = 0
        self._reassembler = Reassembler()
        self._part_ids: dict[tuple[object, int, int], dict[int, str]] = {}

    @property
    def port(self) -> int:
        return self._port

    @property
    def bound_sessions(self) -> int:
        return sum(1 for link in self._bound if link.up)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_link, self.host, self._port,
                                                reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Smsc:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- faults and helpers for tests ----------------------------------------------------
    def drop(self) -> None:
        """Close every connection at once (an SMSC restart); new ones are still accepted."""
        for link in list(self._links):
            link.down("dropped by the SMSC")

    def stop_answering_enquire_link(self) -> None:
        self.answers_enquire_link = False

    def resume_answering_enquire_link(self) -> None:
        self.answers_enquire_link = True

    async def enquire_link(self, within_s: float = 5.0) -> int:
        """An enquire_link to every bound session; how many answered in time."""
        links = [link for link in self._bound if link.up]
        answers = await asyncio.gather(*(link.call(EnquireLink(), within_s) for link in links),
                                       return_exceptions=True)
        return sum(1 for a in answers if isinstance(a, Pdu) and a.status == ESME_ROK)

    async def mo(self, source: str, destination: str, text: str, *,
                 system_id: str | None = None, within_s: float = 10.0) -> list[int]:
        """A mobile-originated message as deliver_sm (concatenated parts when long) to a bound
        session of ``system_id`` (default: the first account); returns, once each part was
        answered for good, the final deliver_sm_resp status of each."""
        account = system_id or next(iter(self.accounts))
        self._reference = (self._reference + 1) & 0xFF
        src, src_ton, src_npi = numbering(source)
        dst, dst_ton, dst_npi = numbering(destination)
        statuses: list[int] = []
        async with asyncio.timeout(within_s):
            for part in segment(text, self._reference):
                sm = DeliverSm(src, dst, part.short_message, source_addr_ton=src_ton,
                               source_addr_npi=src_npi, dest_addr_ton=dst_ton,
                               dest_addr_npi=dst_npi, esm_class=ESM_UDHI if part.udhi else 0,
                               data_coding=part.data_coding)
                statuses.append(await self._deliver(account, sm))
        return statuses

    # -- the wire ------------------------------------------------------------------------
    def _new_link(self) -> Link:
        return Link(self._request, name="smsc", on_up=self._links.add, on_down=self._gone,
                    tally=self._tally)

    def _gone(self, link: Link) -> None:
        self._links.discard(link)
        self._bound.pop(link, None)

    def _tally(self, outbound: bool, command_id: int) -> None:
        (self.sent if outbound else self.received)[command_name(command_id)] += 1

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SMSC task failed", exc_info=task.exception())

    def _request(self, link: Link, pdu: Pdu) -> None:
        match pdu.body:
            case BindTransceiver() as bind:
                self._bind(link, pdu.sequence, bind)
            case SubmitSm() as sm:
                self._submit(link, pdu.sequence, sm)
            case EnquireLink():
                if self.answers_enquire_link:
                    link.reply(response_for(ENQUIRE_LINK, pdu.sequence))
            case Unbind():
                link.reply(response_for(UNBIND, pdu.sequence))
                link.down("unbound", graceful=True)
            case Unknown():
                link.reply(response_for(pdu.command_id, pdu.sequence, ESME_RINVCMDID))
            case _:  # e.g. a deliver_sm, which only an SMSC sends
                link.reply(response_for(pdu.command_id, pdu.sequence, ESME_RINVBNDSTS))

    def _bind(self, link: Link, sequence: int, bind: BindTransceiver) -> None:
        expected = self.accounts.get(bind.system_id)
        if link in self._bound:
            status = ESME_RALYBND
        elif expected is None:
            status = ESME_RINVSYSID
        elif not hmac.compare_digest(expected.encode(), bind.password.encode()):
            status = ESME_RINVPASWD
        else:
            status = ESME_ROK
        self.binds.append((bind.system_id, status))
        if status == ESME_RALYBND:
            link.reply(response_for(BIND_TRANSCEIVER, sequence, status))
        elif status != ESME_ROK:
            link.reply(response_for(BIND_TRANSCEIVER, sequence, status))
            link.down("bind refused", graceful=True)
        else:
            self._bound[link] = bind.system_id
            link.reply(response_for(BIND_TRANSCEIVER, sequence,
                                    body=BindTransceiverResp(self.system_id, INTERFACE_VERSION)))
            self._bind_event.set()
            self._bind_event = asyncio.Event()

    def _submit(self, link: Link, sequence: int, sm: SubmitSm) -> None:
        account = self._bound.get(link)
        status = ESME_ROK if account is not None else ESME_RINVBNDSTS
        concat: Concat | None = None
        text, payload = "", sm.payload
        if status == ESME_ROK:
            status = self.reject.get(sm.destination_addr, ESME_ROK)
        if status == ESME_ROK and not sm.destination_addr:
            status = ESME_RINVDSTADR
        if status == ESME_ROK and sm.data_coding not in (DCS_GSM7, DCS_UCS2):
            status = ESME_RSUBMITFAIL
        if status == ESME_ROK:
            try:
                concat, payload = parse_udh(sm.payload) if sm.udhi else (None, sm.payload)
                text = decode_text(payload, sm.data_coding)
            except EncodingError:
                status = ESME_RSUBMITFAIL
        if status != ESME_ROK or account is None:
            link.reply(response_for(SUBMIT_SM, sequence, status))
            return
        part = StoredPart(f"{next(self._ids):08X}", account, sm.source_addr, sm.destination_addr,
                          text, sm.data_coding, concat, sm.registered_delivery & RECEIPT_MASK,
                          datetime.now(), sm)
        self.parts.append(part)
        link.reply(response_for(SUBMIT_SM, sequence, body=SubmitSmResp(part.message_id)))
        self._store(part, payload)
        if part.registered_delivery:
            self._spawn(self._receipt(part))

    def _store(self, part: StoredPart, payload: bytes) -> None:
        encoding = Encoding.UCS2 if part.data_coding == DCS_UCS2 else Encoding.GSM7
        concat = part.concat
        if concat is None:
            self.messages.append(StoredMessage(part.source, part.destination, part.text,
                                               encoding, (part.message_id,)))
            return
        origin = (part.system_id, part.source, part.destination)
        key = (origin, concat.ref, concat.total)
        ids = self._part_ids.setdefault(key, {})
        ids[concat.seq] = part.message_id
        whole = self._reassembler.add(origin, concat, part.data_coding, payload)
        if whole is None:
            return
        self._reassembler.discard(origin, concat)
        del self._part_ids[key]
        self.messages.append(StoredMessage(part.source, part.destination, whole, encoding,
                                           tuple(ids[i] for i in range(1, concat.total + 1))))

    async def _receipt(self, part: StoredPart) -> None:
        state = self.states.get(part.destination, "DELIVRD")
        if part.registered_delivery == RECEIPT_ON_FAILURE and state == "DELIVRD":
            return
        if self.receipt_delay_s:
            await asyncio.sleep(self.receipt_delay_s)  # the network's delay, simulated
        delivered = state == "DELIVRD"
        shown = "".join(c if c in GSM_BASIC and c != "\x1b" else "?" for c in part.text[:20])
        text = format_receipt(Receipt(part.message_id, 1, int(delivered), part.submitted_at,
                                      datetime.now(), state, "000" if delivered else "001",
                                      shown))
        code = MESSAGE_STATES.get(state, MESSAGE_STATES["UNKNOWN"])
        src, src_ton, src_npi = numbering(part.destination)
        dst, dst_ton, dst_npi = numbering(part.source)
        sm = DeliverSm(src, dst, encode_gsm7(text), source_addr_ton=src_ton,
                       source_addr_npi=src_npi, dest_addr_ton=dst_ton, dest_addr_npi=dst_npi,
                       esm_class=ESM_DELIVERY_RECEIPT, data_coding=DCS_GSM7,
                       tlvs=((TAG_RECEIPTED_MESSAGE_ID, part.message_id.encode() + b"\0"),
                             (TAG_MESSAGE_STATE, bytes((code,)))))
        await self._deliver(part.system_id, sm)

    async def _deliver(self, account: str, sm: DeliverSm) -> int:
        """Send until answered for good (ROK or a permanent error); that status."""
        while True:
            link = await self._bound_link(account)
            try:
                resp = await link.call(sm, self.response_timeout_s)
            except (LinkDown, TimeoutError):
                continue  # an SMSC keeps it and tries again
            if resp.status != ESME_RX_T_APPN:
                return resp.status
            await asyncio.sleep(self.retry_s)  # the SMSC's retry interval, simulated

    async def _bound_link(self, account: str) -> Link:
        while True:
            for link, bound_as in self._bound.items():
                if bound_as == account and link.up:
                    return link
            await self._bind_event.wait()
