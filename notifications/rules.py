"""Which messages a billing event becomes (pure): the template event, the account, the data the
template gets, and the channels. Nothing here knows addresses or sends anything.

Amounts stay integers as billing sent them: minor units (``amount`` with ``currency``) or the
engine's micros (``amount_micros``); the templates format them per locale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["RULES", "Intent", "intents"]

SMS_AND_EMAIL: Final = ("sms", "email")


@dataclass(frozen=True, slots=True)
class Intent:
    event: str  # the template event (notifications.templates.catalog)
    account_id: str
    context: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = SMS_AND_EMAIL
    alternate_too: bool = False  # SMS to the alternate number whatever the tenant's setting


def _invoice(d: Mapping[str, Any]) -> list[Intent]:
    inv = d.get("invoice") or {}
    if inv.get("kind") != "invoice" or int(inv.get("amount_due") or 0) <= 0:
        return []  # a receipt, or nothing to pay: no "invoice ready" message
    return [Intent("invoice.ready", str(inv["account_id"]), {
        "invoice_number": inv.get("number"), "amount": int(inv["amount_due"]),
        "currency": inv.get("currency"), "due_date": inv.get("due_on")})]  # fmt: skip


def _receipt(d: Mapping[str, Any]) -> list[Intent]:
    inv = d.get("invoice") or {}
    return [Intent("topup.confirmed", str(inv["account_id"]), {
        "receipt_number": inv.get("number"), "amount": int(inv.get("total") or 0),
        "currency": inv.get("currency")})]  # fmt: skip


def _payment(d: Mapping[str, Any]) -> list[Intent]:
    p = d.get("payment") or {}
    if not p.get("account_id"):
        return []
    return [Intent("payment.succeeded", str(p["account_id"]), {
        "amount": int(p.get("amount") or 0), "currency": p.get("currency"),
        "method": p.get("method"), "reference": p.get("reference") or ""})]  # fmt: skip


def _step(d: Mapping[str, Any]) -> list[Intent]:
    return [Intent("dunning.step", str(d["account_id"]), {
        "step": d.get("step"), "amount": int(d.get("overdue_amount") or 0),
        "oldest_due_date": d.get("oldest_due_on")})]  # fmt: skip


def _cleared(d: Mapping[str, Any]) -> list[Intent]:
    return [Intent("account.restored", str(d["account_id"]), {"step": d.get("step")})]


def _expiring(d: Mapping[str, Any]) -> list[Intent]:
    return [Intent("balance.expiring", str(d["account_id"]), {
        "amount_micros": int(d.get("amount") or 0), "expiry_date": d.get("valid_until")})]


def _inactivation(d: Mapping[str, Any]) -> list[Intent]:
    return [Intent("account.inactivation_pending", str(d["account_id"]), {
        "inactivation_date": d.get("due_on")})]  # fmt: skip


RULES: Final[dict[str, Callable[[Mapping[str, Any]], list[Intent]]]] = {
    "invoice.finalized": _invoice,
    "receipt.issued": _receipt,
    "payment.recorded": _payment,
    "dunning.step_entered": _step,
    "dunning.cleared": _cleared,
    "balance.expiring": _expiring,
    "account.inactivation_pending": _inactivation,
}


def intents(event_type: str, data: Mapping[str, Any]) -> list[Intent]:
    """The messages ``event_type`` becomes (none for events nobody is told about)."""
    rule = RULES.get(event_type)
    if rule is None:
        return []
    try:
        return rule(data)
    except (KeyError, TypeError, ValueError):  # an event missing what its rule needs: none
        return []
