"""The demo's accounting system: a local HTTP endpoint that checks every webhook's Standard
Webhooks signature before it trusts the body, as a tenant's receiver must (the webhook tests
use it too, with a status to answer and a port to come back on)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from charging_server.demo.loopback import LoopbackServer


@dataclass
class Receiver(LoopbackServer):
    PATH: ClassVar[str] = "/accounting/webhooks"

    secret: str = ""
    answer: int = 204  # the status it answers, after verifying and recording
    received: list[tuple[str, Any]] = field(default_factory=list)  # verified (id, body)
    rejected: int = 0
    port: int = 0  # 0: any free port; a stopped receiver comes back on its own

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
