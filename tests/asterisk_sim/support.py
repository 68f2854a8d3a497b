"""A minimal AMI client and a stand-in FastAGI server, both over real TCP, for the tests.

The client keeps every message it received in order; tests wait for a fact about them with a
deadline (``wait_for``) instead of sleeping. Transcripts are parsed with the project's own AMI
parser: they are the oracle for the simulator's event sequences.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pbx_connectors.asterisk.agi_protocol import AgiEnvParser
from pbx_connectors.asterisk.ami_protocol import AmiParser, Message, parse_all

T = TypeVar("T")
# Verbatim copies of ../shared/field-notes/asterisk-transcripts, kept in the repository so the
# tests run from any checkout.
TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-transcripts"
_ids = itertools.count(1)


def transcript(name: str) -> list[Message]:
    """What the real Asterisk sent in a transcript (lines starting ``>>> `` are the client's)."""
    text = (TRANSCRIPTS / name).read_bytes().decode()
    server = [line for line in text.split("\r\n") if not line.startswith(">>> ")]
    return parse_all("\r\n".join(server).encode(), expect_banner=True)


def leg_events(messages: list[Message], uniqueid: str) -> list[Message]:
    """The events of one channel (by Uniqueid, or UniqueID for Cdr), CEL left out."""
    return [m for m in messages if m.event not in (None, "CEL")
            and (m.get("Uniqueid") == uniqueid or m.get("UniqueID") == uniqueid)]


class AmiClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = AmiParser(expect_banner=True)
        self.messages: list[Message] = []
        self.eof = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> AmiClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    @property
    def banner(self) -> str | None:
        return self._parser.banner

    @property
    def events(self) -> list[Message]:
        return [m for m in self.messages if m.event is not None]

    async def _read(self) -> None:
        try:
            while data := await self._reader.read(65536):
                self._parser.feed(data)
                self.messages.extend(self._parser.messages())
                self._changed.set()
        except ConnectionError:
            pass
        finally:
            self.eof.set()
            self._changed.set()

    async def wait_for(self, pred: Callable[[list[Message]], T | None], within: float = 5.0,
                       ) -> T:
        async with asyncio.timeout(within):
            while True:
                result = pred(self.messages)
                if result:
                    return result
                if self.eof.is_set():
                    raise ConnectionError("AMI connection closed while waiting")
                self._changed.clear()
                await self._changed.wait()

    def send(self, msg: Message) -> None:
        self._writer.write(msg.encode())

    def send_raw(self, data: bytes) -> None:
        self._writer.write(data)

    async def action(self, name: str, within: float = 5.0, **fields: str | int) -> Message:
        action_id = f"t{next(_ids)}"
        self.send(Message([("Action", name), ("ActionID", action_id),
                           *((k, str(v)) for k, v in fields.items())]))
        return await self.wait_for(
            lambda ms: next((m for m in ms if m.response is not None
                             and m.action_id == action_id), None), within)

    async def login(self, user: str = "charging", secret: str = "charging",
                    events: str = "on") -> Message:
        return await self.action("Login", Username=user, Secret=secret, Events=events)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        await asyncio.wait({self._task})


class StubAgi:
    """A FastAGI server that sends fixed commands, then closes (or, ``hang``, stays silent)."""

    def __init__(self, commands: list[str], hang: bool = False) -> None:
        self.commands = commands
        self.hang = hang
        self.envs: list[dict[str, str]] = []
        self.replies: list[str] = []
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            parser = AgiEnvParser()
            env = None
            while env is None:
                data = await reader.read(4096)
                if not data:
                    return
                env = parser.feed(data)
            self.envs.append(env)
            for command in self.commands:
                writer.write(command.encode() + b"\n")
                reply = (await reader.readline()).decode()
                if reply[3:4] == "-":  # a multi-line 520 usage reply ends with "520 ..."
                    while reply and not (reply[:3].isdigit() and reply[3:4] == " "):
                        reply = (await reader.readline()).decode()
                self.replies.append(reply.rstrip("\n"))
            if self.hang:
                await self._release.wait()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port
