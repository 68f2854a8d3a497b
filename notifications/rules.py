"""Which messages a billing event becomes (pure): the template event, the account, the data the
template gets (every variable the catalogue declares for it; ``None`` where one does not apply),
and the channels. Nothing here knows addresses or sends anything.

Amounts stay integers as billing sent them: minor units, or the engine's micros for the
``*_micros`` variables; the templates format them per locale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

__all__ = ["RULES", "Intent", "intents", "status_event"]

SMS_AND_EMAIL: Final = ("sms", "email")
# How much service each status bars: a change to a stricter barred status is a suspension,
# one from a barred status to active a restoration (inactive and terminated have their own
# messages, or none).
_BARS: Final = {"active": 0, "outgoing_suspended": 1, "suspended": 2}
Rule = Callable[[Mapping[str, Any], datetime], list["Intent"]]


@dataclass(frozen=True, slots=True)
class Intent:
    event: str  # the template event (notifications.templates.catalog)
    account_id: str
    context: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = SMS_AND_EMAIL
    alternate_too: bool = False  # SMS to the alternate number whatever the tenant's setting


def _day(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def _invoice(d: Mapping[str, Any], at: datetime) -> list[Intent]:
    inv = d.get("invoice") or {}
    if inv.get("kind") != "invoice" or int(inv.get("amount_due") or 0) <= 0:
        return []  # a receipt, or nothing to pay: no "invoice ready" message
    return [Intent("invoice.ready", str(inv["account_id"]), {
        "invoice_number": inv.get("number"), "amount_due": int(inv["amount_due"]),
        "due_date": _day(inv.get("due_on")), "collection_date": None,
        "invoice_url": None})]  # fmt: skip


def _receipt(d: Mapping[str, Any], at: datetime) -> list[Intent]:
    inv = d.get("invoice") or {}
    if str(inv.get("source_ref") or "").startswith("pay:"):
        return []  # a recorded payment's top-up: its payment (or collection) event tells it
    return [Intent("topup.confirmed", str(inv["account_id"]), {
        "amount": int(inv.get("total") or 0), "balance_micros": None})]  # fmt: skip


def _payment(d: Mapping[str, Any], at: datetime) -> list[Intent]:
    p = d.get("payment") or {}
    if not p.get("account_id") or str(p.get("collected_by") or "").startswith("agent:"):
        return []  # an agent's collection has its own receipt (collection.recorded)
    if p.get("topped_up"):
        return [Intent("topup.confirmed", str(p["account_id"]), {
            "amount": int(p.get("amount") or 0), "balance_micros": None})]  # fmt: skip
    invoices = [a.get("invoice_id") for a in p.get("allocations") or []]
    return [Intent("payment.succeeded", str(p["account_id"]), {
        "amount": int(p.get("amount") or 0), "paid_on": _day(p.get("received_on")),
        "invoice_number": invoices[0] if len(invoices) == 1 else None})]  # fmt: skip


def _step(d: Mapping[str, Any], at: datetime) -> list[Intent]:
    if _BARS.get(str(d.get("status")), 0) > 0:
        return []  # a step that suspends is told by the status change (account.suspended)
    oldest = _day(d.get("oldest_due_on"))
    return [Intent("dunning.step", str(d["account_id"]), {
        "step_name": d.get("step"), "amount_overdue": int(d.get("overdue_amount") or 0),
        "days_overdue": (at.date() - oldest).days if oldest else None,
        "pay_url": None})]  # fmt: skip


def _expiring(d: Mapping[str, Any], at: datetime) -> list[Intent]:
    return [Intent("balance.expiring", str(d["account_id"]), {
        "expiring_micros": int(d.get("amount") or 0), "expiry_date": _day(d.get("valid_until")),
        "topup_url": None})]  # fmt: skip


def _inactivation(d: Mapping[str, Any], at: datetime) -> list[Intent]:
    return [Intent("account.inactivation_pending", str(d["account_id"]), {
        "inactivation_date": _day(d.get("due_on")), "topup_url": None})]  # fmt: skip


def _collection(d: Mapping[str, Any], at: datetime) -> list[Intent]:
    c = d.get("collection") or {}
    return [Intent("collection.receipt", str(c["account_id"]), {
        "amount": int(c["amount"]), "method": c.get("method"), "agent_name": c.get("agent_name"),
        "receipt_number": c.get("receipt_number"), "received_on": _day(c.get("received_on"))},
        channels=("sms",), alternate_too=True)]  # fmt: skip


RULES: Final[dict[str, Rule]] = {
    "collection.recorded": _collection,
    "invoice.finalized": _invoice,
    "receipt.issued": _receipt,
    "payment.recorded": _payment,
    "dunning.step_entered": _step,
    "balance.expiring": _expiring,
    "account.inactivation_pending": _inactivation,
}


def intents(event_type: str, data: Mapping[str, Any], at: datetime) -> list[Intent]:
    """The messages ``event_type`` (raised at ``at``) becomes; none for events nobody is told
    about, or one missing what its rule needs."""
    rule = RULES.get(event_type)
    if rule is None:
        return []
    try:
        return rule(data, at)
    except (KeyError, TypeError, ValueError):
        return []


def status_event(before: str | None, after: str) -> str | None:
    """The template event of an account status change (``account_status_history``), if any:
    ``account.suspended`` when service gets more barred, ``account.restored`` when a barred
    or inactive account is active again."""
    if after == "active":
        return "account.restored" if before not in (None, "active", "terminated") else None
    was = before or "active"
    if after in _BARS and was in _BARS and _BARS[after] > _BARS[was]:
        return "account.suspended"
    return None
