"""How a batch of commands reaches Redis: the one-method seam under ``CommandBatcher``.

``RespTransport`` is the hot path: a few plain TCP connections that write a whole batch as one
RESP buffer and parse the replies with hiredis, skipping redis-py's per-command machinery (which
costs more than Redis itself). ``RedisPyTransport`` sends the batch as a redis-py pipeline: slower,
but it works with any redis-py client, including ``RedisCluster`` (which splits by slot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ResponseError

Command = Sequence[Any]


class Transport(Protocol):
    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        """Send the commands in order; a failed command's reply is its exception instance."""
        ...

    async def aclose(self) -> None: ...


def encode(command: Command, out: list[bytes]) -> None:
    """Append one command in RESP (array of bulk strings) to ``out`` (hiredis, in C)."""
    out.append(hiredis.pack_command(tuple(command)))


class _Connection:
    __slots__ = ("parser", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = hiredis.Reader(replyError=ResponseError)

    async def roundtrip(self, payload: bytes, n: int) -> list[Any]:
        self.writer.write(payload)
        replies: list[Any] = []
        while len(replies) < n:
            reply = self.parser.gets()
            if reply is False:
                data = await self.reader.read(1 << 16)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                self.parser.feed(data)
                continue
            replies.append(reply)
        return replies

    def close(self) -> None:
        self.writer.close()


class RespTransport:
    """A small pool of pipelining connections to one Redis server."""

    def __init__(self, url: str, connections: int = 4, timeout: float = 5.0) -> None:
        opts = parse_url(url)
        self._host = str(opts.get("host", "127.0.0.1"))
        self._port = int(opts.get("port", 6379))
        self._db = int(opts.get("db", 0))
        self._username = opts.get("username")
        self._password = opts.get("password")
        self._timeout = timeout
        self._idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)  # a slot; connected lazily

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        conn = _Connection(reader, writer)
        setup: list[Command] = []
        if self._password:
            auth = [self._username, self._password] if self._username else [self._password]
            setup.append(("AUTH", *auth))
        if self._db:
            setup.append(("SELECT", self._db))
        if setup:
            out: list[bytes] = []
            for c in setup:
                encode(c, out)
            for reply in await conn.roundtrip(b"".join(out), len(setup)):
                if isinstance(reply, Exception):
                    conn.close()
                    raise reply
        return conn

    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        conn = await self._idle.get()
        try:
            if conn is None:
                conn = await asyncio.wait_for(self._connect(), self._timeout)
            out: list[bytes] = []
            for c in commands:
                encode(c, out)
            replies = await asyncio.wait_for(
                conn.roundtrip(b"".join(out), len(commands)), self._timeout
            )
        except BaseException:
            if conn is not None:
                conn.close()  # its stream position is unknown: never reuse it
            self._idle.put_nowait(None)
            raise
        self._idle.put_nowait(conn)
        return replies

    async def aclose(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                conn.close()


class RedisPyTransport:
    """Batches as redis-py pipelines (works with Redis Cluster clients)."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for c in commands:
            pipe.execute_command(*c)
        return list(await pipe.execute(raise_on_error=False))

    async def aclose(self) -> None:
        return None
