"""The demo's accounting system: a local HTTP endpoint that checks every webhook's Standard
Webhooks signature before it trusts the body, as a tenant's receiver must."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Receiver:
    secret: str = ""
    verified: list[tuple[str, Any]] = field(default_factory=list)  # (webhook-id, body)
    rejected: int = 0
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/accounting/webhooks"

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/accounting/webhooks")
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                data = Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError:
                self.rejected += 1
                return Response(status_code=401)
            self.verified.append((request.headers["webhook-id"], data))
            return Response(status_code=204)

        return app

    async def __aenter__(self) -> Receiver:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(
            self._app(), loop="none", log_level="warning", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
