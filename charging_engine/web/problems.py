"""RFC 9457 problem details shared by every HTTP front end (the real-time API, the admin API,
and the back office's): one error shape, one set of handlers, one OpenAPI fix-up.

Clients branch on ``reason`` (machine-readable, stable) and show ``detail`` (for people). No
error leaves as a bare 500 or as HTML. Each front end adds its own reasons and its own answer
to an outage (``engine_unavailable`` for PBXs, ``unavailable`` for the admin API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from charging_engine.sessions.model import InvalidRequest, NotFound

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:charging-engine:problem:"

UNAUTHORIZED: Final = "unauthorized"
INVALID_REQUEST: Final = "invalid_request"
NOT_FOUND: Final = "not_found"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
UNSUPPORTED_MEDIA_TYPE: Final = "unsupported_media_type"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
ENGINE_UNAVAILABLE: Final = "engine_unavailable"

_TITLES: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    503: "Service Unavailable",
}
_REASONS_BY_STATUS: Final[dict[int, str]] = {
    401: UNAUTHORIZED,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    413: PAYLOAD_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    422: INVALID_REQUEST,
    503: ENGINE_UNAVAILABLE,
}
_MAX_LISTED_ERRORS: Final = 20  # a hostile body must not buy a huge error response


class FieldError(BaseModel):
    """One rejected input: where it is and what is wrong with it."""

    field: str
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, plus the engine's machine-readable ``reason``."""

    type: str
    title: str
    status: int
    detail: str
    reason: str
    errors: list[FieldError] | None = None


class ProblemResponse(JSONResponse):
    """JSON rendered with the problem media type, so clients can tell errors from results."""

    media_type = PROBLEM_MEDIA_TYPE


class ApiProblem(Exception):
    """Raised by routes and dependencies to answer with a problem (401, 415, ...)."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = dict(headers) if headers else None


def problem_body(status: int, reason: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The problem document; ``extra`` adds members (RFC 9457 extension members)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + reason,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "reason": reason,
    }
    body.update(extra)
    return body


def problem(
    status: int,
    reason: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    return ProblemResponse(
        problem_body(status, reason, detail, **extra), status_code=status, headers=headers
    )


# --- validation errors -------------------------------------------------------------------------


def _field_name(loc: Sequence[Any]) -> str:
    """``("body", "sequence")`` -> ``sequence``; ``("path", "account")`` -> ``account``."""
    rest = [str(p) for p in loc[1:]]
    return ".".join(rest) if rest else str(loc[0]) if loc else "request"


def _message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "json_invalid":
        ctx = err.get("ctx") or {}
        return f"malformed JSON ({ctx.get('error', 'decode error')})"
    if kind == "missing" and tuple(loc) == ("body",):
        return "a JSON object body is required"
    if kind in ("model_attributes_type", "dict_type", "model_type") and tuple(loc) == ("body",):
        return "the body must be a JSON object"
    return str(err.get("msg", "invalid value"))


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic/FastAPI errors as ``FieldError``s, without echoing the (maybe huge) input."""
    out: list[FieldError] = []
    for err in errors:
        if len(out) >= _MAX_LISTED_ERRORS:
            break
        loc = tuple(err.get("loc", ()))
        field = "body" if err.get("type") == "json_invalid" else _field_name(loc)
        out.append(FieldError(field=field, message=_message(err), type=str(err.get("type", ""))))
    return out


def validation_detail(errors: Sequence[FieldError]) -> str:
    """One line naming every bad field, e.g. ``sequence: Input should be a valid integer``."""
    parts = [e.message if e.field == "body" else f"{e.field}: {e.message}" for e in errors]
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


# --- handlers ----------------------------------------------------------------------------------
# Handlers take ``Exception`` (Starlette's handler type) and are async so that Starlette does
# not push them to a thread pool.


async def api_problem_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ApiProblem)
    return problem(exc.status, exc.reason, exc.detail, headers=exc.headers)


async def not_found_handler(request: Request, exc: Exception) -> ProblemResponse:
    """The charging service's unknown account or call."""
    assert isinstance(exc, NotFound)
    return problem(404, exc.reason.value, str(exc))


async def invalid_request_handler(request: Request, exc: Exception) -> ProblemResponse:
    return problem(422, INVALID_REQUEST, str(exc) or "invalid request")


async def validation_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem(
        422,
        INVALID_REQUEST,
        validation_detail(errors),
        errors=[e.model_dump() for e in errors],
    )


async def http_exception_handler(request: Request, exc: Exception) -> ProblemResponse:
    """Routing errors (404, 405), body too large (413) and unparseable bodies (400)."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if isinstance(exc.__cause__, ApiProblem):  # raised while FastAPI read the body
        return await api_problem_handler(request, exc.__cause__)
    if status == 400 and isinstance(exc.__cause__, ValueError):
        # FastAPI's "error parsing the body": JSON that json.loads refuses beyond
        # JSONDecodeError (an integer of more than 4300 digits). Same answer as bad JSON.
        return problem(422, INVALID_REQUEST, "invalid request: malformed JSON body")
    if status == 404:
        detail = f"no route {request.url.path}"
    elif status == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    else:
        detail = str(exc.detail)
    reason = _REASONS_BY_STATUS.get(status, INVALID_REQUEST if status < 500 else ENGINE_UNAVAILABLE)
    return problem(status, reason, detail, headers=exc.headers)


def install_common(app: FastAPI) -> None:
    """The handlers every front end shares: raised problems, validation and routing errors,
    and the charging service's own refusals (unknown account or call, invalid request)."""
    app.add_exception_handler(ApiProblem, api_problem_handler)
    app.add_exception_handler(NotFound, not_found_handler)
    app.add_exception_handler(InvalidRequest, invalid_request_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)


# --- OpenAPI -----------------------------------------------------------------------------------


def responses_for(
    descriptions: Mapping[int, str], statuses: Sequence[int],
    overrides: Mapping[int, type[BaseModel]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the problem model for each status, described in the front
    end's own words (moved to the problem media type by ``ProblemAPI.openapi``)."""
    models = overrides or {}
    return {
        s: {"model": models.get(s, Problem), "description": descriptions.get(s, "Error")}
        for s in statuses
    }


def use_problem_media_type(schema: dict[str, Any]) -> None:
    """Move error response bodies from ``application/json`` to the problem media type.

    FastAPI documents every ``responses=`` model under the route's media type (``text/html``
    for a page, ``application/json`` otherwise); errors are actually sent as
    ``application/problem+json``.
    """
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if not str(status).startswith(("4", "5")) or not content:
                    continue
                if "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
                elif len(content) == 1 and PROBLEM_MEDIA_TYPE not in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop(next(iter(content)))


class ProblemAPI(FastAPI):
    """FastAPI whose OpenAPI lists error bodies under ``application/problem+json``."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            use_problem_media_type(schema)
        return self.openapi_schema or {}
