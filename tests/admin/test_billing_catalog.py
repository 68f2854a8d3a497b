"""The billing catalogue through the admin API: bill plans, tax labels, discounts, DIDs,
one-time charges and billing settings, on a real engine (Postgres) with real keys.

Amounts go in and out as decimal strings of the plan's, account's or tenant's currency and are
stored as ISO 4217 minor units: JPY has none, USD two, KWD three; more decimals are refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin_api.billing.catalog_views import minor_in
from billing import enrollment
from billing.amounts import format_minor
from billing.catalog.lookups import format_decimal, percent
from billing.enrollment import Enrollment
from billing.errors import InvalidBillingInput
from tests.admin.conftest import Api, World, problem

T = "/v1/tenants/acme"
PLANS, TAXES, DISCOUNTS, DIDS = (f"{T}/bill-plans", f"{T}/tax-labels", f"{T}/discounts",
                                 f"{T}/dids")
SETTINGS = f"{T}/billing-settings"
CHARGES = f"{T}/accounts/a1/charges"


def london_today() -> date:
    return datetime.now(ZoneInfo("Europe/London")).date()


async def stored(api: Api, sql: str, *args: Any) -> Any:
    return await api.engine.pool.fetchval(sql, *args)


async def audit_actions(admin: httpx.AsyncClient) -> list[str]:
    r = await admin.get(f"{T}/audit?limit=500")
    return [e["action"] for e in r.json()["items"]]


async def enroll(api: Api, account_id: str, plan_id: str) -> None:
    await enrollment.enroll(api.engine.pool, "acme", account_id, Enrollment(plan_id),
                            datetime.now(UTC))


# Pure: the edge's amount and percent rules


@given(st.sampled_from(["JPY", "USD", "KWD"]), st.integers(0, 10**12 - 1))
def test_minor_units_round_trip_in_every_exponent(currency: str, minor: int) -> None:
    assert minor_in(format_minor(minor, currency), currency, "x") == minor


@given(st.sampled_from([("JPY", 0), ("USD", 2), ("KWD", 3)]), st.integers(0, 10**6),
       st.integers(1, 9))
def test_more_decimals_than_the_currency_has_are_refused(
    cur_exp: tuple[str, int], whole: int, last: int
) -> None:
    currency, exp = cur_exp
    text = f"{whole}." + "0" * exp + str(last)  # one digit too many, never zero
    try:
        minor_in(text, currency, "fee")
    except InvalidBillingInput as exc:
        assert f"{currency} amounts have {exp} decimal(s)" in str(exc)
    else:
        raise AssertionError(f"{text} {currency} was accepted")


@given(st.decimals(min_value=0, max_value=100, places=4, allow_nan=False))
def test_percents_with_four_decimals_are_kept_exactly(value: Decimal) -> None:
    assert Decimal(format_decimal(percent(str(value), "rate"))) == value


def test_percents_out_of_range_or_too_precise_are_refused() -> None:
    for bad in ("100.0001", "7.12345", "-1", "abc"):
        try:
            percent(bad, "rate")
        except InvalidBillingInput:
            continue
        raise AssertionError(bad)
    assert percent("7.12340", "rate") == Decimal("7.1234")  # trailing zeros are not decimals


# Bill plans


async def test_bill_plans_store_minor_units_of_their_currency(api: Api, world: World) -> None:
    admin = world.a.admin
    r = await admin.post(PLANS, json={"plan_id": "basic", "name": "Basic", "plan_fee": "12.50",
                                      "per_seat_fee": "3", "rate_plan_id": "std"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["currency"], body["plan_fee"], body["per_seat_fee"]) == ("USD", "12.50", "3.00")
    assert body["accounts"] == 0 and body["period"] == "monthly"
    assert await stored(api, "SELECT plan_fee FROM bill_plans WHERE plan_id = 'basic'") == 1250
    r = await admin.post(PLANS, json={"plan_id": "yen", "currency": "JPY", "plan_fee": "1250"})
    assert r.status_code == 201 and r.json()["plan_fee"] == "1250", r.text
    assert await stored(api, "SELECT plan_fee FROM bill_plans WHERE plan_id = 'yen'") == 1250
    r = await admin.post(PLANS, json={"plan_id": "dinar", "currency": "KWD",
                                      "plan_fee": "1.250", "minimum_spend": "10"})
    assert r.json()["plan_fee"] == "1.250" and r.json()["minimum_spend"] == "10.000", r.text
    assert await stored(api, "SELECT plan_fee FROM bill_plans WHERE plan_id = 'dinar'") == 1250

    body = problem(await admin.post(PLANS, json={"plan_id": "y2", "currency": "JPY",
                                                 "plan_fee": "12.5"}), 422, "invalid_request")
    assert "plan_fee: JPY amounts have 0 decimal(s)" in body["detail"]
    body = problem(await admin.post(PLANS, json={"plan_id": "k2", "currency": "KWD",
                                                 "per_seat_fee": "1.2345"}), 422)
    assert "per_seat_fee: KWD amounts have 3 decimal(s)" in body["detail"]
    body = problem(await admin.post(PLANS, json={"plan_id": "u2", "plan_fee": "0.001"}), 422)
    assert "USD amounts have 2" in body["detail"]
    problem(await admin.post(PLANS, json={"plan_id": "basic"}), 409, "already_exists")
    body = problem(await admin.post(PLANS, json={"plan_id": "x", "tax_codes": ["NOPE"]}), 422)
    assert "unknown tax label(s): NOPE" in body["detail"]
    body = problem(await admin.post(PLANS, json={"plan_id": "x", "rate_plan_id": "nope"}), 422)
    assert "rate plan 'nope' does not exist" in body["detail"]
    body = problem(await admin.post(PLANS, json={"plan_id": "x", "currency": "EUR",
                                                 "rate_plan_id": "std"}), 422)
    assert "is in USD, the bill plan in EUR" in body["detail"]
    problem(await admin.post(PLANS, json={"plan_id": "x", "currency": "XAU"}), 422)
    problem(await admin.post(PLANS, json={"plan_id": "x", "plan_fee": 12}), 422)  # not a string
    problem(await admin.post(PLANS, json={"plan_id": "x", "anchor_month": 13}), 422)
    problem(await admin.post(PLANS, json={"plan_id": "x", "surprise": 1}), 422)
    assert await stored(api, "SELECT count(*) FROM bill_plans WHERE plan_id = 'x'") == 0

    r = await admin.get(PLANS, params={"limit": 2})
    first = r.json()
    assert [p["plan_id"] for p in first["items"]] == ["basic", "dinar"]
    r = await admin.get(PLANS, params={"limit": 2, "cursor": first["next_cursor"]})
    assert [p["plan_id"] for p in r.json()["items"]] == ["yen"]
    assert r.json()["next_cursor"] is None
    problem(await admin.get(PLANS, params={"cursor": "garbage"}), 422, "invalid_cursor")
    assert (await admin.get(f"{PLANS}/yen")).json()["currency"] == "JPY"
    problem(await admin.get(f"{PLANS}/nope"), 404, "not_found")


async def test_bill_plan_changes_and_deletes_respect_the_accounts_on_it(
    api: Api, world: World
) -> None:
    admin = world.a.admin
    assert (await admin.post(PLANS, json={"plan_id": "gold", "plan_fee": "10"})).status_code == 201
    r = await admin.patch(f"{PLANS}/gold", json={"plan_fee": "20.05", "name": "Gold",
                                                 "rate_plan_id": "std"})
    assert r.status_code == 200, r.text
    assert (r.json()["plan_fee"], r.json()["name"], r.json()["rate_plan_id"]) == (
        "20.05", "Gold", "std")
    r = await admin.patch(f"{PLANS}/gold", json={"rate_plan_id": None})  # null clears it
    assert r.json()["rate_plan_id"] is None and r.json()["plan_fee"] == "20.05"
    body = problem(await admin.patch(f"{PLANS}/gold", json={"period": None}), 422)
    assert "period cannot be null" in body["detail"]
    problem(await admin.patch(f"{PLANS}/gold", json={"currency": "EUR"}), 422)  # fixed
    problem(await admin.patch(f"{PLANS}/gold", json={"plan_fee": "1.001"}), 422)
    problem(await admin.patch(f"{PLANS}/nope", json={"name": "x"}), 404, "not_found")

    await enroll(api, "a1", "gold")
    assert (await admin.get(f"{PLANS}/gold")).json()["accounts"] == 1
    body = problem(await admin.patch(f"{PLANS}/gold", json={"period": "yearly"}), 409, "in_use")
    assert "period cannot change" in body["detail"]
    r = await admin.patch(f"{PLANS}/gold", json={"per_seat_fee": "1.00"})  # fees may
    assert r.status_code == 200, r.text
    body = problem(await admin.delete(f"{PLANS}/gold"), 409, "in_use")
    assert "1 account(s) bill on plan 'gold'" in body["detail"]

    assert (await admin.post(PLANS, json={"plan_id": "spare"})).status_code == 201
    assert (await admin.post(DISCOUNTS, json={
        "discount_id": "d1", "name": "Launch", "kind": "percent", "value": "5",
        "scope": "invoice", "plan_id": "spare"})).status_code == 201
    problem(await admin.delete(f"{PLANS}/spare"), 409, "in_use")
    assert (await admin.delete(f"{DISCOUNTS}/d1")).status_code == 204
    assert (await admin.delete(f"{PLANS}/spare")).status_code == 204
    problem(await admin.get(f"{PLANS}/spare"), 404)
    actions = await audit_actions(admin)
    assert actions.count("bill_plan.update") == 3 and "bill_plan.delete" in actions
    assert actions.count("bill_plan.create") == 2


# Tax labels


async def test_tax_labels_in_order_with_exact_rates(api: Api, world: World) -> None:
    admin = world.a.admin
    for code, rate, order in (("VAT", "18.5", 1), ("CITY", "2.1234", 2), ("FED", "0", 0)):
        r = await admin.post(TAXES, json={"code": code, "name": code.title(), "rate": rate,
                                          "ord": order})
        assert r.status_code == 201, r.text
        assert r.json()["rate"] == rate
    assert await stored(api, "SELECT rate FROM tax_labels WHERE code = 'CITY'") == Decimal(
        "2.1234")
    r = await admin.get(TAXES, params={"limit": 2})
    assert [t["code"] for t in r.json()["items"]] == ["FED", "VAT"]
    r = await admin.get(TAXES, params={"limit": 2, "cursor": r.json()["next_cursor"]})
    assert [t["code"] for t in r.json()["items"]] == ["CITY"] and r.json()["next_cursor"] is None

    body = problem(await admin.post(TAXES, json={"code": "X", "name": "X", "rate": "7.12345"}),
                   422, "invalid_request")
    assert "rate has at most 4 decimals" in body["detail"]
    body = problem(await admin.post(TAXES, json={"code": "X", "name": "X", "rate": "100.5"}), 422)
    assert "between 0 and 100" in body["detail"]
    problem(await admin.post(TAXES, json={"code": "X", "name": "X", "rate": 5}), 422)
    problem(await admin.post(TAXES, json={"code": "bad code", "name": "X", "rate": "5"}), 422)
    problem(await admin.post(TAXES, json={"code": "VAT", "name": "X", "rate": "5"}), 409,
            "already_exists")

    r = await admin.patch(f"{TAXES}/VAT", json={"rate": "20", "inclusive": True})
    assert (r.json()["rate"], r.json()["inclusive"], r.json()["name"]) == ("20", True, "Vat")
    assert (await admin.get(f"{TAXES}/VAT")).json()["rate"] == "20"
    problem(await admin.patch(f"{TAXES}/VAT", json={"rate": None}), 422)

    assert (await admin.post(PLANS, json={"plan_id": "p", "tax_codes": ["VAT"]})).status_code \
        == 201
    body = problem(await admin.delete(f"{TAXES}/VAT"), 409, "in_use")
    assert "bill plan p" in body["detail"]
    assert (await admin.delete(f"{TAXES}/FED")).status_code == 204
    problem(await admin.get(f"{TAXES}/FED"), 404, "not_found")
    assert {"tax_label.create", "tax_label.update", "tax_label.delete"} <= set(
        await audit_actions(admin))


# Discounts


async def test_discounts_target_one_account_or_plan_in_its_currency(
    api: Api, world: World
) -> None:
    admin = world.a.admin
    assert (await admin.post(PLANS, json={"plan_id": "kw", "currency": "KWD"})).status_code \
        == 201
    r = await admin.post(DISCOUNTS, json={"discount_id": "loyal", "name": "Loyalty",
                                          "kind": "fixed", "value": "5.00", "scope": "invoice",
                                          "account_id": "a1", "starts_on": "2026-01-01"})
    assert r.status_code == 201, r.text
    assert (r.json()["value"], r.json()["currency"]) == ("5.00", "USD")
    assert await stored(api, "SELECT value FROM discounts WHERE discount_id = 'loyal'") == 500
    r = await admin.post(DISCOUNTS, json={"discount_id": "kwd", "name": "K", "kind": "fixed",
                                          "value": "0.125", "scope": "recurring",
                                          "plan_id": "kw"})
    assert (r.json()["value"], r.json()["currency"]) == ("0.125", "KWD"), r.text
    r = await admin.post(DISCOUNTS, json={"discount_id": "pct", "name": "Ten", "kind": "percent",
                                          "value": "12.5", "scope": "usage", "plan_id": "kw",
                                          "ord": -1})
    assert r.json()["value"] == "12.5", r.text

    body = problem(await admin.post(DISCOUNTS, json={
        "discount_id": "x", "name": "x", "kind": "fixed", "value": "5.001", "scope": "invoice",
        "account_id": "a1"}), 422)
    assert "value: USD amounts have 2 decimal(s)" in body["detail"]
    for target in ({}, {"account_id": "a1", "plan_id": "kw"}):
        body = problem(await admin.post(DISCOUNTS, json={
            "discount_id": "x", "name": "x", "kind": "percent", "value": "5",
            "scope": "invoice", **target}), 422)
        assert "exactly one of account_id, plan_id" in body["detail"]
    body = problem(await admin.post(DISCOUNTS, json={
        "discount_id": "x", "name": "x", "kind": "percent", "value": "5", "scope": "invoice",
        "account_id": "b1"}), 422)  # tenant B's account: as unknown as any
    assert "account 'b1' does not exist" in body["detail"]
    problem(await admin.post(DISCOUNTS, json={
        "discount_id": "x", "name": "x", "kind": "percent", "value": "101", "scope": "invoice",
        "plan_id": "kw"}), 422)
    body = problem(await admin.post(DISCOUNTS, json={
        "discount_id": "x", "name": "x", "kind": "percent", "value": "1", "scope": "invoice",
        "plan_id": "kw", "starts_on": "2026-02-01", "ends_on": "2026-01-01"}), 422)
    assert "ends_on must be after starts_on" in body["detail"]
    problem(await admin.post(DISCOUNTS, json={
        "discount_id": "x", "name": "x", "kind": "percent", "value": "1", "scope": "invoice",
        "plan_id": "kw", "starts_on": "20260201"}), 422)
    problem(await admin.post(DISCOUNTS, json={
        "discount_id": "loyal", "name": "x", "kind": "percent", "value": "1", "scope": "invoice",
        "plan_id": "kw"}), 409, "already_exists")

    r = await admin.get(DISCOUNTS, params={"limit": 2})
    assert [d["discount_id"] for d in r.json()["items"]] == ["pct", "kwd"]
    r = await admin.get(DISCOUNTS, params={"limit": 2, "cursor": r.json()["next_cursor"]})
    assert [d["discount_id"] for d in r.json()["items"]] == ["loyal"]
    r = await admin.get(DISCOUNTS, params={"account_id": "a1"})
    assert [d["discount_id"] for d in r.json()["items"]] == ["loyal"]

    body = problem(await admin.patch(f"{DISCOUNTS}/loyal", json={"kind": "percent"}), 422)
    assert "needs its value" in body["detail"]
    r = await admin.patch(f"{DISCOUNTS}/loyal", json={"kind": "percent", "value": "15",
                                                       "starts_on": None})
    assert (r.json()["kind"], r.json()["value"], r.json()["starts_on"]) == ("percent", "15", None)
    r = await admin.patch(f"{DISCOUNTS}/kwd", json={"value": "1.5"})
    assert r.json()["value"] == "1.500"
    assert await stored(api, "SELECT value FROM discounts WHERE discount_id = 'kwd'") == 1500
    problem(await admin.patch(f"{DISCOUNTS}/kwd", json={"account_id": "a2"}), 422)  # fixed
    assert (await admin.delete(f"{DISCOUNTS}/kwd")).status_code == 204
    problem(await admin.get(f"{DISCOUNTS}/kwd"), 404, "not_found")


# DIDs


async def test_dids_are_assigned_released_and_reassigned_once_billed(
    api: Api, world: World
) -> None:
    admin = world.a.admin
    r = await admin.post(DIDS, json={"number": "4420000001", "description": "London",
                                     "setup_fee": "5.00", "monthly_fee": "2.5",
                                     "inbound_per_minute": "0.012"})
    assert r.status_code == 201, r.text
    d = r.json()
    assert (d["setup_fee"], d["monthly_fee"], d["inbound_per_minute"], d["state"]) == (
        "5.00", "2.50", "0.012", "free")
    row = await api.engine.pool.fetchrow("SELECT * FROM dids WHERE number = '4420000001'")
    assert (row["setup_fee"], row["monthly_fee"], row["inbound_per_minute"]) == (500, 250, 12_000)
    problem(await admin.post(DIDS, json={"number": "4420000001"}), 409, "already_exists")
    problem(await admin.post(DIDS, json={"number": "44x"}), 422)
    problem(await admin.post(DIDS, json={"number": "4420000009", "monthly_fee": "1.999"}), 422)
    assert (await admin.post(DIDS, json={"number": "4420000002"})).status_code == 201

    u = f"{DIDS}/4420000001"
    r = await admin.post(f"{u}/assign", json={"account_id": "a1", "assigned_on": "2026-03-10"})
    assert (r.json()["state"], r.json()["account_id"], r.json()["assigned_on"]) == (
        "assigned", "a1", "2026-03-10"), r.text
    problem(await admin.post(f"{u}/assign", json={"account_id": "a2"}), 409, "did_state")
    problem(await admin.post(f"{u}/assign", json={"account_id": "b1"}), 422)
    r = await admin.get(DIDS, params={"account_id": "a1"})
    assert [x["number"] for x in r.json()["items"]] == ["4420000001"]
    r = await admin.get(DIDS, params={"limit": 1})
    r = await admin.get(DIDS, params={"limit": 1, "cursor": r.json()["next_cursor"]})
    assert [x["number"] for x in r.json()["items"]] == ["4420000002"]

    body = problem(await admin.post(f"{u}/release", json={"released_on": "2026-03-01"}), 422)
    assert "release it on or after that" in body["detail"]
    r = await admin.post(f"{u}/release", json={"released_on": "2026-04-01"})
    assert (r.json()["state"], r.json()["released_on"]) == ("released", "2026-04-01"), r.text
    problem(await admin.post(f"{u}/release"), 409, "did_state")
    body = problem(await admin.post(f"{u}/assign", json={"account_id": "a2",
                                                         "assigned_on": "2026-03-20"}), 422)
    assert "assign it from then on" in body["detail"]
    # a1 is not billed by invoices: the number can go to a2 at once, with a new setup fee
    r = await admin.post(f"{u}/assign", json={"account_id": "a2", "assigned_on": "2026-04-01"})
    assert (r.json()["account_id"], r.json()["released_on"]) == ("a2", None), r.text

    # a2 is billed from its open period on: a release before it is refused (billed already)
    assert (await admin.post(PLANS, json={"plan_id": "m"})).status_code == 201
    await enroll(api, "a2", "m")
    start = await stored(api, "SELECT open_start_date FROM billing_accounts"
                              " WHERE account_id = 'a2'")
    body = problem(await admin.post(f"{u}/release", json={"released_on": "2026-04-02"}), 409,
                   "already_billed")
    assert f"invoiced up to {start}" in body["detail"]
    release = start + timedelta(days=5)
    r = await admin.post(f"{u}/release", json={"released_on": release.isoformat()})
    assert r.status_code == 200, r.text
    # ... and until a2's invoices cover the release, the number stays with a2
    body = problem(await admin.post(f"{u}/assign", json={"account_id": "a1",
                                                         "assigned_on": release.isoformat()}),
                   409, "did_state")
    assert f"until its invoice covering {release}" in body["detail"]
    await api.engine.pool.execute(  # what the invoice run does once it billed that period
        "UPDATE billing_accounts SET open_start_date = $1 WHERE account_id = 'a2'", release)
    await api.engine.pool.execute("UPDATE dids SET setup_invoice = 'inv_9'")
    body = problem(await admin.patch(u, json={"setup_fee": "6.00"}), 409, "already_billed")
    assert "inv_9" in body["detail"]
    assert (await admin.get(u)).json()["setup_invoice"] == "inv_9"
    r = await admin.post(f"{u}/assign", json={"account_id": "a1",
                                              "assigned_on": release.isoformat()})
    assert (r.json()["account_id"], r.json()["setup_invoice"]) == ("a1", None), r.text

    r = await admin.patch(f"{DIDS}/4420000002", json={"monthly_fee": "9.99"})
    assert r.json()["monthly_fee"] == "9.99"
    problem(await admin.delete(u), 409, "in_use")
    assert (await admin.delete(f"{DIDS}/4420000002")).status_code == 204
    problem(await admin.get(f"{DIDS}/4420000002"), 404, "not_found")
    assert {"did.create", "did.assign", "did.release", "did.update", "did.delete"} <= set(
        await audit_actions(admin))


# One-time charges


async def test_one_time_charges_once_per_key_and_only_deleted_unbilled(
    api: Api, world: World
) -> None:
    admin = world.a.admin
    ok = {"kind": "equipment", "description": "Desk phone", "amount": "19.99", "quantity": "2"}
    days = {london_today()}
    r = await admin.post(CHARGES, json=ok, headers={"Idempotency-Key": "phone-1"})
    days.add(london_today())
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["amount"], c["quantity"], c["currency"], c["invoice_id"], c["replayed"]) == (
        "19.99", "2", "USD", None, False)
    assert c["charge_on"] in {d.isoformat() for d in days}  # today in the tenant's zone
    assert await stored(api, "SELECT amount FROM one_time_charges WHERE charge_id = $1",
                        c["charge_id"]) == 1999
    r = await admin.post(CHARGES, json=ok, headers={"Idempotency-Key": "phone-1"})
    assert r.status_code == 200 and r.json()["charge_id"] == c["charge_id"]
    assert r.json()["replayed"] is True
    problem(await admin.post(CHARGES, json={**ok, "amount": "20.00"},
                             headers={"Idempotency-Key": "phone-1"}), 409,
            "idempotency_key_reused")
    problem(await admin.post(f"{T}/accounts/a2/charges", json=ok,
                             headers={"Idempotency-Key": "phone-1"}), 409,
            "idempotency_key_reused")
    assert await stored(api, "SELECT count(*) FROM one_time_charges") == 1

    r = await admin.post(CHARGES, json={"description": "Install", "amount": "50",
                                        "charge_on": "2026-05-01", "tax_codes": []})
    assert (r.json()["kind"], r.json()["charge_on"], r.json()["tax_codes"]) == (
        "manual", "2026-05-01", []), r.text
    body = problem(await admin.post(CHARGES, json={**ok, "amount": "1.999"}), 422)
    assert "amount: USD amounts have 2 decimal(s)" in body["detail"]
    problem(await admin.post(CHARGES, json={**ok, "amount": "0"}), 422)
    problem(await admin.post(CHARGES, json={**ok, "quantity": "0"}), 422)
    body = problem(await admin.post(CHARGES, json={**ok, "tax_codes": ["GST"]}), 422)
    assert "unknown tax label(s): GST" in body["detail"]
    problem(await admin.post(CHARGES, json={**ok, "kind": "rebate"}), 422)
    problem(await admin.post(f"{T}/accounts/b1/charges", json=ok), 404, "not_found")
    problem(await admin.get(f"{T}/accounts/b1/charges"), 404, "not_found")

    r = await admin.post(f"{T}/accounts", json={"account_id": "yen", "currency": "JPY"})
    assert r.status_code == 201, r.text
    r = await admin.post(f"{T}/accounts/yen/charges", json={"description": "SIM",
                                                            "amount": "500"})
    assert r.json()["amount"] == "500" and r.json()["currency"] == "JPY", r.text
    problem(await admin.post(f"{T}/accounts/yen/charges", json={"description": "SIM",
                                                                "amount": "500.5"}), 422)

    r = await admin.get(CHARGES, params={"limit": 1})
    first = r.json()["items"]
    r = await admin.get(CHARGES, params={"limit": 1, "cursor": r.json()["next_cursor"]})
    both = [x["charge_id"] for x in first + r.json()["items"]]
    assert len(both) == 2 and both[0] == c["charge_id"] and r.json()["next_cursor"] is None
    install = r.json()["items"][0]["charge_id"]

    await api.engine.pool.execute(
        "UPDATE one_time_charges SET invoice_id = 'inv_1' WHERE charge_id = $1", c["charge_id"])
    assert (await admin.get(f"{CHARGES}/{c['charge_id']}")).json()["invoice_id"] == "inv_1"
    body = problem(await admin.delete(f"{CHARGES}/{c['charge_id']}"), 409, "already_billed")
    assert "inv_1" in body["detail"]
    assert (await admin.delete(f"{CHARGES}/{install}")).status_code == 204
    problem(await admin.get(f"{CHARGES}/{install}"), 404, "not_found")
    problem(await admin.delete(f"{T}/accounts/a2/charges/{c['charge_id']}"), 404)
    assert {"charge.create", "charge.delete"} <= set(await audit_actions(admin))


# Billing settings


async def test_billing_settings_default_until_set_and_are_validated(
    api: Api, world: World
) -> None:
    admin = world.a.admin
    r = await admin.get(SETTINGS)
    assert r.status_code == 200, r.text
    assert (r.json()["number_prefix"], r.json()["locale"], r.json()["updated_at"]) == (
        "INV", "en_US", None)
    r = await admin.put(SETTINGS, json={
        "number_prefix": "AC", "number_pattern": "{prefix}/{year}/{month}/{seq:05d}",
        "finalization": "review", "review_hours": 48, "tax_rounding": "per_invoice",
        "default_bcd": 1, "kind_switch": "now", "locale": "de-DE", "seller_name": "Acme GmbH",
        "seller_address": ["Hauptstr. 1", "10115 Berlin"], "seller_tax_ids": ["DE123"],
        "footer": "Danke", "template_source": "<p>{{ doc.number }}</p>",
    })
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["locale"], s["review_hours"], s["seller_address"], s["updated_at"] is None) == (
        "de_DE", 48, ["Hauptstr. 1", "10115 Berlin"], False)
    row = await api.engine.pool.fetchrow("SELECT * FROM billing_settings WHERE tenant_id = 'acme'")
    assert (row["number_prefix"], row["finalization"], row["default_bcd"]) == ("AC", "review", 1)

    r = await admin.patch(SETTINGS, json={"review_hours": 24, "default_bcd": None})
    assert (r.json()["review_hours"], r.json()["default_bcd"], r.json()["locale"]) == (
        24, None, "de_DE")
    for bad, words in (({"number_pattern": "{prefix}-{year}"}, "number_pattern"),
                       ({"number_pattern": "{prefix}-{seq}-{seq}"}, "exactly once"),
                       ({"number_pattern": "{seq.__class__}"}, "number_pattern"),
                       ({"locale": "xx_YY"}, "unknown locale"),
                       ({"finalization": None}, "cannot be null")):
        body = problem(await admin.patch(SETTINGS, json=bad), 422)
        assert words in body["detail"], (bad, body)
    refused: list[dict[str, Any]] = [
        {"default_bcd": 32}, {"review_hours": 9000}, {"number_prefix": "A B"},
        {"finalization": "manual"}, {"seller_address": ["x"] * 11},
    ]
    for wrong in refused:
        problem(await admin.put(SETTINGS, json=wrong), 422)
    assert (await admin.get(SETTINGS)).json()["review_hours"] == 24  # refusals changed nothing

    r = await admin.put(SETTINGS, json={"seller_name": "Acme"})  # the rest back to defaults
    assert (r.json()["number_prefix"], r.json()["finalization"], r.json()["locale"]) == (
        "INV", "auto", "en_US")
    assert (await audit_actions(admin)).count("billing_settings.update") == 3


async def test_a_template_the_renderer_refuses_is_not_stored(api: Api, world: World) -> None:
    pytest.importorskip("billing.documents.templating")  # checked only where it is installed
    admin = world.a.admin
    for source, words in (("{% if %}", "syntax error"), ("{{ invoice.total }}", "invoice")):
        body = problem(await admin.patch(SETTINGS, json={"template_source": source}), 422)
        assert body["detail"].startswith("template_source: ") and words in body["detail"]
    assert (await admin.get(SETTINGS)).json()["template_source"] is None
    r = await admin.patch(SETTINGS, json={"template_source": "<h1>{{ title }}</h1>"})
    assert r.json()["template_source"] == "<h1>{{ title }}</h1>", r.text
    r = await admin.patch(SETTINGS, json={"template_source": None})  # back to the built-in
    assert r.json()["template_source"] is None


# Roles


async def test_finance_writes_ops_reads_agent_sees_nothing(
    api: Api, finance_world: World
) -> None:
    a = finance_world.a
    fin, ops, agent = a.clients["finance"], a.clients["ops"], a.clients["agent"]
    writes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", PLANS, {"plan_id": "f1", "plan_fee": "1.00"}),
        ("PATCH", f"{PLANS}/f1", {"name": "F"}),
        ("POST", TAXES, {"code": "T1", "name": "T", "rate": "5"}),
        ("PATCH", f"{TAXES}/T1", {"rate": "6"}),
        ("POST", DISCOUNTS, {"discount_id": "d1", "name": "D", "kind": "percent", "value": "5",
                             "scope": "invoice", "plan_id": "f1"}),
        ("PATCH", f"{DISCOUNTS}/d1", {"value": "6"}),
        ("POST", DIDS, {"number": "4930000001"}),
        ("PATCH", f"{DIDS}/4930000001", {"description": "Berlin"}),
        ("POST", f"{DIDS}/4930000001/assign", {"account_id": "a1"}),
        ("POST", f"{DIDS}/4930000001/release", {}),
        ("POST", CHARGES, {"description": "x", "amount": "1.00"}),
        ("PUT", SETTINGS, {"seller_name": "Acme"}),
        ("PATCH", SETTINGS, {"footer": "Thanks"}),
        ("DELETE", f"{DISCOUNTS}/d1", None),
        ("DELETE", f"{TAXES}/T1", None),
        ("DELETE", f"{PLANS}/f1", None),
        ("DELETE", f"{DIDS}/4930000002", None),
    ]
    await fin.post(DIDS, json={"number": "4930000002"})
    for method, path, body in writes:
        for refused in (ops, agent):
            problem(await refused.request(method, path, json=body), 403, "forbidden")
        r = await fin.request(method, path, json=body)
        assert r.status_code in (200, 201, 204), (method, path, r.text)
    reads = [PLANS, TAXES, DISCOUNTS, DIDS, CHARGES, SETTINGS]
    for path in reads:
        assert (await ops.get(path)).status_code == 200, path
        assert (await fin.get(path)).status_code == 200, path
        problem(await agent.get(path), 403, "forbidden")
    # finance is billing only: accounts, rates and keys stay out of reach
    problem(await fin.patch(f"{T}/accounts/a1", json={"name": "x"}), 403, "forbidden")
    problem(await fin.post(f"{T}/rate-plans", json={"plan_id": "r2"}), 403, "forbidden")
    problem(await fin.post(f"{T}/keys", json={"role": "ops"}), 403, "forbidden")
    r = await fin.get("/v1/me")
    assert r.json()["role"] == "finance"
    entries = (await a.admin.get(f"{T}/audit?limit=500")).json()["items"]
    assert {e["role"] for e in entries if e["action"].startswith("bill_plan.")} == {"finance"}


async def test_the_role_check_takes_finance_and_keeps_platform_keys_tenantless(api: Api) -> None:
    pool = api.engine.pool
    await pool.execute("INSERT INTO tenants (tenant_id, name, currency) VALUES ('t', 'T', 'USD')")
    insert = ("INSERT INTO api_keys (key_id, tenant_id, role, key_hash) VALUES ($1, $2, $3, $4)")
    await pool.execute(insert, "k1", "t", "finance", "h1")
    for key_id, tenant, role in (("k2", "t", "auditor"), ("k3", None, "finance"),
                                 ("k4", "t", "platform")):
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(insert, key_id, tenant, role, key_id)

