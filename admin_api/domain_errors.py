"""The engine's account and money refusals as RFC 9457 problems: the one place that maps them.

The use cases raise ``charging_engine.accounts.errors``; this gives each its HTTP status, keeps
its ``reason`` and ``detail``, and renders amounts (int micros) as decimal strings in the
account's currency, as extension members (``available``; ``balance`` and ``reserved``).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, Request

from admin_api.problems import ProblemResponse, problem
from charging_engine.accounts.errors import (
    AccountError,
    BalanceNotZero,
    Conflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
)
from charging_engine.money import format_amount

_STATUS: Final[tuple[tuple[type[AccountError], int], ...]] = (
    (NotFound, 404), (InvalidInput, 422), (Conflict, 409),
)


def status_of(exc: AccountError) -> int:
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def extension_members(exc: AccountError) -> dict[str, Any]:
    if isinstance(exc, InsufficientFunds):
        return {"available": format_amount(exc.available, exc.currency)}
    if isinstance(exc, BalanceNotZero):
        return {"balance": format_amount(exc.balance, exc.currency),
                "reserved": format_amount(exc.reserved, exc.currency)}
    return {}


async def _handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, AccountError)
    return problem(status_of(exc), exc.reason, exc.detail, **extension_members(exc))


def install_domain_errors(app: FastAPI) -> None:
    app.add_exception_handler(AccountError, _handler)
