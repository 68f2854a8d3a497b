"""The real-time routes: authorize, answer, extend, end, balance, health.

This is the hot path. Each request does an API-key lookup in the in-memory catalogue and one
``ChargingService`` call (one or two pipelined Redis commands); everything here is ``async`` so
nothing goes through a thread pool, and the Redis client is shared, never opened per request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from charging_engine.money import format_amount
from charging_engine.rating.numbers import NumberError, normalize
from charging_engine.realtime import problems
from charging_engine.realtime.auth import Authenticated, currency_of
from charging_engine.realtime.schemas import (
    ACCOUNT_PATTERN,
    AnsweredOut,
    AnswerRequest,
    AuthorizeRequest,
    BalanceOut,
    ChargeOut,
    DecisionOut,
    DecisionProblem,
    EndRequest,
    ExtendRequest,
    ExtensionOut,
    HealthOut,
)
from charging_engine.sessions.model import NotFound

router = APIRouter()


def _destination_or_empty(destination: str) -> str:
    try:
        return normalize(destination)
    except NumberError:
        return ""


common = (401, 413, 415, 422, 503)

@router.post(
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
        currency = currency_of(caller, body.account)
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
        reserved=format_amount(d.reserved, currency_of(caller, body.account)),
        destination=d.destination,
        rate_prefix=d.rate_prefix,
        detail=d.detail,
    )

@router.post(
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

@router.post(
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

@router.post(
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
    currency = currency_of(caller, body.account)
    return ChargeOut(
        reason=c.reason,
        cost=format_amount(c.cost, currency),
        balance=format_amount(c.balance, currency),
        billed_seconds=c.billed_seconds,
        duration=c.duration,
    )

@router.get(
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

@router.get("/health", response_model=HealthOut, summary="Liveness (no authentication)")
async def health() -> HealthOut:
    return HealthOut(status="ok")
