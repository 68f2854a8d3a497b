"""What the invoice run reads for a batch of accounts, besides their usage (Postgres adapter).

Each query takes the whole batch at once (``= ANY``), so a batch of a thousand accounts costs a
handful of round trips, not thousands.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import asyncpg

from billing.cycles import BillingPeriod, start_of_day
from billing.discounts import Discount, DiscountKind, DiscountScope
from billing.fees import DidTerms, OneTimeCharge, PlanSegment, PlanTerms
from billing.invoice_build import PlanRules
from billing.taxes import TaxLabel, TaxRounding

Key = tuple[str, str]  # tenant, account

# A final invoice takes whatever is left: usage settled at any time, one-time charges of any date.
SWEEP_UNTIL: Final = datetime(9999, 12, 31, tzinfo=UTC)
SWEEP_DATE: Final = date(9999, 12, 31)

PLAN_COLUMNS = (
    "plan_id, name, period, anchor_month, payment_terms_days, currency, fees_in_advance,"
    " usage_in_arrears, plan_fee, per_extension_fee, per_seat_fee, minimum_spend,"
    " invoice_when_empty, tax_codes, payment_text"
)


def final_view(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The batch's billing rows as the run bills them (idempotent). An account whose billing
    ends (``ends_on``, its last day) has the period reaching that day cut to end the day after,
    its fees prorated to the length the period would have had (``open_reference_days``, as for
    a bill cycle day change); that period is ``final``: no period follows it, so its invoice
    takes every settled usage entry (``usage_until``) and every unbilled one-time charge."""
    out: list[dict[str, Any]] = []
    for r in rows:
        if isinstance(r, dict) and "final" in r:
            out.append(r)
            continue
        d = dict(r)
        d.update(final=False, usage_until=r["open_ends_at"])
        ends_on = d.get("ends_on")
        if ends_on is not None and d.get("ended_at") is None:
            last = max(ends_on, r["open_start_date"]) + timedelta(days=1)
            if r["open_end_date"] > last:
                d["open_reference_days"] = r["open_reference_days"] or (
                    r["open_end_date"] - r["open_start_date"]).days
                d["open_end_date"] = last
                d["open_ends_at"] = r["ends_at"] if last == ends_on + timedelta(days=1) \
                    else start_of_day(last, ZoneInfo(r["timezone"]))
            if d["open_end_date"] == last:
                d.update(final=True, usage_until=SWEEP_UNTIL)
        out.append(d)
    return out


def plan_rules(r: Any) -> PlanRules:
    return PlanRules(
        terms=PlanTerms(r["plan_id"], r["name"], r["plan_fee"], r["per_extension_fee"],
                        r["per_seat_fee"]),
        period=BillingPeriod(r["period"]), anchor_month=r["anchor_month"],
        currency=r["currency"].strip(), payment_terms_days=r["payment_terms_days"],
        fees_in_advance=r["fees_in_advance"], usage_in_arrears=r["usage_in_arrears"],
        minimum_spend=r["minimum_spend"], invoice_when_empty=r["invoice_when_empty"],
        tax_codes=tuple(r["tax_codes"]), payment_text=r["payment_text"],
    )


async def plans(conn: asyncpg.Connection, tenant_ids: Iterable[str]) -> dict[Key, PlanRules]:
    rows = await conn.fetch(
        f"SELECT tenant_id, {PLAN_COLUMNS} FROM bill_plans WHERE tenant_id = ANY($1)",
        sorted(set(tenant_ids)),
    )
    return {(r["tenant_id"], r["plan_id"]): plan_rules(r) for r in rows}


async def tenant_settings(
    conn: asyncpg.Connection, tenant_ids: Iterable[str]
) -> dict[str, tuple[str, TaxRounding, str, int]]:
    """tenant -> (timezone, tax rounding, finalization, review hours)."""
    rows = await conn.fetch(
        "SELECT t.tenant_id, t.timezone, coalesce(s.tax_rounding, 'per_line') AS rounding,"
        " coalesce(s.finalization, 'auto') AS fin, coalesce(s.review_hours, 0) AS hours"
        " FROM tenants t LEFT JOIN billing_settings s USING (tenant_id)"
        " WHERE t.tenant_id = ANY($1)", sorted(set(tenant_ids)),
    )
    return {
        r["tenant_id"]: (r["timezone"], TaxRounding(r["rounding"]), r["fin"], r["hours"])
        for r in rows
    }


async def taxes(conn: asyncpg.Connection, tenant_ids: Iterable[str]) -> dict[str, list[TaxLabel]]:
    out: dict[str, list[TaxLabel]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT * FROM tax_labels WHERE tenant_id = ANY($1) ORDER BY ord, code",
        sorted(set(tenant_ids)),
    ):
        out[r["tenant_id"]].append(TaxLabel(
            code=r["code"], name=r["name"], rate=Decimal(r["rate"]), inclusive=r["inclusive"],
            compound=r["compound"], order=r["ord"],
        ))
    return out


