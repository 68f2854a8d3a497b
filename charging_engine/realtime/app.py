"""The real-time HTTP API that PBXs call around every call: authorize, answer, extend, end.

``create_app`` assembles it: the routes (``routes``), key authentication (``auth``), the
models (``schemas``), the shared body guard and problem+json handlers (``charging_engine.web``).
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI

from charging_engine.realtime import problems
from charging_engine.realtime.routes import router
from charging_engine.realtime.schemas import API_VERSION, MAX_BODY_BYTES
from charging_engine.sessions.service import ChargingService
from charging_engine.web.body_guard import BodyGuard
from charging_engine.web.problems import ProblemAPI

__all__ = ["API_VERSION", "MAX_BODY_BYTES", "RealtimeAPI", "create_app"]

_DESCRIPTION: Final = (
    "Authorize, answer, extend and end calls against prepaid balances. Authenticate "
    "with the PBX's API key (`Authorization: Bearer <key>` or `X-API-Key`); the key "
    "selects the tenant. Amounts are decimal strings in the account's currency. "
    "Errors are RFC 9457 `application/problem+json` with a machine-readable `reason`."
)


class RealtimeAPI(ProblemAPI):
    """The real-time API application (error bodies documented as problem+json)."""


def create_app(service: ChargingService) -> FastAPI:
    """The real-time API on ``service``; replace ``app.state.service`` to swap it at runtime."""
    app = RealtimeAPI(
        title="Charging engine real-time API", version=API_VERSION, description=_DESCRIPTION,
        openapi_url="/openapi.json", docs_url="/docs", redoc_url=None,
    )
    app.add_middleware(BodyGuard, limit=lambda path: MAX_BODY_BYTES)
    app.state.service = service
    problems.install(app)
    app.include_router(router)
    return app
