"""The AMI side of the simulated PBX: a TCP server speaking manager.c's wire protocol.

Sessions log in (wrong credentials: ``Authentication failed`` and the connection is closed,
as Asterisk does), then send actions answered with their ``ActionID``. Each session receives
the events its user's ``read`` permission and its own event mask (Login ``Events:``, then the
``Events`` action) allow, as manager.c filters them (``eventmask``); answers to actions are
never filtered. Faults for the connector's tests: ``drop`` closes every session
and refuses connections for a while (what happens meanwhile is lost: Asterisk replays nothing),
``silent`` keeps sessions open but answers nothing and sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from ..ami_protocol import AmiParser, Message, ProtocolError
from .channels import Channel, duration_hms
from .clock import format_ts
from .eventmask import EVERYTHING, SYSTEM, event_class, get_perm, may_send, strings_to_mask
from .events import encode

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_PENDING_WRITE = 16 * 1024 * 1024  # a client that reads slower than this is dropped
FLOW_HIGH_WATER = 1024 * 1024  # calls pause between steps while a client has this much unsent
FLOW_WAIT_S = 1.0  # ...but never longer than this per step: a stalled client cannot stall calls
_OPEN_ACTIONS = {"login", "logoff", "challenge"}


class PbxControl(Protocol):
    """What AMI actions may do to the calls (implemented by the simulator)."""

    def hangup(self, channel: str, cause: int) -> bool: ...

    def absolute_timeout(self, channel: str, seconds: float) -> bool: ...

    def live_channels(self) -> list[Channel]: ...


def _response(action: Message, status: str, message: str | None = None) -> Message:
    msg = Message([("Response", status)])
    if action.action_id:
        msg.add("ActionID", action.action_id)
    if message is not None:
        msg.add("Message", message)
    return msg


class _Session:
    __slots__ = ("authenticated", "readperm", "send_events", "server", "user", "writer")

    def __init__(self, server: AmiServer, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.writer = writer
        self.authenticated = False
        self.readperm = 0  # the user's read= classes, set at login
        self.send_events = EVERYTHING  # the session's event mask until Login/Events set it
        self.user = ""

    def wants(self, cls: int) -> bool:
        return self.authenticated and may_send(self.readperm, self.send_events, cls)

    def send(self, data: bytes) -> None:
        transport = self.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_PENDING_WRITE:
            log.warning("AMI client %s too slow; dropping it", self.user)
            transport.abort()
            return
        self.writer.write(data)

    def backlog(self) -> int:
        transport = self.writer.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    def send_message(self, msg: Message) -> None:
        self.send(encode(msg))

    def reply(self, msg: Message) -> None:
        if not self.server.silent:
            self.send(encode(msg))

    def abort(self) -> None:
        self.writer.transport.abort()

    async def serve(self, reader: asyncio.StreamReader) -> None:
        self.send(BANNER)
        parser = AmiParser(expect_banner=False)
        deadline = asyncio.get_running_loop().time() + self.server.auth_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(None if self.authenticated else deadline):
                    data = await reader.read(65536)
            except TimeoutError:
                return  # manager.c authtimeout: never logged in
            if not data:
                return
            parser.feed(data)
            try:
                for msg in parser.messages():
                    if not self.server.handle(self, msg):
                        with contextlib.suppress(OSError):
                            await self.writer.drain()
                        return
            except ProtocolError as exc:
                log.info("AMI client broke the protocol: %s", exc)
                return


class AmiServer:
    """Listens on ``host:port`` (0: a free port, then kept across ``drop``/``restore``).

    ``users`` maps user names to secrets; ``read`` gives a user's manager.conf ``read =``
    value (a user without one reads ``all``, as the user of the recorded transcripts did).
    """

    def __init__(self, control: PbxControl, users: Mapping[str, str], host: str = "127.0.0.1",
                 port: int = 0, auth_timeout_s: float = 30.0,
                 read: Mapping[str, str] | None = None) -> None:
        self._control = control
        self._users = dict(users)
        self._readperm = {user: get_perm((read or {}).get(user, "all")) for user in self._users}
        self._host = host
        self._port = port
        self.auth_timeout_s = auth_timeout_s
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[_Session] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._reopen: asyncio.Task[None] | None = None
        self.up = asyncio.Event()
        self.silent = False
        self._started = time.time()
        self._actions: dict[str, Callable[[_Session, Message], bool]] = {
            "login": self._login, "logoff": self._logoff, "ping": self._ping,
            "events": self._events, "hangup": self._hangup,
            "absolutetimeout": self._absolute_timeout, "coreshowchannels": self._channels,
        }

    @property
    def port(self) -> int:
        return self._port

    @property
    def clients(self) -> int:
        """Logged-in sessions."""
        return sum(1 for s in self._sessions if s.authenticated)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self._host, self._port,
                                                  reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]
        self.up.set()

    async def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            await asyncio.wait({self._reopen})
            self._reopen = None
        await self._stop_listening()

    async def _stop_listening(self) -> None:
        self.up.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in list(self._sessions):
            session.abort()
        if self._handlers:  # let each session's task see its end (none is left to be cancelled)
            await asyncio.wait(list(self._handlers), timeout=5)

    async def drop(self, seconds: float | None) -> None:
        """Close every session and refuse connections for ``seconds`` (None: until restore)."""
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        await self._stop_listening()
        if seconds is not None:
            self._reopen = asyncio.create_task(self._restore_after(seconds))

    async def _restore_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # the outage itself, not a synchronisation
        self._reopen = None
        await self._listen_again()

    async def restore(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if self._server is None:
            await self._listen_again()

    async def _listen_again(self) -> None:
        for attempt in range(50):
            try:
                await self.start()
                return
            except OSError as exc:  # the port is briefly unavailable: retry, then give up
                if attempt == 49:
                    log.error("AMI server cannot listen again on port %s: %s", self._port, exc)
                    raise
                await asyncio.sleep(0.1)

    def broadcast(self, msg: Message, times: int = 1) -> None:
        """An event (already stamped), ``times`` times, to every session whose read
        permission and event mask cover its classes."""
        if self.silent:
            return
        cls = event_class(msg.get("Privilege") or "")
        listeners = [s for s in self._sessions if s.wants(cls)]
        if not listeners:
            return
        data = encode(msg) * times
        for session in listeners:
            session.send(data)

    async def flow(self) -> None:
        """Back-pressure for the calls: wait (bounded) while a client has a lot unread, so an
        in-process consumer is not dropped for being slower than the event generator."""
        for session in [s for s in self._sessions
                        if s.authenticated and s.backlog() > FLOW_HIGH_WATER]:
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                async with asyncio.timeout(FLOW_WAIT_S):
                    await session.writer.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, writer)
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await session.serve(reader)
        except (ConnectionError, OSError):
            pass
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    # -- actions (return False to close the session) -------------------------------------
    def handle(self, session: _Session, msg: Message) -> bool:
        if self.silent:  # a hung PBX: the action is read and never carried out nor answered
            return True
        action = (msg.get("Action") or "").strip().lower()
        if not action:
            session.reply(_response(msg, "Error", "Missing action in request"))
            return True
        if not session.authenticated and action not in _OPEN_ACTIONS:
            session.reply(_response(msg, "Error", "Permission denied"))
            return True
        handler = self._actions.get(action)
        if handler is None:
            session.reply(_response(msg, "Error", f"Invalid/unknown command: {msg['Action']}. "
                                    "Use Action: ListCommands to show available commands."))
            return True
        return handler(session, msg)

    def _login(self, session: _Session, msg: Message) -> bool:
        if session.authenticated:
            session.reply(_response(msg, "Success", "Already authenticated"))
            return True
        user, secret = msg.get("Username") or "", msg.get("Secret") or ""
        expected = self._users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            session.reply(_response(msg, "Error", "Authentication failed"))
            return False
        session.authenticated, session.user = True, user
        session.readperm = self._readperm[user]
        mask = strings_to_mask(msg.get("Events"))
        if mask is not None:  # no (or an empty) Events header keeps every event on
            session.send_events = mask
        session.reply(_response(msg, "Success", "Authentication accepted"))
        if session.send_events & SYSTEM and session.readperm & SYSTEM:  # as action_login
            uptime = str(int(time.time() - self._started))
            # recorded without a Timestamp header, unlike every other event
            session.send_message(Message([("Event", "FullyBooted"), ("Privilege", "system,all"),
                                  ("Uptime", uptime), ("LastReload", uptime),
                                  ("Status", "Fully Booted")]))
        return True

    def _logoff(self, session: _Session, msg: Message) -> bool:
        session.reply(_response(msg, "Goodbye", "Thanks for all the fish."))
        return False

    def _ping(self, session: _Session, msg: Message) -> bool:
        reply = _response(msg, "Success")
        reply.add("Ping", "Pong").add("Timestamp", format_ts(time.time_ns() // 1000))
        session.reply(reply)
        return True

    def _events(self, session: _Session, msg: Message) -> bool:
        mask = strings_to_mask(msg.get("EventMask"))
        if mask is None:
            session.reply(_response(msg, "Error", "Invalid event mask"))
            return True
        session.send_events = mask
        reply = _response(msg, "Success")
        session.reply(reply.add("Events", "On" if mask > 0 else "Off"))
        return True

    def _hangup(self, session: _Session, msg: Message) -> bool:
        channel = (msg.get("Channel") or "").strip()
        if not channel:
            session.reply(_response(msg, "Error", "No channel specified"))
            return True
        raw = (msg.get("Cause") or "").strip()
        cause = 16  # no Cause (or a bad one): hung up without a cause, cleared as 16
        if raw.isdigit() and 0 < int(raw) <= 127:
            cause = int(raw)
        if not self._control.hangup(channel, cause):
            session.reply(_response(msg, "Error", "No such channel"))
            return True
        session.reply(_response(msg, "Success", "Channel Hungup"))
        return True

    def _absolute_timeout(self, session: _Session, msg: Message) -> bool:
        channel = (msg.get("Channel") or "").strip()
        if not channel:
            session.reply(_response(msg, "Error", "No channel specified"))
            return True
        try:
            seconds = float((msg.get("Timeout") or "").strip())
        except ValueError:
            seconds = 0.0  # atof() of garbage
        if not seconds > 0 or seconds > 10**9:
            session.reply(_response(msg, "Error", "No timeout specified"))
            return True
        if not self._control.absolute_timeout(channel, seconds):
            session.reply(_response(msg, "Error", "No such channel"))
            return True
        session.reply(_response(msg, "Success", "Timeout Set"))
        return True

    def _channels(self, session: _Session, msg: Message) -> bool:
        ack = Message([("Response", "Success")])
        aid = msg.action_id
        if aid:
            ack.add("ActionID", aid)
        ack.add("EventList", "start").add("Message", "Channels will follow")
        session.reply(ack)
        now = time.time()
        channels = self._control.live_channels()
        for ch in channels:
            item = Message([("Event", "CoreShowChannel")])
            if aid:
                item.add("ActionID", aid)
            item.pairs.extend(ch.snapshot())
            item.add("Application", ch.application).add("ApplicationData", ch.app_data)
            item.add("Duration", duration_hms(now - ch.created_us / 1e6))
            item.add("BridgeId", ch.bridge_id)
            session.reply(item)
        done = Message([("Event", "CoreShowChannelsComplete")])
        if aid:
            done.add("ActionID", aid)
        done.add("EventList", "Complete").add("ListItems", str(len(channels)))
        session.reply(done)
        return True