def _discount(r: Any) -> Discount:
    kind = DiscountKind(r["kind"])
    value = Decimal(r["value"])
    return Discount(
        code=r["discount_id"], name=r["name"], kind=kind,
        value=value if kind is DiscountKind.PERCENT else int(value),
        scope=DiscountScope(r["scope"]), starts=r["starts_on"], ends=r["ends_on"],
    )


async def discounts(
    conn: asyncpg.Connection, keys: Sequence[Key], plan_of: dict[Key, str]
) -> dict[Key, list[Discount]]:
    """Per account: its own discounts and its plan's, in ``ord`` order."""
    tenants = sorted({t for t, _ in keys})
    rows = await conn.fetch(
        "SELECT * FROM discounts WHERE tenant_id = ANY($1) ORDER BY ord, discount_id", tenants
    )
    by_account: dict[Key, list[Any]] = defaultdict(list)
    by_plan: dict[Key, list[Any]] = defaultdict(list)
    for r in rows:
        if r["account_id"] is not None:
            by_account[(r["tenant_id"], r["account_id"])].append(r)
        else:
            by_plan[(r["tenant_id"], r["plan_id"])].append(r)
    out: dict[Key, list[Discount]] = {}
    for key in keys:
        found = by_account.get(key, []) + by_plan.get((key[0], plan_of[key]), [])
        if found:
            found.sort(key=lambda r: (r["ord"], r["discount_id"]))
            out[key] = [_discount(r) for r in found]
    return out


async def dids(conn: asyncpg.Connection, keys: Sequence[Key]) -> dict[Key, list[DidTerms]]:
    out: dict[Key, list[DidTerms]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT d.* FROM dids d JOIN unnest($1::text[], $2::text[]) AS k(t, a)"
        " ON d.tenant_id = k.t AND d.account_id = k.a ORDER BY d.number",
        [k[0] for k in keys], [k[1] for k in keys],
    ):
        out[(r["tenant_id"], r["account_id"])].append(DidTerms(
            number=r["number"], description=r["description"], setup_fee=r["setup_fee"],
            monthly_fee=r["monthly_fee"], assigned_on=r["assigned_on"],
            released_on=r["released_on"], setup_billed=r["setup_invoice"] is not None,
        ))
    return out


async def one_times(
    conn: asyncpg.Connection, keys: Sequence[Key], before: Sequence[date], lock: bool = False
) -> dict[Key, list[OneTimeCharge]]:
    """Unbilled one-time charges dated before each account's period end; ``lock``: held
    until the run's transaction ends, so a charge deleted meanwhile is refused, not billed."""
    out: dict[Key, list[OneTimeCharge]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT c.* FROM one_time_charges c"
        " JOIN unnest($1::text[], $2::text[], $3::date[]) AS k(t, a, e)"
        " ON c.tenant_id = k.t AND c.account_id = k.a AND c.charge_on < k.e"
        " WHERE c.invoice_id IS NULL ORDER BY c.created_at, c.charge_id"
        + (" FOR UPDATE OF c" if lock else ""),
        [k[0] for k in keys], [k[1] for k in keys], list(before),
    ):
        out[(r["tenant_id"], r["account_id"])].append(OneTimeCharge(
            charge_id=r["charge_id"], kind=r["kind"], description=r["description"],
            amount=r["amount"], quantity=Decimal(r["quantity"]),
            tax_codes=tuple(r["tax_codes"]) if r["tax_codes"] is not None else None,
        ))
    return out


async def segments(
    conn: asyncpg.Connection, keys: Sequence[Key], starts: Sequence[date], ends: Sequence[date],
    plans_by_key: dict[Key, PlanRules],
) -> dict[Key, list[PlanSegment]]:
    """Each account's plan history cut to its period ``[start, end)``."""
    rows = await conn.fetch(
        "SELECT h.tenant_id, h.account_id, h.plan_id, h.extensions, h.seats, h.from_date, k.s,"
        " k.e FROM account_plan_history h"
        " JOIN unnest($1::text[], $2::text[], $3::date[], $4::date[]) AS k(t, a, s, e)"
        " ON h.tenant_id = k.t AND h.account_id = k.a AND h.from_date < k.e"
        " ORDER BY h.tenant_id, h.account_id, h.from_date, h.id",
        [k[0] for k in keys], [k[1] for k in keys], list(starts), list(ends),
    )
    hist: dict[Key, list[Any]] = defaultdict(list)
    for r in rows:
        hist[(r["tenant_id"], r["account_id"])].append(r)
    out: dict[Key, list[PlanSegment]] = {}
    for key, items in hist.items():
        # The last change on a date wins that date; each segment runs to the next change.
        by_date: dict[date, Any] = {}
        for r in items:
            by_date[r["from_date"]] = r
        dates = sorted(by_date)
        s, e = items[0]["s"], items[0]["e"]
        segs: list[PlanSegment] = []
        for i, d in enumerate(dates):
            seg_end = dates[i + 1] if i + 1 < len(dates) else e
            lo, hi = max(d, s), min(seg_end, e)
            if lo >= hi:
                continue
            r = by_date[d]
            rules = plans_by_key.get((key[0], r["plan_id"]))
            if rules is None:
                continue
            segs.append(PlanSegment(rules.terms, lo, hi, r["extensions"], r["seats"]))
        out[key] = segs
    return out
