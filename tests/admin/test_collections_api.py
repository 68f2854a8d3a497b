"""Collection agents through the admin API: tasks assigned by area, an agent's key confined to
its own tasks, visits with presets, a collection retried 10 times at once recorded once (one
payment, one receipt per number), the receipt a prepaid top-up would also give suppressed,
a postpaid collection allocated to the open invoice, the supervisor's report and the audit."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import httpx
import orjson

from admin_api.context import EngineClock
from billing.jobs import BillingJobs
from notifications.relay import Relay
from tests.admin.conftest import Api, World, problem
from tests.admin.test_invoices import T, billed


async def _agents(api: Api, world: World) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """Two agents of acme (north: the world's agent key; south: a new one); -> their clients."""
    admin = world.a.admin
    r = await admin.post(f"{T}/keys", json={"role": "agent", "name": "south"})
    assert r.status_code == 201, r.text
    south_key, south_secret = r.json()["key_id"], r.json()["secret"]
    for agent_id, area, key in (("g1", "north", world.a.key_ids["agent"]),
                                ("g2", "south", south_key)):
        r = await admin.put(f"{T}/collection-agents/{agent_id}", json={
            "name": f"Agent {agent_id}", "area": area, "key_id": key})
        assert r.status_code == 200, r.text
    return world.a.clients["agent"], api.client(south_secret)


async def test_agents_tasks_and_exactly_once_collection(api: Api, world: World) -> None:
    admin, ops = world.a.admin, world.a.clients["ops"]
    pool = api.engine.pool
    g1, g2 = await _agents(api, world)
    r = await admin.patch(f"{T}/accounts/a1", json={
        "primary_mobile": "+447700900001", "alternate_mobile": "+447700900002"})
    assert r.status_code == 200, r.text
    r = await admin.post(f"{T}/collection-tasks", json={
        "account_id": "a1", "kind": "renewal", "area": "north", "amount_expected": "15.00",
        "address": "1 High St"})
    assert r.status_code == 201, r.text
    north = r.json()
    assert north["agent_id"] == "g1" and north["status"] == "assigned"
    r = await admin.post(f"{T}/collection-tasks", json={
        "account_id": "a2", "kind": "pickup", "area": "south"})
    south = r.json()
    assert south["agent_id"] == "g2"
    orphan = (await admin.post(f"{T}/collection-tasks", json={
        "account_id": "a2", "kind": "pickup", "area": "east"})).json()
    assert orphan["agent_id"] is None and orphan["status"] == "open"
    problem(await admin.post(f"{T}/collection-tasks", json={
        "account_id": "nobody", "kind": "pickup"}), 422)
    problem(await ops.post(f"{T}/collection-tasks", json={
        "account_id": "a1", "kind": "pickup"}), 403)

    # An agent sees its own tasks only: another's is not found, never forbidden.
    mine = (await g1.get(f"{T}/collection-tasks")).json()["items"]
    assert [t["task_id"] for t in mine] == [north["task_id"]]
    assert (await g1.get(f"{T}/collection-tasks?agent_id=g2")).json()["items"] == []
    theirs = f"{T}/collection-tasks/{south['task_id']}"
    problem(await g1.get(theirs), 404)
    problem(await g1.get(theirs + "/quote"), 404)
    problem(await g1.post(theirs + "/visits", json={"preset": "customer_absent"}), 404)
    problem(await g1.post(theirs + "/collections", json={"amount": "1.00", "method": "cash"},
                          headers={"Idempotency-Key": "steal"}), 404)  # fmt: skip
    all_tasks = (await ops.get(f"{T}/collection-tasks")).json()["items"]
    assert len(all_tasks) == 3

    # The balance transfer shown before confirming: 10.00 of balance pays the 15.00 renewal.
    task = f"{T}/collection-tasks/{north['task_id']}"
    q = (await g1.get(task + "/quote")).json()
    assert (q["price"], q["available"], q["transferred"], q["to_collect"], q["left_over"]) == (
        "15.00", "10.00", "10.00", "5.00", "0.00")

    problem(await g1.post(task + "/visits", json={"preset": "promised_to_pay"}), 422)
    problem(await g1.post(task + "/visits", json={"preset": "collected"}), 422)
    problem(await g1.post(task + "/visits", json={"preset": "no_such"}), 422)
    today = date.fromtimestamp(api.engine.service.clock() / 1000)
    r = await g1.post(task + "/visits", json={
        "preset": "promised_to_pay", "promised_on": (today + timedelta(days=2)).isoformat(),
        "comment": "back on Friday"})
    assert r.status_code == 201, r.text
    assert r.json()["task"]["status"] == "promised"

    # The phone retries one collection 10 times at once: one payment, one visit.
    body = {"amount": "5.00", "method": "cash", "comment": "paid at the door"}
    answers = await asyncio.gather(*(g1.post(task + "/collections", json=body,
                                             headers={"Idempotency-Key": "phone-1"})
                                     for _ in range(10)))  # fmt: skip
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [a.text for a in answers]
    assert len({a.json()["payment_id"] for a in answers}) == 1
    first = next(a.json() for a in answers if a.status_code == 201)
    assert first["receipt_number"].startswith("CR-") and first["agent_name"] == "Agent g1"
    assert first["task"]["status"] == "collected"
    assert await pool.fetchval("SELECT count(*) FROM payments WHERE tenant_id = 'acme'"
                               " AND account_id = 'a1'") == 1  # fmt: skip
    state = await api.engine.store.state("acme", "a1")
    assert state is not None and state.balance == 15_000_000  # 10.00 + 5.00, once
    problem(await g1.post(task + "/collections", json={**body, "amount": "6.00"},
                          headers={"Idempotency-Key": "phone-1"}), 409)  # fmt: skip
    problem(await g1.post(task + "/collections", json=body,
                          headers={"Idempotency-Key": "phone-2"}), 409, "task_closed")
    problem(await g1.post(task + "/collections", json=body), 422)  # the key is required

    # One receipt per number (primary and alternate); the top-up's own confirmation is not
    # sent on top of it, neither from the payment nor from the receipt document.
    relay = Relay(pool, now=EngineClock(api.engine).now)
    await relay.run_once()
    await BillingJobs(pool, api.engine.store).tick()
    await relay.run_once()
    sent = await pool.fetch("SELECT event, channel, recipient, context FROM notifications"
                            " WHERE tenant_id = 'acme' AND account_id = 'a1'")  # fmt: skip
    receipts = sorted((s["recipient"], s["context"]) for s in sent
                      if s["event"] == "collection.receipt")  # fmt: skip
    assert [r[0] for r in receipts] == ["+447700900001", "+447700900002"]
    assert all(first["receipt_number"] in r[1] for r in receipts)
    others = [orjson.loads(s["context"]) for s in sent if s["event"] != "collection.receipt"]
    assert [(o["amount"]) for o in others] == [1000]  # the seed top-up's, not the collection's

    # Supervisors see each agent's day and every agent action, which the audit log holds.
    day = today.isoformat()
    rep = (await ops.get(f"{T}/reports/collections?from={day}&to={day}")).json()
    (g1_day,) = [d for d in rep["days"] if d["agent_id"] == "g1"]
    assert (g1_day["assigned"], g1_day["visits"], g1_day["collections"]) == (1, 2, 1)
    assert g1_day["collected"] == [{"method": "cash", "currency": "USD", "amount": "5.00"}]
    problem(await ops.get(f"{T}/reports/collections?from={day}&to=2000-01-01"), 422)
    acts = (await g2.get(f"{T}/collection-actions?agent_id=g1")).json()["items"]
    assert acts == []
    acts = (await admin.get(f"{T}/collection-actions?agent_id=g1&limit=1")).json()
    assert acts["items"][0]["outcome"] == "promised" and acts["next_cursor"]
    more = (await admin.get(f"{T}/collection-actions?agent_id=g1&cursor="
                            f"{acts['next_cursor']}")).json()["items"]  # fmt: skip
    assert [a["outcome"] for a in more] == ["collected"]
    audited = await pool.fetch("SELECT action FROM audit_log WHERE tenant_id = 'acme' AND"
                               " key_id = $1 ORDER BY id", world.a.key_ids["agent"])
    assert [a["action"] for a in audited] == ["collection_task.visit",
                                              "collection_task.collect"]


async def test_presets_and_keys_without_agent(api: Api, world: World) -> None:
    admin = world.a.admin
    got = (await world.a.clients["agent"].get(f"{T}/collection-presets")).json()
    assert got["built_in"] is True and got["presets"][0]["outcome"] == "collected"
    problem(await world.a.clients["agent"].get(f"{T}/collection-tasks"), 403)  # no agent yet
    problem(await admin.put(f"{T}/collection-presets", json={"presets": [
        {"code": "absent", "label": "Absent", "outcome": "absent"}]}), 422)  # none collected
    problem(await admin.put(f"{T}/collection-presets", json={"presets": [
        {"code": "paid", "label": "Paid", "outcome": "collected"},
        {"code": "paid", "label": "Again", "outcome": "collected"}]}), 422)
    r = await admin.put(f"{T}/collection-presets", json={"presets": [
        {"code": "paid", "label": "Paid", "outcome": "collected"},
        {"code": "dog", "label": "Dog at the gate", "outcome": "other"}]})
    assert r.status_code == 200 and r.json()["built_in"] is False, r.text
    problem(await admin.put(f"{T}/collection-agents/g9", json={
        "name": "x", "key_id": world.a.key_ids["ops"]}), 422)  # not an agent key


async def test_postpaid_collection_pays_the_open_invoice(api: Api, finance_world: World) -> None:
    world = finance_world
    invoice_id, _ = await billed(api, world)
    fin, admin = world.a.clients["finance"], world.a.admin
    assert (await fin.post(f"{T}/invoices/{invoice_id}/finalize")).status_code == 200
    g1, _ = await _agents(api, world)
    task = (await admin.post(f"{T}/collection-tasks", json={
        "account_id": "p1", "kind": "pickup", "area": "north"})).json()
    url = f"{T}/collection-tasks/{task['task_id']}"
    q = (await g1.get(url + "/quote")).json()
    assert (q["owed"], q["to_collect"]) == ("23.23", "23.23")
    r = await g1.post(url + "/collections", json={"amount": "23.23", "method": "cheque",
                                                  "reference": "chq 7"},
                      headers={"Idempotency-Key": "c-1"})  # fmt: skip
    assert r.status_code == 201, r.text
    pay = (await fin.get(f"{T}/payments/{r.json()['payment_id']}")).json()
    assert pay["allocations"] == [{"invoice_id": invoice_id, "amount": "23.23", "live": True}]
    assert (await fin.get(f"{T}/invoices/{invoice_id}")).json()["status"] == "paid"


async def test_a_customer_asks_for_a_pickup(api: Api, world: World) -> None:
    admin = world.a.admin
    g1, _ = await _agents(api, world)
    r = await admin.post(f"{T}/accounts/a1/self-service-tokens")
    assert r.status_code == 201, r.text
    me = api.client(r.json()["token"])
    r = await me.post("/v1/self/pickup-requests", json={"address": "1 High St",
                                                         "note": "after 5 pm"})
    assert r.status_code == 201, r.text
    asked = r.json()
    assert (asked["account_id"], asked["kind"], asked["status"]) == ("a1", "pickup", "open")
    for _ in range(2):
        assert (await me.post("/v1/self/pickup-requests", json={})).status_code == 201
    problem(await me.post("/v1/self/pickup-requests", json={}), 409, "too_many_pickups")
    problem(await world.a.clients["ops"].post("/v1/self/pickup-requests", json={}), 401)
    # A supervisor hands it to an agent, who sees it now.
    url = f"{T}/collection-tasks/{asked['task_id']}"
    assert (await g1.get(url)).status_code == 404
    r = await admin.post(url + "/assign", json={"agent_id": "g1"})
    assert r.status_code == 200 and r.json()["status"] == "assigned", r.text
    assert (await g1.get(url)).json()["task_id"] == asked["task_id"]
    problem(await admin.post(url + "/assign", json={"agent_id": "nobody"}), 422)
    r = await admin.post(url + "/cancel")
    assert r.json()["status"] == "cancelled"
    problem(await admin.post(url + "/cancel"), 409, "task_closed")
