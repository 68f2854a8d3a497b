"""The demo's accounting system: a local HTTP endpoint that checks every webhook's Standard
Webhooks signature before it trusts the body, as a tenant's receiver must (the webhook tests
use it too, with a status to answer and a port to come back on)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Receiver:
    PATH: ClassVar[str] = "/accounting/webhooks"

    secret: str = ""
    answer: int = 204  # the status it answers, after verifying and recording
    received: list[tuple[str, Any]] = field(default_factory=list)  # verified (id, body)
    rejected: int = 0
    port: int = 0  # 0: any free port; a stopped receiver comes back on its own
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.PATH}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post(self.PATH)
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                data = Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError:
                self.rejected += 1
                return Response(status_code=401)
            self.received.append((request.headers["webhook-id"], data))
            return Response(status_code=self.answer)

        return app

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

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
