"""Rate plans: CSV decks imported all-or-nothing (50,000 rows), exported back, JSON CRUD,
and pricing a hypothetical call."""

from __future__ import annotations

import asyncio

from charging_engine.rating.deck import parse_deck
from tests.admin.conftest import Api, World, problem

PLANS = "/v1/tenants/acme/rate-plans"
CSV = {"Content-Type": "text/csv"}
HEADER = (
    "prefix,description,price_per_minute,connect_fee,first_increment,next_increment,band,"
    "band_weekdays,band_start,band_end\n"
)


def big_deck(rows: int, bad_line: int | None = None) -> str:
    """``rows`` distinct prefixes; line numbers count the header as line 1."""
    lines = [HEADER]
    for i in range(rows):
        price = "0.0123" if i % 3 else "0.5"
        band = ("peak,0-4,08:00,18:00" if i % 7 == 0 else ",,,")
        lines.append(f"{100000 + i},Destination {i},{price},0.01,60,6,{band}\n")
    if bad_line is not None:
        lines[bad_line - 1] = "4420,Bad,0.1.2,0,60,6,,,,\n"
    return "".join(lines)


async def rate_count(api: Api, plan: str = "big") -> int:
    return int(await api.engine.pool.fetchval(
        "SELECT count(*) FROM rates WHERE tenant_id = 'acme' AND plan_id = $1", plan
    ))


async def test_a_50000_row_deck_imports_atomically_and_a_bad_line_changes_nothing(
    api: Api, world: World
) -> None:
    admin = world.a.admin
    deck = big_deck(50_000)
    r = await admin.put(f"{PLANS}/big/deck", content=deck, headers=CSV)
    assert r.status_code == 200, r.text
    assert r.json() == {"plan_id": "big", "currency": "USD", "rates": 50_000, "replaced": 0}
    assert await rate_count(api) == 50_000
    tariff = api.engine.service.catalog.tariff("acme", "big")
    assert tariff is not None and len(tariff) == 50_000  # this engine already rates with it
    r = await admin.patch("/v1/tenants/acme/accounts/a1", json={"rate_plan_id": "big"})
    assert r.status_code == 200, r.text
    d = await api.engine.service.authorize("acme", "a1", "big-1", "+1049999123")
    assert d.allowed and d.rate_prefix == "104999"  # row 4,999 of the deck
    await api.engine.service.end("acme", "a1", "big-1", billable_seconds=0)

    # the same deck with one bad line (line 31,337): rejected whole, naming that line
    before = (await admin.get(f"{PLANS}/big/deck")).text
    r = await admin.put(f"{PLANS}/big/deck", content=big_deck(50_000, bad_line=31_337),
                        headers=CSV)
    body = problem(r, 422, "deck_rejected")
    assert body["bad_lines"] == 1 and [ln["line"] for ln in body["lines"]] == [31_337]
    assert "price_per_minute" in body["lines"][0]["message"]
    assert "31337" in body["detail"]
    assert (await admin.get(f"{PLANS}/big/deck")).text == before
    assert await rate_count(api) == 50_000

    # replacing with a smaller deck: readers see the old or the new deck, never a mix
    seen: set[int] = set()
    importing = asyncio.create_task(
        admin.put(f"{PLANS}/big/deck", content=big_deck(20_000), headers=CSV)
    )
    while not importing.done():
        seen.add(await rate_count(api))
    r = importing.result()
    assert r.status_code == 200 and r.json()["replaced"] == 50_000
    seen.add(await rate_count(api))
    assert seen <= {50_000, 20_000} and 20_000 in seen


async def test_the_exported_deck_imports_back_to_the_same_rates(api: Api, world: World) -> None:
    admin = world.a.admin
    deck = big_deck(300) + '99,"Quoted, with comma",1.5,0,1,1,,,,\n'
    assert (await admin.put(f"{PLANS}/p/deck", content=deck, headers=CSV)).status_code == 200
    exported = (await admin.get(f"{PLANS}/p/deck"))
    assert exported.headers["content-type"].startswith("text/csv")
    assert parse_deck(exported.text) == parse_deck(deck)
    r = await admin.put(f"{PLANS}/q/deck", content=exported.text, headers=CSV)
    assert r.status_code == 200
    assert (await admin.get(f"{PLANS}/q/deck")).text == exported.text


