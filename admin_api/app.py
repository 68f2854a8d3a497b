"""The admin API (issue 4): tenants, keys, accounts, rates, money operations, alerts."""

from __future__ import annotations

from fastapi import FastAPI

from charging_engine.bootstrap import Engine


def create_admin_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="Charging engine admin API", version="0.1.0")
    app.state.engine = engine

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
