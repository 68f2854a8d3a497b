"""Corrections of a draft in its review window: add, change or remove charge lines (each with a
reason), or refresh taxes and discounts from the current catalogue; the draft is recomposed by
the same pure core as the run. Finalized invoices refuse all of it (409), and the database
trigger refuses it again for anything that bypasses this module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from billing import inputs_codec, run_inputs
from billing.composition import (
    Charge,
    InvoiceInputError,
    InvoiceInputs,
    LineKind,
    compose,
)
from billing.discounts import active
from billing.errors import InvalidBillingInput, InvoiceStateError
from billing.invoice_store import replace_content
from billing.lifecycle import audit, lock_invoice
from charging_engine.audit import Actor

ADDABLE = frozenset({LineKind.ONE_TIME, LineKind.RECURRING, LineKind.USAGE})


@dataclass(frozen=True, slots=True)
class LineChange:
    """``add`` a line, ``change`` or ``remove`` the charge line at ``position``."""

    op: Literal["add", "change", "remove"]
    position: int | None = None
    description: str | None = None
    amount: int | None = None  # minor units
    quantity: Decimal | None = None
    tax_codes: tuple[str, ...] | None = None
    kind: LineKind = LineKind.ONE_TIME


def _apply(charges: list[Charge], ch: LineChange, default_codes: tuple[str, ...]) -> int:
    """Apply one change; -> the position it touched (0 for a removal)."""
    if ch.op == "add":
        if ch.description is None or not ch.description.strip() or ch.amount is None:
            raise InvalidBillingInput("an added line needs a description and an amount")
        if ch.kind not in ADDABLE:
            raise InvalidBillingInput(f"a line of kind {ch.kind} cannot be added by hand")
        charges.append(Charge(
            kind=ch.kind, description=ch.description, amount=ch.amount,
            tax_codes=ch.tax_codes if ch.tax_codes is not None else default_codes,
            quantity=ch.quantity if ch.quantity is not None else Decimal(1),
        ))
        return len(charges)
    if ch.position is None or not 1 <= ch.position <= len(charges):
        raise InvalidBillingInput(
            f"position must name a charge line 1-{len(charges)} (discount, minimum spend and"
            " tax lines are recomputed, not edited)"
        )
    i = ch.position - 1
    if ch.op == "remove":
        del charges[i]
        return 0
    old = charges[i]
    charges[i] = replace(
        old,
        description=ch.description if ch.description is not None else old.description,
        amount=ch.amount if ch.amount is not None else old.amount,
        quantity=ch.quantity if ch.quantity is not None else old.quantity,
        tax_codes=ch.tax_codes if ch.tax_codes is not None else old.tax_codes,
    )
    return ch.position


async def _draft(conn: asyncpg.Connection, tenant_id: str, invoice_id: str, action: str) -> Any:
    row = await lock_invoice(conn, tenant_id, invoice_id)
    if row["status"] != "draft":
        raise InvoiceStateError(invoice_id, row["status"], action)
    return row


async def _recompose(
    conn: asyncpg.Connection, before: Any, inputs: InvoiceInputs, manual: dict[int, str]
) -> Any:
    """Compose ``inputs`` into the draft. The account's credit is offered again in full (what
    the draft took plus what is left) and the difference settled, so a correction never
    loses or doubles credit."""
    left = await conn.fetchval(
        "SELECT credit_balance FROM billing_accounts WHERE tenant_id = $1 AND account_id = $2"
        " FOR UPDATE", before["tenant_id"], before["account_id"],
    ) or 0
    inputs = replace(inputs, credit_available=before["credit_applied"] + left)
    try:
        composed = compose(inputs)
    except InvoiceInputError as exc:
        raise InvalidBillingInput(str(exc)) from None
    await replace_content(conn, before["invoice_id"], composed, manual)
    await conn.execute(
        "UPDATE billing_accounts SET credit_balance = credit_balance - $3"
        " WHERE tenant_id = $1 AND account_id = $2", before["tenant_id"], before["account_id"],
        composed.credit_applied - before["credit_applied"],
    )
    await conn.execute("UPDATE invoices SET inputs = $2 WHERE invoice_id = $1",
                       before["invoice_id"], inputs_codec.dumps(inputs))
    return await conn.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1",
                               before["invoice_id"])


async def correct(
    pool: asyncpg.Pool, tenant_id: str, invoice_id: str, changes: list[LineChange],
    reason: str, now: datetime, actor: Actor | None = None,
) -> tuple[Any, Any]:
    """Apply ``changes`` to a draft and recompose it; -> (before, after) rows for the audit."""
    if not reason.strip():
        raise InvalidBillingInput("a correction needs a reason")
    if not changes:
        raise InvalidBillingInput("no changes given")
    async with pool.acquire() as conn, conn.transaction():
        before = await _draft(conn, tenant_id, invoice_id, "correct")
        inputs = inputs_codec.loads(before["inputs"])
        charges = list(inputs.charges)
        manual = {
            r["position"]: r["reason"] for r in await conn.fetch(
                "SELECT position, reason FROM invoice_lines WHERE invoice_id = $1 AND manual",
                invoice_id,
            ) if r["position"] <= len(charges)
        }
        touched: list[int] = []
        for ch in changes:
            pos = _apply(charges, ch, inputs.minimum_spend_tax_codes)
            if ch.op == "remove":
                gone = ch.position or 0
                manual = {(p if p < gone else p - 1): r
                          for p, r in manual.items() if p != gone}
                touched = [(p if p < gone else p - 1) for p in touched if p != gone]
            else:
                touched.append(pos)
        for p in touched:
            manual[p] = reason
        after = await _recompose(conn, before, replace(inputs, charges=tuple(charges)), manual)
        await audit(conn, actor, "invoice.correct", before, after)
        return before, after


async def refresh(
    pool: asyncpg.Pool, tenant_id: str, invoice_id: str, now: datetime,
    actor: Actor | None = None,
) -> tuple[Any, Any]:
    """Recompose a draft with the tenant's current tax labels, discounts and rounding rule
    (the charges, including corrections, stay as they are)."""
    async with pool.acquire() as conn, conn.transaction():
        before = await _draft(conn, tenant_id, invoice_id, "refresh")
        inputs = inputs_codec.loads(before["inputs"])
        key = (tenant_id, before["account_id"])
        taxes = (await run_inputs.taxes(conn, [tenant_id])).get(tenant_id, [])
        settings = (await run_inputs.tenant_settings(conn, [tenant_id]))[tenant_id]
        plan_id = before["plan_id"] or ""
        found = (await run_inputs.discounts(conn, [key], {key: plan_id})).get(key, [])
        live = tuple(d for d in found if before["period_start"] is None or active(
            d, before["period_start"], before["period_end"]))
        new_inputs = replace(inputs, taxes=tuple(taxes), discounts=live, rounding=settings[1])
        manual = {r["position"]: r["reason"] for r in await conn.fetch(
            "SELECT position, reason FROM invoice_lines WHERE invoice_id = $1 AND manual",
            invoice_id)}
        after = await _recompose(conn, before, new_inputs, manual)
        await audit(conn, actor, "invoice.refresh", before, after)
        return before, after
