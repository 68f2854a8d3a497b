"""Liveness (the process answers) and readiness (Redis and Postgres answer, in time)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Final, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from admin_api.context import Ctx
from admin_api.schemas import Out

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S: Final = 1.0
log = logging.getLogger("admin_api")


class HealthOut(Out):
    status: Literal["ok"]


class ReadyOut(Out):
    status: Literal["ready", "not_ready"]
    redis: str
    postgres: str


@router.get("/health", response_model=HealthOut, summary="Liveness (no authentication)")
async def health() -> HealthOut:
    return HealthOut(status="ok")


async def _check(probe: Awaitable[object]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe
    except Exception as exc:  # any failure means "not ready", reported by name
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get(
    "/ready", response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Redis or Postgres does not answer"}},
    summary="Readiness: Redis and PostgreSQL answer within 1 s (no authentication)",
)
async def ready(ctx: Ctx) -> Response:
    redis_state, pg_state = await asyncio.gather(
        _check(ctx.engine.redis.ping()), _check(ctx.pool.fetchval("SELECT 1"))
    )
    ok = redis_state == "ok" and pg_state == "ok"
    body = ReadyOut(status="ready" if ok else "not_ready", redis=redis_state, postgres=pg_state)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics", response_class=Response,
    responses={200: {"description": "Prometheus text format",
                     "content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics (no authentication: expose on a private network only)",
)
async def metrics(ctx: Ctx) -> Response:
    try:
        await ctx.metrics.refresh(ctx.engine, ctx.hub.subscribers)
    except Exception as exc:  # a scrape still answers with what it has
        log.warning("metrics: Redis gauges not refreshed (%r)", exc)
    return Response(ctx.metrics.exposition(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
