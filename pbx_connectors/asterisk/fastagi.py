"""FastAGI server: Asterisk connects, sends its ``agi_*`` environment, reads our commands.

Replaces panoramisk's ``fast_agi.Application`` (field notes section 3): its header loop
``while b'\\n\\n' not in buffer: buffer += await reader.read(100)`` spins forever without
yielding when a peer sends a partial header and closes (the whole event loop freezes), has no
size limit or timeout, and plain (non-async) handlers crash it. Here each connection reads its
environment through ``agi_protocol.AgiEnvParser`` (line, size and count limits) within
``header_timeout_s``, treats end-of-file as the end, and waits at most ``reply_timeout_s`` for
each reply; a stalled, slow or hostile peer holds only its own connection. Connections beyond
``max_connections`` and peers outside ``allow`` are closed at once (the dialplan then fails
closed: it requires ``CHARGING_STATUS=ALLOWED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from pbx_connectors.asterisk.agi_protocol import (
    MAX_ENV_BYTES,
    AgiEnvParser,
    AgiError,
    parse_reply,
    script_name,
    set_variable,
)
from pbx_connectors.asterisk.authorization import ERROR, AgiAnswer
from pbx_connectors.asterisk.config import FastAgiConfig

log = logging.getLogger("pbx_connectors.asterisk.agi")

Handler = Callable[[dict[str, str]], Awaitable[AgiAnswer]]
ROUTE = "authorize"


class FastAgiServer:
    def __init__(self, config: FastAgiConfig, handler: Handler, name: str = "pbx") -> None:
        self.config = config
        self.handler = handler
        self.name = name
        self._networks = config.networks()
        self._server: asyncio.Server | None = None
        self._active: set[asyncio.Task[None]] = set()
        self.served = 0

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_client, self.config.host, self.config.port, limit=MAX_ENV_BYTES,
            reuse_address=True,
        )
        log.info("%s: FastAGI listening on %s:%d", self.name, self.config.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._active):
            t.cancel()
        await asyncio.gather(*self._active, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    def _allowed(self, peer: object) -> bool:
        if not self._networks:
            return True
        try:
            addr = ipaddress.ip_address(peer[0])  # type: ignore[index]
        except (TypeError, ValueError, IndexError):
            return False
        return any(addr in net for net in self._networks)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        if len(self._active) >= self.config.max_connections or not self._allowed(peer):
            log.warning("%s: FastAGI connection from %s refused (%s)", self.name, peer,
                        "not allowed" if not self._allowed(peer) else "too many connections")
            writer.close()
            return
        self._active.add(task)
        try:
            await self._serve(reader, writer)
        except (AgiError, TimeoutError, ConnectionError, OSError, ValueError) as exc:
            log.info("%s: FastAGI peer %s dropped: %s: %s", self.name, peer,
                     type(exc).__name__, exc)
        except asyncio.CancelledError:
            # Server shutdown. asyncio's per-connection callback calls task.exception(),
            # which raises for a cancelled task (3.11): end this task normally instead.
            writer.transport.abort()
            return
        finally:
            self._active.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = await self._read_env(reader)
        route = script_name(env)
        if route != ROUTE:
            answer = AgiAnswer(ERROR, "unknown_route")
        else:
            answer = await self.handler(env)
        self.served += 1
        log.debug("%s: AGI %s -> %s", self.name, env.get("agi_uniqueid"), answer)
        await self._send(reader, writer, answer)

    async def _read_env(self, reader: asyncio.StreamReader) -> dict[str, str]:
        parser = AgiEnvParser()
        async with asyncio.timeout(self.config.header_timeout_s):
            while True:
                data = await reader.read(4096)
                if not data:
                    raise AgiError("peer closed before the end of the AGI environment")
                env = parser.feed(data)
                if env is not None:
                    return env

    async def _send(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: AgiAnswer
    ) -> None:
        for name, value in answer.variables():
            writer.write(set_variable(name, value))
            async with asyncio.timeout(self.config.reply_timeout_s):
                await writer.drain()
                line = await reader.readline()
                while line.strip() == b"HANGUP":  # the caller left; replies follow
                    line = await reader.readline()
            if not line:
                raise ConnectionError("peer closed before acknowledging " + name)
            reply = parse_reply(line.decode("utf-8", "replace"))
            if not reply.ok:
                log.info("%s: SET VARIABLE %s answered %s %s", self.name, name, reply.code,
                         reply.data or "")
                return
