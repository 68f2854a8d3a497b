"""The real-time API's problems: the shared problem+json mechanics (``charging_engine.web``)
plus what a PBX needs to hear. An engine that cannot answer says ``engine_unavailable`` (503)
so the connector applies its tenant's failure policy instead of guessing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from charging_engine.web.problems import (
    ENGINE_UNAVAILABLE,
    INVALID_REQUEST,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    PROBLEM_MEDIA_TYPE,
    UNAUTHORIZED,
    UNSUPPORTED_MEDIA_TYPE,
    ApiProblem,
    FieldError,
    Problem,
    ProblemResponse,
    install_common,
    problem,
    responses_for,
    use_problem_media_type,
)

__all__ = [
    "ENGINE_UNAVAILABLE",
    "INVALID_REQUEST",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "PROBLEM_MEDIA_TYPE",
    "UNAUTHORIZED",
    "UNSUPPORTED_MEDIA_TYPE",
    "ApiProblem",
    "FieldError",
    "Problem",
    "ProblemResponse",
    "install",
    "problem",
    "responses",
    "use_problem_media_type",
]

log = logging.getLogger(__name__)

_DESCRIPTIONS: Final[dict[int, str]] = {
    401: "Missing or unknown API key",
    404: "Unknown account or call (see `reason`)",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Body is not `application/json`",
    422: "Invalid request: malformed JSON, wrong types, out-of-range values, bad numbers",
    503: "The engine cannot answer (Redis unavailable); apply the failure policy",
}


def responses(
    *statuses: int, overrides: Mapping[int, type[BaseModel]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a real-time route."""
    return responses_for(_DESCRIPTIONS, statuses, overrides)


async def unavailable_handler(request: Request, exc: Exception) -> ProblemResponse:
    """Redis down, slow or failing over: the engine cannot decide, the connector must."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        log.warning("engine unavailable on %s %s: %r", request.method, request.url.path, exc)
    else:
        log.error("redis error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(503, ENGINE_UNAVAILABLE, "the charging engine cannot answer right now")


async def unexpected_handler(request: Request, exc: Exception) -> ProblemResponse:
    """Last resort (Starlette re-raises afterwards, so the server still logs the traceback)."""
    return problem(503, ENGINE_UNAVAILABLE, "the charging engine cannot answer right now")


def install(app: FastAPI) -> None:
    """Register every problem handler on ``app``."""
    install_common(app)
    # Infrastructure failures are expected in production: handled (and logged) here, inside
    # the exception middleware, instead of travelling up as an unhandled error.
    app.add_exception_handler(RedisError, unavailable_handler)
    app.add_exception_handler(OSError, unavailable_handler)  # ConnectionError, TimeoutError
    app.add_exception_handler(Exception, unexpected_handler)
