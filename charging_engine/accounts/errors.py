"""Why an account or money use case refused: one small tree, each error with a stable ``reason``.

Callers branch on the class (or on ``reason``, the machine-readable string the admin API
answers as its problem ``reason``) and show ``detail`` to people. Amounts are int micros in the
account's ``currency``; formatting them is the caller's business.

    AccountError                     reason, detail
    ├── NotFound                     not_found                (what: "account 'a1'", ...)
    ├── InvalidInput                 invalid_request
    └── Conflict                     the current state refuses the request
        ├── AccountClosed            account_closed
        ├── AccountExists            account_exists
        ├── BalanceNotZero           balance_not_zero         balance, reserved, currency
        ├── NoBalanceRecord          no_balance_record
        ├── InsufficientFunds        insufficient_funds       available, currency
        └── IdempotencyConflict      a key that cannot be used for this request
            ├── IdempotencyKeyReused     idempotency_key_reused
            └── IdempotencyKeyExpired    idempotency_key_expired
"""

from __future__ import annotations

from typing import ClassVar


class AccountError(Exception):
    """Base of every refusal; never raised itself."""

    reason: ClassVar[str] = "account_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(AccountError):
    """No such tenant or account (or not one the caller's tenant holds)."""

    reason = "not_found"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what

    @classmethod
    def account(cls, account_id: str) -> NotFound:
        return cls(f"account {account_id!r}")


class InvalidInput(AccountError):
    """A value the use case cannot accept, whatever the state."""

    reason = "invalid_request"


class Conflict(AccountError):
    """The request is well formed but the current state refuses it."""


class AccountClosed(Conflict):
    reason = "account_closed"

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id!r} is closed")
        self.account_id = account_id


class AccountExists(Conflict):
    """A create whose id is taken by a different account (an identical create is a retry)."""

    reason = "account_exists"

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id!r} already exists")
        self.account_id = account_id


class BalanceNotZero(Conflict):
    """Closing needs the balance and the calls' reservations at zero."""

    reason = "balance_not_zero"

    def __init__(self, balance: int, reserved: int, currency: str) -> None:
        super().__init__(
            "withdraw or adjust the balance to zero, and let calls end, before closing"
        )
        self.balance = balance
        self.reserved = reserved
        self.currency = currency


class NoBalanceRecord(Conflict):
    """Redis has no balance for an account Postgres knows (lost); saving it repairs it."""

    reason = "no_balance_record"

    def __init__(self) -> None:
        super().__init__("the account has no balance record in Redis; save it again to repair")


class InsufficientFunds(Conflict):
    """A debit beyond what the account may spend; ``available`` is what it may."""

    reason = "insufficient_funds"

    def __init__(self, available: int, currency: str) -> None:
        super().__init__("the withdrawal exceeds the available funds")
        self.available = available
        self.currency = currency


class IdempotencyConflict(Conflict):
    """The idempotency key cannot be used for this request."""


class IdempotencyKeyReused(IdempotencyConflict):
    reason = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was used for a different request; use a new key"
        )


class IdempotencyKeyExpired(IdempotencyConflict):
    """Unfinished for longer than Redis remembers keys: a retry could credit twice."""

    reason = "idempotency_key_expired"

    def __init__(self) -> None:
        super().__init__(
            "this operation was left unfinished too long ago to retry safely;"
            " check the ledger and use a new key"
        )
