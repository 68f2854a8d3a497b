"""The real-time HTTP API that PBXs call around every call: authorize, answer, extend, end.

This is the hot path. Each request does an API-key lookup in the in-memory catalogue and one
``ChargingService`` call (one or two pipelined Redis commands); everything here is ``async`` so
nothing goes through a thread pool, and the Redis client is shared, never opened per request.
The key decides the tenant: no tenant appears in URLs or bodies, so a PBX cannot reach another
tenant's accounts by naming them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charging_engine.money import format_amount
from charging_engine.rating.numbers import NumberError, normalize
from charging_engine.realtime import problems
from charging_engine.realtime.problems import ApiProblem, Problem
from charging_engine.sessions.model import NotFound, Reason
from charging_engine.sessions.service import ChargingService

API_VERSION: Final = "1.0.0"
MAX_BODY_BYTES: Final = 16 * 1024  # the largest valid body is well under 1 KiB
MAX_EPOCH_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_BILLABLE_SECONDS: Final = 604_800  # 7 days, the pricing module's MAX_CALL_SECONDS
MAX_SEQUENCE: Final = 100_000

ACCOUNT_PATTERN: Final = r"^[A-Za-z0-9_.\-]+$"

AccountId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=ACCOUNT_PATTERN),
    Field(description="Account id within the key's tenant", examples=["1001"]),
]
CallId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$"),
    Field(description="The PBX's call id (printable ASCII, no spaces)", examples=["1712.42"]),
]
EpochMs = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS, description="Unix time in milliseconds")]
Amount = Annotated[str, Field(description="Decimal string in major units", examples=["12.50"])]


class _Body(BaseModel):
    """Request bodies: unknown fields and loose types (``"60"``, ``60.0``, ``true``) rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AuthorizeRequest(_Body):
    account: AccountId
    call_id: CallId
    destination: Annotated[
        str,
        StringConstraints(min_length=1, max_length=32),
        Field(
            description="Dialled number; normalised to E.164 digits", examples=["+44 20 7946 0000"]
        ),
    ]
    caller: Annotated[
        str | None,
        Field(max_length=64, description="Calling number, for the record only"),
    ] = None


class AnswerRequest(_Body):
    account: AccountId
    call_id: CallId
    answered_at_ms: EpochMs | None = None


class ExtendRequest(_Body):
    account: AccountId
    call_id: CallId
    sequence: Annotated[
        int,
        Field(ge=1, le=MAX_SEQUENCE, description="1, 2, ... per call; a retry repeats it"),
    ]


class EndRequest(_Body):
    account: AccountId
    call_id: CallId
    billable_seconds: Annotated[
        int | None,
        Field(ge=0, le=MAX_BILLABLE_SECONDS, description="The PBX's billed seconds, if known"),
    ] = None
    ended_at_ms: EpochMs | None = None


class DecisionOut(BaseModel):
    allowed: bool
    reason: Reason
    max_seconds: int
    max_ms: int
    reserved: Amount
    destination: str
    rate_prefix: str | None
    detail: str


class DecisionProblem(Problem):
    """A refused authorization that is also a problem (unknown account): both shapes at once."""

    allowed: bool = False
    max_seconds: int = 0
    max_ms: int = 0
    reserved: Amount = "0.00"
    destination: str = ""
    rate_prefix: str | None = None


class AnsweredOut(BaseModel):
    answered_at_ms: int
    max_seconds: int


class ExtensionOut(BaseModel):
    extended: bool
    reason: Reason
    max_seconds: int
    seconds_left: int | None


class ChargeOut(BaseModel):
    reason: Reason
    cost: Amount
    balance: Amount
    billed_seconds: int
    duration: int


class BalanceOut(BaseModel):
    account: str
    currency: str
    balance: Amount
    credit_limit: Amount
    reserved: Amount
    available: Amount
    status: str


class HealthOut(BaseModel):
    status: str


