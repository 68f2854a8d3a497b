"""Input rules shared by the account and money use cases, raising ``InvalidInput``.

The admin API checks the same rules in its request models (for OpenAPI and field errors);
these make the use cases safe for callers without such models (billing, CLI tasks).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, TypeVar

from charging_engine import ids
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.errors import InvalidInput
from charging_engine.accounts.record import AccountKind
from charging_engine.money import MoneyError, currency_exponent

E = TypeVar("E", bound=StrEnum)

MAX_THRESHOLDS: Final = 5  # low-balance alert lines per account


def check_id(kind: str, value: str) -> str:
    try:
        return ids.check_id(kind, value)
    except ids.InvalidId as exc:
        raise InvalidInput(str(exc)) from None


def check_currency(currency: str) -> str:
    try:
        currency_exponent(currency)
    except MoneyError as exc:
        raise InvalidInput(str(exc)) from None
    return currency


def check_non_negative(**amounts: int | None) -> None:
    for name, value in amounts.items():
        if value is not None and value < 0:
            raise InvalidInput(f"{name} must not be negative")


def check_thresholds(lines: tuple[int, ...]) -> None:
    if len(lines) > MAX_THRESHOLDS:
        raise InvalidInput(f"at most {MAX_THRESHOLDS} low-balance lines")


def _member(enum: type[E], what: str, value: str) -> E:
    try:
        return enum(value)
    except ValueError:
        known = [m.value for m in enum]
        raise InvalidInput(f"{what} {value!r} is not one of {known}") from None


def check_status(value: str) -> AccountStatus:
    return _member(AccountStatus, "status", value)


def check_kind(value: str) -> AccountKind:
    return _member(AccountKind, "kind", value)
