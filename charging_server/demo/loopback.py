"""Serving a small FastAPI app on a loopback port, for the demo's stand-ins of other systems
(the accounting receiver, Stripe's API) and the tests that reuse them."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Self

import uvicorn
from fastapi import FastAPI


class LoopbackServer:
    """``start``/``stop`` (or ``async with``) serve ``app()`` on 127.0.0.1:``port``; port 0 takes
    any free one, and a stopped server comes back on its own port."""

    port: int
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def app(self) -> FastAPI:
        raise NotImplementedError

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(
            self.app(), loop="none", log_level="warning", lifespan="off"))
        # The socket listens already: connections queue until uvicorn accepts them.
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