async def test_every_bad_line_is_listed(api: Api, world: World) -> None:
    deck = (
        "prefix,price_per_minute,rounding\n"
        "44,0.10,up\n"
        "x44,0.10,up\n"        # line 3: prefix
        "45,0.10,sideways\n"   # line 4: rounding
        "44,0.20,up\n"         # line 5: duplicate of line 2
    )
    body = problem(await world.a.admin.put(f"{PLANS}/p/deck", content=deck, headers=CSV),
                   422, "deck_rejected")
    assert [ln["line"] for ln in body["lines"]] == [3, 4, 5]
    assert "duplicate of line 2" in body["lines"][2]["message"]
    problem(await world.a.admin.put(f"{PLANS}/p/deck", content=b"\xff\xfe", headers=CSV), 422)
    problem(await world.a.admin.put(f"{PLANS}/p/deck", content="prefix,price_per_minute\n",
                                    headers={"Content-Type": "application/json"}), 415)
    problem(await world.a.clients["ops"].put(f"{PLANS}/p/deck", content=deck, headers=CSV),
            403, "forbidden")
    assert (await world.a.admin.get(f"{PLANS}/p")).status_code == 404  # nothing was created


async def test_plan_and_rate_crud(api: Api, world: World) -> None:
    admin = world.a.admin
    r = await admin.post(PLANS, json={"plan_id": "gold", "name": "Gold"})
    assert r.status_code == 201 and r.json()["currency"] == "USD"
    problem(await admin.post(PLANS, json={"plan_id": "gold"}), 409, "plan_exists")
    rate = {"prefix": "4420", "price_per_minute": "0.0500", "first_increment": 30,
            "next_increment": 6, "band": {"name": "peak", "weekdays": [0, 1, 2, 3, 4],
                                          "start": "08:00", "end": "18:00"}}
    r = await admin.post(f"{PLANS}/gold/rates", json=rate)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["band"] == {"name": "peak", "weekdays": [0, 1, 2, 3, 4], "start": "08:00",
                                "end": "18:00"}
    problem(await admin.post(f"{PLANS}/gold/rates", json=rate), 409, "duplicate_rate")
    r = await admin.put(f"{PLANS}/gold/rates/{rid}", json={**rate, "price_per_minute": "0.06"})
    assert r.status_code == 200 and r.json()["price_per_minute"] == "0.06"
    assert (await admin.get(f"{PLANS}/gold/rates/{rid}")).json()["price_per_minute"] == "0.06"
    problem(await admin.post(f"{PLANS}/gold/rates", json={**rate, "prefix": "44",
                                                          "first_increment": 0}), 422)
    assert (await admin.get(f"{PLANS}/gold/rates?prefix=44")).json()["items"][0]["id"] == rid
    # a plan in use cannot be deleted; its currency must match the account's
    r = await admin.patch("/v1/tenants/acme/accounts/a1", json={"rate_plan_id": "gold"})
    assert r.status_code == 200, r.text
    problem(await admin.delete(f"{PLANS}/gold"), 409, "plan_in_use")
    await admin.post(PLANS, json={"plan_id": "euro", "currency": "EUR"})
    problem(await admin.patch("/v1/tenants/acme/accounts/a2", json={"rate_plan_id": "euro"}),
            422, "invalid_request")
    assert (await admin.delete(f"{PLANS}/gold/rates/{rid}")).status_code == 204
    problem(await admin.get(f"{PLANS}/gold/rates/{rid}"), 404)
    assert (await admin.delete(f"{PLANS}/euro")).status_code == 204
    actions = [a["action"] for a in (await admin.get("/v1/tenants/acme/audit?limit=500")).json()
               ["items"]]
    for action in ("rate_plan.create", "rate.create", "rate.update", "rate.delete",
                   "rate_plan.delete", "rate_plan.import"):
        assert action in actions


async def test_pricing_a_hypothetical_call(api: Api, world: World) -> None:
    agent = world.a.clients["agent"]
    url = "/v1/tenants/acme/pricing"
    # UK: 0.12/min, billed 60 then 1 s; 61 s cost 0.122
    r = await agent.post(url, json={"destination": "+44 20 7946 0000", "plan_id": "std",
                                    "duration_seconds": 61, "amount": "1.00"})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["rate"]["prefix"] == "44" and p["billed_seconds"] == 61 and p["cost"] == "0.122"
    assert p["max_duration_seconds"] == 500  # 1.00 / 0.12 per minute
    # with the account: its plan and its available funds (10.00 -> 83:20 of UK)
    r = await agent.post(url, json={"destination": "442079460000", "account_id": "a1"})
    assert r.json()["amount"] == "10.00" and r.json()["max_duration_seconds"] == 5000
    r = await agent.post(url, json={"destination": "33123456789", "plan_id": "std"})
    assert r.json()["rate"] is None and r.json()["cost"] == "0.00"
    problem(await agent.post(url, json={"destination": "abc", "plan_id": "std"}), 422)
    problem(await agent.post(url, json={"destination": "44"}), 422)
    problem(await agent.post(url, json={"destination": "44", "plan_id": "nope"}), 404)
