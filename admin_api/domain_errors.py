"""The engine's account and money refusals as RFC 9457 problems: the one place that maps them.

The use cases raise ``charging_engine.accounts.errors``; this gives each its HTTP status, keeps
its ``reason`` and ``detail``, and renders amounts (int micros) as decimal strings in the
account's currency, as extension members (``available``; ``balance`` and ``reserved``).

Billing's refusals (``billing.errors``) are mapped here too: invalid input 422, not found 404
(another tenant's ids included), conflicts 409; the ``reason`` is the error's own where it
names one, else the generic one of its status.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, Request

from admin_api.problems import ProblemResponse, problem
from billing.errors import (
    BillingConflict,
    BillingError,
    BillingNotFound,
    InvalidBillingInput,
    InvoiceStateError,
)
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


_BILLING: Final[tuple[tuple[type[BillingError], int, str], ...]] = (
    (InvalidBillingInput, 422, "invalid_request"), (BillingNotFound, 404, "not_found"),
    (InvoiceStateError, 409, "invoice_state"), (BillingConflict, 409, "conflict"),
)


def billing_status(exc: BillingError) -> tuple[int, str] | None:
    """(HTTP status, reason) of a billing refusal; None for an unmapped kind (a bug)."""
    for kind, status, reason in _BILLING:
        if isinstance(exc, kind):
            own = getattr(exc, "reason", None)
            return status, own if isinstance(own, str) else reason
    return None


async def _billing_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, BillingError)
    mapped = billing_status(exc)
    assert mapped is not None, "only mapped kinds are registered"
    return problem(mapped[0], mapped[1], str(exc))


def install_domain_errors(app: FastAPI) -> None:
    app.add_exception_handler(AccountError, _handler)
    for kind in (InvalidBillingInput, BillingNotFound, BillingConflict):
        app.add_exception_handler(kind, _billing_handler)  # other kinds: a bug, logged as 500
