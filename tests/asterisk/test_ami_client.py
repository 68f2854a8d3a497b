"""The AMI client against a scripted AMI server over real TCP: login, ordered events, action
errors, dropped connections (nothing replayed), a peer that breaks the framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from pbx_connectors.asterisk.ami_client import (
    ActionResult,
    AmiClient,
    AmiDisconnected,
    AmiRejected,
    Connected,
    Disconnected,
    InboxItem,
)
from pbx_connectors.asterisk.ami_protocol import AmiParser, Message
from pbx_connectors.asterisk.config import AmiConfig
from tests.asterisk.stack import eventually

Reply = Callable[[Message], list[Message] | None]


class ScriptedAmi:
    """Banner, then one reply list per action (``reply`` decides; None: stay silent)."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply or (lambda m: [Message.of(Response="Success")])
        self.received: list[Message] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.logins = 0
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> ScriptedAmi:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self.drop()

    def drop(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    def push(self, data: bytes) -> None:
        for w in self.writers:
            w.write(data)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = AmiParser(expect_banner=False)
        try:
            while data := await reader.read(4096):
                parser.feed(data)
                for msg in parser.messages():
                    self.received.append(msg)
                    if msg.get("Action") == "Login":
                        self.logins += 1
                    for out in self.reply(msg) or []:
                        out.add("ActionID", msg.get("ActionID") or "")
                        writer.write(out.encode())
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()


def config(port: int, **kw: float) -> AmiConfig:
    return AmiConfig(port=port, username="u", secret="s", **{
        "ping_interval_s": 0.5, "ping_timeout_s": 0.5, "action_timeout_s": 0.5,
        "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, **kw})


@asynccontextmanager
async def client_of(server: ScriptedAmi, **kw: float) -> AsyncIterator[AmiClient]:
    client = AmiClient(config(server.port, **kw), "t")
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        yield client
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.close()


async def next_item(client: AmiClient) -> InboxItem:
    async with asyncio.timeout(5):
        return await client.inbox.get()


async def test_events_and_ordered_action_results_keep_wire_order() -> None:
    def reply(m: Message) -> list[Message]:
        if m.get("Action") == "CoreShowChannels":
            return [Message.of(Response="Success", EventList="start"),
                    Message.of(Event="CoreShowChannel", Uniqueid="u1"),
                    Message.of(Event="CoreShowChannelsComplete", EventList="Complete")]
        return [Message.of(Response="Success")]

    server = await ScriptedAmi(reply).start()
    async with client_of(server) as client:
        assert isinstance(await next_item(client), Connected)
        server.push(Message.of(Event="Hangup", Uniqueid="before").encode())
        assert (await next_item(client)).get("Uniqueid") == "before"  # type: ignore[union-attr]
        got = await client.action("CoreShowChannels", tag="snap")
        assert [m.event for m in got[1:]] == ["CoreShowChannel", "CoreShowChannelsComplete"]
        server.push(Message.of(Event="Hangup", Uniqueid="after").encode())
        item = await next_item(client)
        assert isinstance(item, ActionResult) and item.tag == "snap"
        assert (await next_item(client)).get("Uniqueid") == "after"  # type: ignore[union-attr]


async def test_error_answers_and_refused_values() -> None:
    server = await ScriptedAmi(lambda m: [Message.of(
        Response="Error" if m.get("Action") == "Hangup" else "Success",
        Message="No such channel")]).start()
    async with client_of(server) as client:
        await eventually(lambda: _true(client.connected), 5, "login")
        with pytest.raises(AmiRejected, match="No such channel"):
            await client.action("Hangup", Channel="PJSIP/x")
        with pytest.raises(Exception, match="line break"):  # never reaches the wire
            await client.action("Hangup", Channel="PJSIP/x\r\nAction: Originate")
        assert not [m for m in server.received if m.get("Action") == "Originate"]


async def test_refused_login_never_reports_connected() -> None:
    server = await ScriptedAmi(lambda m: [Message.of(Response="Error",
                                                     Message="Authentication failed")]).start()
    async with client_of(server, reconnect_max_s=0.1) as client:
        await eventually(lambda: _true(server.logins >= 2), 5, "a second login attempt")
        assert not client.connected and len(client.inbox) == 0
        with pytest.raises(AmiDisconnected):
            await client.action("Ping")


async def test_a_dropped_action_fails_and_is_never_sent_again() -> None:
    server = await ScriptedAmi(
        lambda m: None if m.get("Action") == "Hangup" else [Message.of(Response="Success")]
    ).start()
    async with client_of(server, action_timeout_s=5.0) as client:
        assert isinstance(await next_item(client), Connected)
        pending = asyncio.create_task(client.action("Hangup", Channel="PJSIP/a"))
        await eventually(lambda: _true(any(m.get("Action") == "Hangup"
                                           for m in server.received)), 5, "the Hangup")
        server.drop()
        with pytest.raises(AmiDisconnected):
            await pending
        assert isinstance(await next_item(client), Disconnected)
        assert isinstance(await next_item(client), Connected)  # logged in again
        await client.action("Ping")
        assert [m.get("Action") for m in server.received].count("Hangup") == 1


async def test_silent_peer_is_dropped_by_the_watchdog() -> None:
    silent = False
    server = await ScriptedAmi(lambda m: None if silent else [Message.of(Response="Success")]
                               ).start()
    async with client_of(server) as client:
        assert isinstance(await next_item(client), Connected)
        silent = True
        assert isinstance(await next_item(client), Disconnected)
        silent = False
        assert isinstance(await next_item(client), Connected)


async def test_a_peer_breaking_the_framing_is_dropped() -> None:
    server = await ScriptedAmi().start()
    async with client_of(server) as client:
        assert isinstance(await next_item(client), Connected)
        server.push(b"Event: Hangup\r\nX: " + b"y" * 10_000 + b"\r\n\r\n")
        assert isinstance(await next_item(client), Disconnected)
        assert isinstance(await next_item(client), Connected)


def test_parser_keeps_what_the_caller_did_not_read() -> None:
    parser = AmiParser(expect_banner=False)
    parser.feed(b"".join(Message.of(Event="E", N=i).encode() for i in range(3)))
    first = next(parser.messages())
    assert first["N"] == "0"
    assert [m["N"] for m in parser.messages()] == ["1", "2"]


async def _true(value: bool) -> bool:
    return value
