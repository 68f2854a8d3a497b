"""One SMPP connection, either end of it, over an asyncio transport.

Bytes are framed by ``pdu.Framer``; each response is matched to its request by
sequence_number and every request is handed to the owner's ``on_request``. A malformed
request is answered here (its _resp, or generic_nack, with the ``PduError``'s status); a
stream that cannot be framed drops the link. ``down`` is the one way a link ends: the owner's
``on_down`` runs, every request still waiting fails with ``LinkDown`` (nothing is re-sent:
the peer may or may not have acted on it) and ``closed`` resolves with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from .codes import MAX_SEQUENCE, RESP
from .commands import Body, Pdu, response_for
from .pdu import Framer, PduError, ProtocolError, decode, encode

log = logging.getLogger(__name__)


class LinkDown(Exception):
    """The link went down before the answer came."""


class Unsent(LinkDown):
    """The link was down: nothing was written."""


class Link(asyncio.Protocol):
    """``on_request(link, pdu)`` gets each request; ``tally(outbound, command_id)`` sees every
    PDU that crosses the link (the simulator counts them)."""

    def __init__(self, on_request: Callable[[Link, Pdu], None], *, name: str = "smpp",
                 on_up: Callable[[Link], None] | None = None,
                 on_down: Callable[[Link], None] | None = None,
                 tally: Callable[[bool, int], None] | None = None) -> None:
        self.on_request, self.on_up, self.on_down, self.tally = on_request, on_up, on_down, tally
        self.name = name
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, asyncio.Future[Pdu]] = {}
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.last_rx = loop.time()
        self._sequence = 0

    @property
    def up(self) -> bool:
        t = self.transport
        return t is not None and not self.closed.done() and not t.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but has its methods
        self.transport = cast(asyncio.Transport, transport)
        if self.on_up is not None:
            self.on_up(self)

    def data_received(self, data: bytes) -> None:
        self.last_rx = asyncio.get_running_loop().time()
        self.framer.feed(data)
        try:
            for frame in self.framer.frames():
                if self.closed.done():
                    return
                self._frame(frame)
        except ProtocolError as exc:
            log.warning("%s: the peer broke SMPP framing (%s); dropping the link", self.name, exc)
            self.down(str(exc))

    def _frame(self, frame: bytes) -> None:
        try:
            pdu = decode(frame)
        except PduError as exc:
            log.warning("%s: malformed PDU: %s", self.name, exc)
            if self.tally is not None:
                self.tally(False, exc.command_id)
            if exc.command_id & RESP:
                self._resolve(exc.sequence, exc)
            else:
                self.reply(response_for(exc.command_id, exc.sequence, exc.status))
            return
        if self.tally is not None:
            self.tally(False, pdu.command_id)
        if pdu.is_response:
            self._resolve(pdu.sequence, pdu)
        else:
            self.on_request(self, pdu)

    def _resolve(self, sequence: int, result: Pdu | PduError) -> None:
        fut = self.pending.pop(sequence, None)
        if fut is None or fut.done():
            return  # its caller gave up waiting
        if isinstance(result, PduError):
            fut.set_exception(LinkDown(f"unreadable response: {result}"))
        else:
            fut.set_result(result)

    def _write(self, pdu: Pdu) -> None:
        if self.transport is None or not self.up:
            raise Unsent("not connected")
        self.transport.write(encode(pdu))
        if self.tally is not None:
            self.tally(True, pdu.command_id)

    def reply(self, pdu: Pdu) -> None:
        """Send a response (dropped when the link is down: the peer's request failed too)."""
        if self.up:
            self._write(pdu)

    async def call(self, body: Body, within_s: float) -> Pdu:
        """Send a request and await its response. Raises ``Unsent`` (nothing written),
        ``LinkDown`` or ``TimeoutError`` (the peer may have acted on it), ``ValueError``
        (a field the codec refuses; nothing written)."""
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        sequence = self._sequence
        pdu = Pdu(body, sequence)
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._write(pdu)  # Unsent, or ValueError from the codec, before anything is sent
        self.pending[sequence] = fut
        try:
            async with asyncio.timeout(within_s):
                return await fut
        finally:
            self.pending.pop(sequence, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.down(str(exc) if exc else "connection closed")

    def down(self, reason: str, graceful: bool = False) -> None:
        """End the link: ``graceful`` still sends what was written (an unbind_resp)."""
        t = self.transport
        if t is not None and not t.is_closing():
            if graceful:
                t.close()
            else:
                t.abort()
        if self.closed.done():
            return
        self.closed.set_result(reason)
        if self.on_down is not None:
            self.on_down(self)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(LinkDown(reason))
                fut.exception()  # retrieved: no "never retrieved" warning
        self.pending.clear()
