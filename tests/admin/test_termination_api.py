"""Termination at the API edge: a bill plan's minimum term and cancellation fee (validated,
stored in minor units), a ladder whose last step terminates (and only its last), and the
account's termination shown with its place on the ladder."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tests.admin.conftest import Api, World, problem

T = "/v1/tenants/acme"
PLANS = f"{T}/bill-plans"
LADDER = f"{T}/dunning-ladder"


async def test_a_plan_has_a_minimum_term_and_a_cancellation_fee(api: Api, world: World) -> None:
    admin = world.a.admin
    r = await admin.post(PLANS, json={"plan_id": "term", "minimum_term_days": 365,
                                      "cancellation_fee": "49.90"})
    assert r.status_code == 201, r.text
    assert (r.json()["minimum_term_days"], r.json()["cancellation_fee"]) == (365, "49.90")
    row = await api.engine.pool.fetchrow("SELECT minimum_term_days, cancellation_fee FROM"
                                         " bill_plans WHERE plan_id = 'term'")  # fmt: skip
    assert (row["minimum_term_days"], row["cancellation_fee"]) == (365, 4990)
    plain = (await admin.post(PLANS, json={"plan_id": "plain"})).json()
    assert (plain["minimum_term_days"], plain["cancellation_fee"]) == (0, "0.00")
    r = await admin.patch(f"{PLANS}/term", json={"minimum_term_days": 730,
                                                 "cancellation_fee": "10"})
    assert (r.json()["minimum_term_days"], r.json()["cancellation_fee"]) == (730, "10.00")
    for bad in ({"minimum_term_days": -1}, {"minimum_term_days": 3651},
                {"minimum_term_days": "x"}, {"cancellation_fee": "1.001"},
                {"cancellation_fee": "-1"}, {"cancellation_fee": 5},
                {"minimum_term_days": None}, {"cancellation_fee": None}):
        problem(await admin.patch(f"{PLANS}/term", json=bad), 422)
    assert (await admin.get(f"{PLANS}/term")).json()["minimum_term_days"] == 730


async def test_a_ladder_may_end_in_termination(api: Api, world: World) -> None:
    admin = world.a.admin
    steps = [{"name": "reminder", "min_days": 1},
             {"name": "suspended", "min_days": 31, "status": "suspended"},
             {"name": "terminated", "min_days": 61, "status": "terminated"}]
    r = await admin.put(LADDER, json={"steps": steps})
    assert r.status_code == 200, r.text
    assert r.json()["steps"][2]["status"] == "terminated"
    body = problem(await admin.put(LADDER, json={"steps": [
        {"name": "end", "min_days": 30, "status": "terminated"},
        {"name": "after", "min_days": 60}]}), 422, "invalid_ladder")
    assert "terminated must be the last step" in body["detail"]
    # an account's place shows its termination once one started
    await admin.post(PLANS, json={"plan_id": "term"})
    pool = api.engine.pool
    await pool.execute(
        "INSERT INTO billing_accounts (tenant_id, account_id, plan_id, bcd, open_index,"
        " open_start_date, open_end_date, open_starts_at, open_ends_at) VALUES ('acme', 'a1',"
        " 'term', 1, 0, '2026-05-01', '2026-06-01', $1, $2)",
        datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC),
    )  # fmt: skip
    assert (await admin.get(f"{T}/accounts/a1/dunning")).json()["termination"] is None
    await pool.execute(
        "INSERT INTO account_terminations (tenant_id, account_id, episode, ends_on, started_at,"
        " waiting_for) VALUES ('acme', 'a1', 1, '2026-05-01', $1, 'the final invoice')",
        datetime(2026, 5, 1, 9, tzinfo=UTC),
    )  # fmt: skip
    t = (await admin.get(f"{T}/accounts/a1/dunning")).json()["termination"]
    assert (t["state"], t["ends_on"], t["waiting_for"]) == (
        "pending", date(2026, 5, 1).isoformat(), "the final invoice")
