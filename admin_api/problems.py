"""RFC 9457 problems for the admin API: the shared handlers (``charging_engine.web``), plus
admin reasons.

Every error is ``application/problem+json`` with a stable ``reason``. A resource of another
tenant is reported exactly like a missing one (404 ``not_found``): a key never learns whether
a foreign id exists. A role that may not do something in its own tenant gets 403.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import asyncpg
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from charging_engine.web.problems import (
    INVALID_REQUEST,
    NOT_FOUND,
    ApiProblem,
    FieldError,
    Problem,
    ProblemResponse,
    install_common,
    problem,
    responses_for,
    use_problem_media_type,
)

log = logging.getLogger("admin_api")

__all__ = [
    "ApiProblem",
    "DeckProblem",
    "ExtendedProblem",
    "FieldError",
    "LineError",
    "Problem",
    "ProblemResponse",
    "conflict",
    "forbidden",
    "install_admin",
    "invalid",
    "not_found",
    "problem",
    "responses",
    "use_problem_media_type",
]

UNAVAILABLE: Final = "unavailable"
INTERNAL: Final = "internal_error"
FORBIDDEN: Final = "forbidden"
DECK_REJECTED: Final = "deck_rejected"

_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Bad request",
    401: "Missing, unknown, expired or revoked API key",
    403: "The key's role may not do this",
    404: "No such resource in the key's tenant (another tenant's ids answer the same)",
    409: "Conflicts with the current state (see `reason`)",
    413: "Request body too large",
    415: "Wrong Content-Type",
    422: "Invalid request (see `errors`)",
    503: "Redis or PostgreSQL cannot answer right now; retry",
}


class LineError(BaseModel):
    """One bad line of an uploaded CSV file."""

    line: int
    message: str


class DeckProblem(Problem):
    """A rejected rate deck: every bad line with its number."""

    lines: list[LineError] = Field(default_factory=list)


def responses(
    *statuses: int, overrides: Mapping[int, type[BaseModel]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route; the app's ``openapi`` moves them to the problem media type."""
    return responses_for(_DESCRIPTIONS, statuses, overrides)


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, NOT_FOUND, f"{what} not found")


def forbidden(detail: str) -> ApiProblem:
    return ApiProblem(403, FORBIDDEN, detail)


def conflict(reason: str, detail: str) -> ApiProblem:
    return ApiProblem(409, reason, detail)


def invalid(detail: str) -> ApiProblem:
    return ApiProblem(422, INVALID_REQUEST, detail)


class ExtendedProblem(ApiProblem):
    """An ``ApiProblem`` with RFC 9457 extension members (``available``, ``lines`` ...)."""

    def __init__(self, status: int, reason: str, detail: str, **extra: Any) -> None:
        super().__init__(status, reason, detail)
        self.extra = extra


async def _extended_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ExtendedProblem)
    return problem(exc.status, exc.reason, exc.detail, headers=exc.headers, **exc.extra)


async def _unavailable_handler(request: Request, exc: Exception) -> ProblemResponse:
    log.warning("admin API: store unavailable on %s %s: %r", request.method, request.url.path, exc)
    return problem(503, UNAVAILABLE, "Redis or PostgreSQL cannot answer right now; retry")


async def _data_handler(request: Request, exc: Exception) -> ProblemResponse:
    """A value PostgreSQL refuses (a text with NUL, a number out of range): the input's fault."""
    return problem(422, INVALID_REQUEST, f"invalid value: {exc}")


async def _internal_handler(request: Request, exc: Exception) -> ProblemResponse:
    """A bug: logged with its traceback, answered as a problem (the server re-raises it)."""
    log.error("admin API: unexpected error on %s %s", request.method, request.url.path,
              exc_info=exc)
    return problem(500, INTERNAL, "unexpected error; it has been logged")


def install_admin(app: FastAPI) -> None:
    """The shared handlers, plus extension members, outages as 503 and bugs as 500."""
    install_common(app)
    app.add_exception_handler(ExtendedProblem, _extended_handler)
    for exc_type in (
        RedisError, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
        asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.TooManyConnectionsError,
    ):
        app.add_exception_handler(exc_type, _unavailable_handler)
    app.add_exception_handler(asyncpg.DataError, _data_handler)
    app.add_exception_handler(Exception, _internal_handler)
