"""An asyncio SMPP 3.4 ESME: one bound transceiver session, kept up while ``run`` runs.

* **Bind and re-bind**: connect and bind_transceiver; when the SMSC drops the link, unbinds,
  refuses the bind or stops answering enquire_link, reconnect with exponential backoff and
  jitter (reset by a successful bind; after a refused bind the longest backoff).
* **Keep-alive both ways**: after ``enquire_link_s`` without a PDU from the SMSC an
  enquire_link is sent, and the link dropped when it is not answered within
  ``response_timeout_s``. The SMSC's own enquire_link is answered at once.
* **Nothing silently lost**: ``submit`` waits up to ``response_timeout_s`` for a bound
  session, sends each part and returns the SMSC's message ids, or raises: ``NotBound``
  (nothing sent), ``SubmitRejected`` (an error command_status) or ``SubmitUncertain`` (no
  answer in time, or the link dropped first: the SMSC may have the part). Nothing is re-sent
  on its own; the caller's outbox retries, and ``accepted`` names the parts already taken.
* **Window**: at most ``window`` submit_sm await their response at once (enquire_link and
  responses to the SMSC are outside it).
* **Deliveries**: each deliver_sm goes to ``on_deliver``, in wire order, and is answered with
  deliver_sm_resp only once the callback returned: ESME_RX_T_APPN when it raised, so the
  SMSC delivers it again (deliveries are at least once: the callback must be idempotent).
  A receipt becomes a ``DeliveryReport``; a mobile-originated message a ``MobileMessage``,
  after its concatenated parts are reassembled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from notifications.sms.encoding import (
    Concat,
    EncodingError,
    Reassembler,
    decode_text,
    parse_udh,
    segment,
)

from .codes import (
    DELIVER_SM,
    ENQUIRE_LINK,
    ESM_UDHI,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_ROK,
    ESME_RX_P_APPN,
    ESME_RX_T_APPN,
    RECEIPT_ALWAYS,
    STATE_NAMES,
    UNBIND,
    numbering,
    status_name,
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
from .link import Link, LinkDown, Unsent
from .receipt import Receipt, parse_receipt

log = logging.getLogger(__name__)


class SmppClientError(Exception):
    """What ``SmppClient`` raises."""


class BindRefused(SmppClientError):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind_transceiver refused: {status_name(status)}")
        self.status = status


class SubmitError(SmppClientError):
    """A part was not confirmed; ``accepted`` holds the ids of the parts before it."""

    def __init__(self, message: str, accepted: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.accepted = tuple(accepted)


class NotBound(SubmitError):
    """No bound session within ``response_timeout_s``: the part was not sent."""


class SubmitRejected(SubmitError):
    """The SMSC answered the part with an error ``status``: it does not have it."""

    def __init__(self, status: int, accepted: Sequence[str] = ()) -> None:
        super().__init__(f"submit_sm refused: {status_name(status)} (0x{status:08x})", accepted)
        self.status = status


class SubmitUncertain(SubmitError):
    """No answer in time, or the link dropped first: the SMSC may have the part."""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A delivery receipt for one submitted part (``message_id`` from its submit_sm_resp);
    ``receipt`` is its text parsed, None when the SMSC's text is not the standard one."""

    message_id: str
    state: str
    receipt: Receipt | None
    pdu: DeliverSm


@dataclass(frozen=True, slots=True)
class MobileMessage:
    """A mobile-originated message, whole; ``pdu`` is its last part."""

    source: str
    destination: str
    text: str
    pdu: DeliverSm


Delivery = DeliveryReport | MobileMessage
OnDeliver = Callable[[Delivery], Awaitable[None]]


