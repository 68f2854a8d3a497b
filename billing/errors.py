"""Billing's domain errors; the admin API maps each to one problem+json status."""

from __future__ import annotations


class BillingError(Exception):
    """Base of every billing refusal."""


class InvalidBillingInput(BillingError, ValueError):
    """A request that can never succeed as given (422)."""


class BillingNotFound(BillingError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} not found")
        self.what, self.ident = what, ident


class InvoiceNotFound(BillingNotFound):
    def __init__(self, invoice_id: str) -> None:
        super().__init__("invoice", invoice_id)


class BillingConflict(BillingError):
    """The request conflicts with the current state (409)."""


class InvoiceStateError(BillingConflict):
    def __init__(self, invoice_id: str, status: str, action: str) -> None:
        super().__init__(f"invoice {invoice_id} is {status}: it cannot be {_past(action)}")
        self.invoice_id, self.status, self.action = invoice_id, status, action


def _past(action: str) -> str:
    return {"finalize": "finalized", "void": "voided", "correct": "corrected",
            "refresh": "refreshed"}.get(action, action)


# Refusals of the billing catalogue (plans, taxes, discounts, DIDs, one-time charges): each
# names its ``reason``, the problem's machine-readable string (the base classes answer with
# the generic one of their status).


class AlreadyExists(BillingConflict):
    reason = "already_exists"

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} already exists")
        self.what, self.ident = what, ident


class InUse(BillingConflict):
    """Deleting (or changing) something other billing rows still rely on."""

    reason = "in_use"


class AlreadyBilled(BillingConflict):
    """An invoice took it: it is part of a document now and cannot change."""

    reason = "already_billed"


class DidStateError(BillingConflict):
    """A DID assignment step out of order (assign an assigned DID, release a free one)."""

    reason = "did_state"


class IdempotencyKeyReused(BillingConflict):
    reason = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used for a different request")