# --- authentication ------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <PBX API key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="PBX API key")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: the service it runs against and the key's tenant."""

    service: ChargingService
    tenant_id: str


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def authenticated(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Caller:
    """Resolve the API key to its tenant (401 otherwise); POST bodies must be JSON (415)."""
    service: ChargingService = request.app.state.service  # read per request: swappable
    secret = bearer.credentials if bearer is not None else api_key
    if not secret:
        raise ApiProblem(
            401,
            problems.UNAUTHORIZED,
            "an API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = service.catalog.pbx_key(secret)
    if key is None or service.catalog.tenant(key.tenant_id) is None:
        raise ApiProblem(
            401,
            problems.UNAUTHORIZED,
            "the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if request.method == "POST" and not _is_json(request.headers.get("content-type")):
        raise ApiProblem(
            415, problems.UNSUPPORTED_MEDIA_TYPE, "the body must be sent as application/json"
        )
    return Caller(service, key.tenant_id)


Authenticated = Annotated[Caller, Depends(authenticated)]


def _currency(caller: Caller, account: str) -> str | None:
    acc = caller.service.catalog.account(caller.tenant_id, account)
    return acc.currency if acc is not None else None


def _destination_or_empty(destination: str) -> str:
    try:
        return normalize(destination)
    except NumberError:
        return ""


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with a 413 problem, before reading them if declared.

    (FastAPI's own ``max_body_size`` answers a declared oversize body in text/plain, replacing
    any handler's response.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    bad = problems.problem(400, problems.INVALID_REQUEST, "bad Content-Length")
                    await bad(scope, receive, send)
                    return
                if int(value) > self.max_bytes:
                    await self._too_large()(scope, receive, send)
                    return
                break
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # chunked: counted as it arrives
                    raise ApiProblem(413, problems.PAYLOAD_TOO_LARGE, self._detail())
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"the body must not exceed {self.max_bytes} bytes"

    def _too_large(self) -> problems.ProblemResponse:
        return problems.problem(413, problems.PAYLOAD_TOO_LARGE, self._detail())


# --- application ---------------------------------------------------------------------------


class RealtimeAPI(FastAPI):
    """FastAPI whose OpenAPI lists error bodies under ``application/problem+json``."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            problems.use_problem_media_type(schema)
        return self.openapi_schema or {}


def create_app(service: ChargingService) -> FastAPI:
    """The real-time API on ``service``; replace ``app.state.service`` to swap it at runtime."""
    app = RealtimeAPI(
        title="Charging engine real-time API",
        version=API_VERSION,
        description=(
            "Authorize, answer, extend and end calls against prepaid balances. Authenticate "
            "with the PBX's API key (`Authorization: Bearer <key>` or `X-API-Key`); the key "
            "selects the tenant. Amounts are decimal strings in the account's currency. "
            "Errors are RFC 9457 `application/problem+json` with a machine-readable `reason`."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.state.service = service
    problems.install(app)

    common = (401, 413, 415, 422, 503)

    @app.post(
        "/v1/calls/authorize",
        response_model=DecisionOut,
        responses=problems.responses(404, *common, overrides={404: DecisionProblem}),
        summary="May this call go ahead, and for how long?",
    )
    async def authorize(body: AuthorizeRequest, caller: Authenticated) -> Any:  # or a 404
        """Reserve funds for the first slice of the call. A refusal is a 200 with
        ``allowed=false``; an unknown account is a 404 in the same shape."""
        try:
            d = await caller.service.authorize(
                caller.tenant_id, body.account, body.call_id, body.destination
            )
        except NotFound as exc:
            currency = _currency(caller, body.account)
            return problems.problem(
                404,
                exc.reason.value,
                str(exc),
                allowed=False,
                max_seconds=0,
                max_ms=0,
                reserved=format_amount(0, currency),
                destination=_destination_or_empty(body.destination),
                rate_prefix=None,
            )
        return DecisionOut(
            allowed=d.allowed,
            reason=d.reason,
            max_seconds=d.max_seconds,
            max_ms=d.max_seconds * 1000,
            reserved=format_amount(d.reserved, _currency(caller, body.account)),
            destination=d.destination,
            rate_prefix=d.rate_prefix,
            detail=d.detail,
        )

    @app.post(
        "/v1/calls/answer",
        response_model=AnsweredOut,
        responses=problems.responses(404, *common),
        summary="The call was answered",
    )
    async def answer(body: AnswerRequest, caller: Authenticated) -> AnsweredOut:
        """Start the clock (the first answer wins); defaults to the engine's time."""
        a = await caller.service.answer(
            caller.tenant_id, body.account, body.call_id, body.answered_at_ms
        )
        return AnsweredOut(answered_at_ms=a.answered_at_ms, max_seconds=a.max_seconds)

    @app.post(
        "/v1/calls/extend",
        response_model=ExtensionOut,
        responses=problems.responses(404, *common),
        summary="Reserve another slice for a long call",
    )
    async def extend(body: ExtendRequest, caller: Authenticated) -> ExtensionOut:
        """Idempotent per ``sequence``; when refused, ``max_seconds`` is the call's limit."""
        e = await caller.service.extend(caller.tenant_id, body.account, body.call_id, body.sequence)
        return ExtensionOut(
            extended=e.extended,
            reason=e.reason,
            max_seconds=e.max_seconds,
            seconds_left=e.seconds_left,
        )

    @app.post(
        "/v1/calls/end",
        response_model=ChargeOut,
        responses=problems.responses(404, *common),
        summary="The call ended: charge it (once)",
    )
    async def end(body: EndRequest, caller: Authenticated) -> ChargeOut:
        """Charge from ``billable_seconds`` or answer -> end time; a repeat says ``duplicate``
        with the original cost."""
        c = await caller.service.end(
            caller.tenant_id,
            body.account,
            body.call_id,
            billable_seconds=body.billable_seconds,
            ended_at_ms=body.ended_at_ms,
        )
        currency = _currency(caller, body.account)
        return ChargeOut(
            reason=c.reason,
            cost=format_amount(c.cost, currency),
            balance=format_amount(c.balance, currency),
            billed_seconds=c.billed_seconds,
            duration=c.duration,
        )

    @app.get(
        "/v1/accounts/{account}/balance",
        response_model=BalanceOut,
        responses=problems.responses(404, 401, 422, 503),
        summary="An account's balance",
    )
    async def balance(
        account: Annotated[str, Path(min_length=1, max_length=64, pattern=ACCOUNT_PATTERN)],
        caller: Authenticated,
    ) -> BalanceOut:
        """Balance, credit limit, funds held by live calls and what is left to spend."""
        b = await caller.service.balance(caller.tenant_id, account)
        cur = str(b["currency"])
        return BalanceOut(
            account=account,
            currency=cur,
            balance=format_amount(b["balance"], cur),
            credit_limit=format_amount(b["credit_limit"], cur),
            reserved=format_amount(b["reserved"], cur),
            available=format_amount(b["available"], cur),
            status=str(b["status"]),
        )

    @app.get("/health", response_model=HealthOut, summary="Liveness (no authentication)")
    async def health() -> HealthOut:
        return HealthOut(status="ok")

    return app