class SmppClient:
    """Keeps one bound transceiver session with the SMSC at ``host:port`` while ``run`` runs.

    ``bound`` is set while a session is bound; ``generation`` counts successful binds;
    ``on_deliver`` may be set after construction.
    """

    def __init__(self, host: str, port: int, system_id: str, password: str, *,
                 system_type: str = "", enquire_link_s: float = 30, response_timeout_s: float = 10,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30, window: int = 10,
                 on_deliver: OnDeliver | None = None, name: str = "smsc") -> None:
        self.host, self.port = host, port
        self.system_id, self.password, self.system_type = system_id, password, system_type
        self.enquire_link_s = enquire_link_s
        self.response_timeout_s = response_timeout_s
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        self.on_deliver = on_deliver
        self.name = name
        self.bound = asyncio.Event()
        self.generation = 0
        self.last_bind_status: int | None = None
        self.smsc_system_id = ""
        self.link: Link | None = None
        self._window = asyncio.Semaphore(window)
        self._reference = random.randrange(256)
        self._reassembler = Reassembler()

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.reconnect_min_s
        while not stop.is_set():
            try:
                reason = await self._session(stop)
                delay = self.reconnect_min_s
            except BindRefused as exc:
                reason = str(exc)
                delay = self.reconnect_max_s
            except (OSError, TimeoutError, LinkDown) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if stop.is_set():
                break
            wait = delay * (0.5 + random.random() / 2)
            log.warning("%s: SMPP session with %s:%d ended (%s); reconnecting in %.1fs",
                        self.name, self.host, self.port, reason, wait)
            delay = min(delay * 2, self.reconnect_max_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()

    async def _session(self, stop: asyncio.Event) -> str:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[int, DeliverSm]] = asyncio.Queue()

        def new_link() -> Link:
            return Link(lambda link, pdu: self._request(link, pdu, inbox), name=self.name,
                        on_down=self._link_down)

        async with asyncio.timeout(self.response_timeout_s):
            _, link = await loop.create_connection(new_link, self.host, self.port)
        tasks: list[asyncio.Task[Any]] = []
        try:
            bind = BindTransceiver(self.system_id, self.password, self.system_type)
            resp = await link.call(bind, self.response_timeout_s)
            self.last_bind_status = resp.status
            if resp.status != ESME_ROK or not isinstance(resp.body, BindTransceiverResp):
                raise BindRefused(resp.status)
            self.smsc_system_id = resp.body.system_id
            self.generation += 1
            self.link = link
            self.bound.set()
            log.info("%s: SMPP bound to %s:%d as %s", self.name, self.host, self.port,
                     self.system_id)
            stopper = asyncio.create_task(stop.wait())
            tasks = [asyncio.create_task(self._keepalive(link)),
                     asyncio.create_task(self._deliveries(link, inbox)), stopper]
            ends: set[asyncio.Future[Any]] = {link.closed, stopper}
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            if link.closed.done():
                return link.closed.result()
            self.bound.clear()  # no new submit on a link being unbound
            with contextlib.suppress(TimeoutError, LinkDown):
                await link.call(Unbind(), self.response_timeout_s)
            return "stopped"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            link.down("closing")

    def _link_down(self, link: Link) -> None:
        if self.link is link:  # no submit picks it up from now on
            self.link = None
            self.bound.clear()

    def _request(self, link: Link, pdu: Pdu, inbox: asyncio.Queue[tuple[int, DeliverSm]]) -> None:
        match pdu.body:
            case EnquireLink():
                link.reply(response_for(ENQUIRE_LINK, pdu.sequence))
            case DeliverSm() as sm:
                inbox.put_nowait((pdu.sequence, sm))
            case Unbind():
                link.reply(response_for(UNBIND, pdu.sequence))
                link.down("the SMSC unbound", graceful=True)
            case Unknown():
                link.reply(response_for(pdu.command_id, pdu.sequence, ESME_RINVCMDID))
            case _:  # a request an SMSC does not send to an ESME
                link.reply(response_for(pdu.command_id, pdu.sequence, ESME_RINVBNDSTS))

    async def _keepalive(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        while link.up:
            quiet = loop.time() - link.last_rx
            if quiet < self.enquire_link_s:
                await asyncio.sleep(self.enquire_link_s - quiet)
                continue
            try:
                await link.call(EnquireLink(), self.response_timeout_s)
            except (TimeoutError, LinkDown):
                log.warning("%s: enquire_link unanswered for %.1fs; dropping the link",
                            self.name, self.response_timeout_s)
                link.down("enquire_link unanswered")
                return

    async def _deliveries(self, link: Link, inbox: asyncio.Queue[tuple[int, DeliverSm]]) -> None:
        while True:
            sequence, sm = await inbox.get()
            status = await self._hand_over(sm)
            link.reply(response_for(DELIVER_SM, sequence, status))

    async def _hand_over(self, sm: DeliverSm) -> int:
        """The deliver_sm_resp status: ROK once ``on_deliver`` has it (or it is one part)."""
        try:
            delivery, concat = self._delivery(sm)
        except EncodingError as exc:
            log.warning("%s: unreadable deliver_sm from %s: %s", self.name, sm.source_addr, exc)
            return ESME_RX_P_APPN
        if delivery is None:
            return ESME_ROK  # one part; the message is handed over with its last one
        if self.on_deliver is None:
            log.info("%s: no on_deliver; %s dropped", self.name, type(delivery).__name__)
        else:
            try:
                await self.on_deliver(delivery)
            except Exception:
                log.exception("%s: on_deliver failed; the SMSC will deliver it again", self.name)
                return ESME_RX_T_APPN
        if concat is not None:
            self._reassembler.discard((sm.source_addr, sm.destination_addr), concat)
        return ESME_ROK

    def _delivery(self, sm: DeliverSm) -> tuple[Delivery | None, Concat | None]:
        if sm.is_receipt:
            receipt = parse_receipt(decode_text(sm.payload, sm.data_coding))
            message_id = sm.receipted_message_id or (receipt.message_id if receipt else "")
            code = sm.message_state
            if code is not None:
                state = STATE_NAMES.get(code, "UNKNOWN")
            else:
                state = receipt.state if receipt else "UNKNOWN"
            return DeliveryReport(message_id, state, receipt, sm), None
        concat, payload = parse_udh(sm.payload) if sm.udhi else (None, sm.payload)
        if concat is None:
            text: str | None = decode_text(payload, sm.data_coding)
        else:
            origin = (sm.source_addr, sm.destination_addr)
            text = self._reassembler.add(origin, concat, sm.data_coding, payload)
        if text is None:
            return None, concat
        return MobileMessage(sm.source_addr, sm.destination_addr, text, sm), concat

    async def submit(self, source: str, destination: str, text: str, *,
                     registered_delivery: bool = True) -> list[str]:
        """Send ``text`` (one part, or concatenated parts) and return the SMSC's message id of
        each part. Raises ``NotBound``, ``SubmitRejected``, ``SubmitUncertain``, or
        ``EncodingError`` / ``ValueError`` for a text or address that cannot be sent."""
        self._reference = (self._reference + 1) & 0xFF
        parts = segment(text, self._reference)
        src, src_ton, src_npi = numbering(source)
        dst, dst_ton, dst_npi = numbering(destination)
        accepted: list[str] = []
        for part in parts:
            sm = SubmitSm(src, dst, part.short_message, source_addr_ton=src_ton,
                          source_addr_npi=src_npi, dest_addr_ton=dst_ton, dest_addr_npi=dst_npi,
                          esm_class=ESM_UDHI if part.udhi else 0, data_coding=part.data_coding,
                          registered_delivery=RECEIPT_ALWAYS if registered_delivery else 0)
            accepted.append(await self._submit_part(sm, accepted))
        return accepted

    async def _submit_part(self, sm: SubmitSm, accepted: list[str]) -> str:
        deadline = asyncio.get_running_loop().time() + self.response_timeout_s
        while True:
            link = await self._bound_link(deadline, accepted)
            async with self._window:
                try:
                    resp = await link.call(sm, self.response_timeout_s)
                except Unsent:
                    continue  # it dropped while this waited for the window: wait for a re-bind
                except TimeoutError:
                    raise SubmitUncertain(f"no submit_sm_resp within {self.response_timeout_s}s",
                                          accepted) from None
                except LinkDown as exc:
                    raise SubmitUncertain(f"no submit_sm_resp: {exc}", accepted) from None
            break
        if resp.status != ESME_ROK:
            raise SubmitRejected(resp.status, accepted)
        if not isinstance(resp.body, SubmitSmResp):
            raise SubmitUncertain(f"answered with {type(resp.body).__name__}", accepted)
        return resp.body.message_id

    async def _bound_link(self, deadline: float, accepted: Sequence[str]) -> Link:
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    await self.bound.wait()
                    link = self.link
                    if link is not None and link.up:
                        return link
                    await asyncio.sleep(0)  # the session is taking it down: bound clears next
        except TimeoutError:
            refused = self.last_bind_status
            why = f" (last bind: {status_name(refused)})" if refused else ""
            raise NotBound(f"not bound to {self.host}:{self.port} within "
                           f"{self.response_timeout_s}s{why}", accepted) from None
