"""Payments through the admin API: a finalized invoice paid in part, then in full with the rest
to credit; the same Idempotency-Key answers the first payment; a bounced cheque reopens the
invoice; receivables show what is owed; roles and bad input are refused."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pypdf

from tests.admin.conftest import Api, World, problem
from tests.admin.test_invoices import T, billed


async def test_pay_replay_reverse_and_receivables(api: Api, finance_world: World) -> None:
    world = finance_world
    invoice_id, _ = await billed(api, world)
    fin, ops = world.a.clients["finance"], world.a.clients["ops"]
    assert (await fin.post(f"{T}/invoices/{invoice_id}/finalize")).status_code == 200
    pay = f"{T}/accounts/p1/payments"
    r = await fin.get(f"{T}/accounts/p1/receivables")
    assert r.status_code == 200, r.text
    assert r.json()["open_total"] == "23.23" and r.json()["credit"] == "0.00"

    body = {"method": "cheque", "amount": "10.00", "currency": "USD", "reference": "chq 0042"}
    r = await fin.post(pay, json=body, headers={"Idempotency-Key": "p-1"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["allocations"] == [{"invoice_id": invoice_id, "amount": "10.00", "live": True}]
    again = await fin.post(pay, json=body, headers={"Idempotency-Key": "p-1"})
    assert again.status_code == 200 and again.json()["payment_id"] == first["payment_id"]
    assert again.json()["replayed"] is True
    problem(await fin.post(pay, json={**body, "amount": "11.00"},
                           headers={"Idempotency-Key": "p-1"}), 409)  # fmt: skip
    problem(await fin.post(pay, json=body), 422)  # the key is required
    problem(await fin.post(pay, json={**body, "currency": "EUR"},
                           headers={"Idempotency-Key": "p-eur"}), 422)  # fmt: skip
    problem(await fin.post(pay, json={**body, "amount": "1.001"},
                           headers={"Idempotency-Key": "p-dec"}), 422)  # fmt: skip
    problem(await ops.post(pay, json=body, headers={"Idempotency-Key": "p-ops"}), 403)
    inv = (await fin.get(f"{T}/invoices/{invoice_id}")).json()
    assert inv["status"] == "partially_paid"

    r = await fin.post(pay, json={"method": "card", "amount": "20.00", "currency": "USD"},
                       headers={"Idempotency-Key": "p-2"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["credited"] == "6.77"
    second = r.json()["payment_id"]
    owed = (await fin.get(f"{T}/accounts/p1/receivables")).json()
    assert owed["open_total"] == "0.00" and owed["credit"] == "6.77" and owed["invoices"] == []
    assert (await fin.get(f"{T}/invoices/{invoice_id}")).json()["status"] == "paid"

    url = f"{T}/payments/{first['payment_id']}"
    r = await fin.post(url + "/reverse", json={"reason": "cheque bounced"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "reversed" and not r.json()["allocations"][0]["live"]
    problem(await fin.post(url + "/refund", json={"reason": "again"}), 409)
    owed = (await fin.get(f"{T}/accounts/p1/receivables")).json()
    assert owed["open_total"] == "10.00"
    assert owed["invoices"][0]["invoice_id"] == invoice_id
    assert (await fin.get(f"{T}/invoices/{invoice_id}")).json()["status"] == "partially_paid"

    listed = (await ops.get(f"{T}/payments?limit=1")).json()  # readers see payments
    assert len(listed["items"]) == 1 and listed["next_cursor"]
    rest = (await ops.get(f"{T}/payments?limit=5&cursor={listed['next_cursor']}")).json()
    seen = [p["payment_id"] for p in listed["items"] + rest["items"]]
    assert sorted(seen) == sorted([first["payment_id"], second]) and rest["next_cursor"] is None
    assert (await fin.get(pay)).json()["items"][0]["payment_id"] == first["payment_id"]
    problem(await fin.get(f"{T}/payments/pay_{'0' * 32}"), 404)
    audit = (await world.a.admin.get(f"{T}/audit?limit=100")).json()["items"]
    assert {"payment.record", "payment.reverse"} <= {a["action"] for a in audit}

    # Aging as the books stood: on the due date + 45 days the reopened 10.00 is 31-60 days old
    due = date.fromisoformat(inv["due_on"])
    r = await ops.get(f"{T}/reports/aging?as_of={due + timedelta(days=45)}")
    assert r.status_code == 200, r.text
    (row,) = r.json()["accounts"]
    assert (row["account_id"], row["outstanding"], row["31-60"], row["current"]) == (
        "p1", "10.00", "10.00", "0.00")
    assert row["invoiced"] == "23.23" and row["paid"] == "13.23"
    assert r.json()["totals"][0]["outstanding"] == "10.00"
    day_before = date.fromisoformat(inv["issued_on"]) - timedelta(days=1)
    before = await ops.get(f"{T}/reports/aging?as_of={day_before}")
    assert before.json()["accounts"] == []  # not issued yet on that day
    csv_text = (await ops.get(f"{T}/reports/aging?as_of={due}&format=csv")).text
    assert csv_text.splitlines()[0].startswith("account_id,currency,invoiced,paid")
    assert csv_text.splitlines()[1].startswith("p1,USD,23.23,13.23,0.00,10.00,10.00")
    problem(await ops.get(f"{T}/reports/aging?account_id=b1"), 404)  # B's account, A's key

    # Payments by method and day: the bounced cheque received and reversed, the card net
    day = date.fromisoformat(first["received_on"])
    r = await ops.get(f"{T}/reports/payments?from={day}&to={day + timedelta(days=1)}")
    assert r.status_code == 200, r.text
    by_method = {row["method"]: row for row in r.json()["rows"]}
    assert (by_method["cheque"]["received"], by_method["cheque"]["reversed"],
            by_method["cheque"]["net"]) == ("10.00", "10.00", "0.00")  # fmt: skip
    assert (by_method["card"]["payments"], by_method["card"]["net"]) == ("1", "20.00")
    csv_rows = (await ops.get(f"{T}/reports/payments?from={day}&to={day + timedelta(days=1)}"
                              "&format=csv")).text.splitlines()  # fmt: skip
    assert csv_rows[0] == "day,method,currency,payments,received,reversed,refunded,net"
    assert len(csv_rows) == 3
    problem(await ops.get(f"{T}/reports/payments?from={day}&to={day}"), 422)


async def test_credit_note_through_the_api(api: Api, finance_world: World) -> None:
    world = finance_world
    invoice_id, _ = await billed(api, world)
    fin, ops = world.a.clients["finance"], world.a.clients["ops"]
    url = f"{T}/invoices/{invoice_id}"
    body = {"lines": [{"position": 1, "amount": "5.00", "reason": "outage on 3 May"}]}
    problem(await fin.post(url + "/credit-notes", json=body,
                           headers={"Idempotency-Key": "cn-draft"}), 409)  # a draft  # fmt: skip
    assert (await fin.post(url + "/finalize")).status_code == 200
    detail = (await fin.get(url)).json()
    fee = next(ln for ln in detail["lines"] if ln["kind"] == "recurring")
    body["lines"][0]["position"] = fee["position"]
    r = await fin.post(url + "/credit-notes", json=body, headers={"Idempotency-Key": "cn-1"})
    assert r.status_code == 201, r.text
    cn = r.json()
    assert (cn["total"], cn["applied"], cn["to_credit"]) == ("5.00", "5.00", "0.00")
    assert cn["number"] == f"ACCN-{cn['issued_on'][:4]}-000001"
    again = await fin.post(url + "/credit-notes", json=body, headers={"Idempotency-Key": "cn-1"})
    assert again.status_code == 200 and again.json()["credit_note_id"] == cn["credit_note_id"]
    too_much = {"lines": [{"position": fee["position"], "amount": "15.01", "reason": "x"}]}
    problem(await fin.post(url + "/credit-notes", json=too_much,
                           headers={"Idempotency-Key": "cn-2"}), 422)  # fmt: skip
    problem(await ops.post(url + "/credit-notes", json=body,
                           headers={"Idempotency-Key": "cn-ops"}), 403)  # fmt: skip
    owed = (await fin.get(f"{T}/accounts/p1/receivables")).json()
    assert owed["open_total"] == "18.23"
    note = f"{T}/credit-notes/{cn['credit_note_id']}"
    assert (await ops.get(note)).json()["lines"][0]["reason"] == "outage on 3 May"
    assert [n["credit_note_id"] for n in (await ops.get(f"{T}/credit-notes")).json()["items"]] \
        == [cn["credit_note_id"]]
    html = (await ops.get(note + "/document.html")).text
    assert cn["number"] in html and "outage on 3 May" in html and "-$5.00" in html
    r = await ops.get(note + "/document.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    assert "Credit note" in text and cn["number"] in text and detail["number"] in text


async def test_ladder_suspends_and_a_payment_restores_at_once(
    api: Api, finance_world: World
) -> None:
    world = finance_world
    await billed(api, world)  # p1 enrolled on a bill plan
    fin, admin = world.a.clients["finance"], world.a.admin
    pool = api.engine.pool
    due = date.today() - timedelta(days=20)
    await pool.execute(
        "INSERT INTO invoices (invoice_id, tenant_id, account_id, currency, status, number,"
        " number_seq, issued_on, due_on, subtotal, total, amount_due) VALUES ($1, 'acme', 'p1',"
        " 'USD', 'finalized', 'OLD-1', 900, $2, $3, 4000, 4000, 4000)",
        "inv_" + "0" * 31 + "1", due - timedelta(days=14), due,
    )
    ladder = {"steps": [{"name": "reminder", "min_days": 1},
                        {"name": "outgoing", "min_days": 15, "status": "outgoing_suspended",
                         "late_fee": {"fixed": 250}}]}  # fmt: skip
    problem(await fin.put(f"{T}/dunning-ladder", json={"steps": [
        {"name": "a", "min_days": 9}, {"name": "b", "min_days": 2}]}), 422)  # fmt: skip
    r = await fin.put(f"{T}/dunning-ladder", json=ladder)
    assert r.status_code == 200, r.text
    assert (await fin.get(f"{T}/dunning-ladder")).json()["steps"][1]["late_fee"]["fixed"] == 250
    r = await fin.post(f"{T}/accounts/p1/dunning/resume")  # evaluates now
    assert r.status_code == 200, r.text
    assert r.json()["step"] == "outgoing"
    assert [e["step"] for e in r.json()["entries"]] == ["outgoing"]
    assert (await admin.get(f"{T}/accounts/p1")).json()["status"] == "outgoing_suspended"
    state = await api.engine.store.state("acme", "p1")
    assert state is not None and state.status == "outgoing_suspended"
    r = await fin.post(f"{T}/accounts/p1/payments", headers={"Idempotency-Key": "ladder-pay"},
                       json={"method": "cash", "amount": "40.00", "currency": "USD"})
    assert r.status_code == 201, r.text
    # the payment's response comes after the ladder moved: service is back already
    assert (await admin.get(f"{T}/accounts/p1")).json()["status"] == "active"
    state = await api.engine.store.state("acme", "p1")
    assert state is not None and state.status == "active"
    assert (await fin.get(f"{T}/accounts/p1/dunning")).json()["step"] is None
    charges = (await fin.get(f"{T}/accounts/p1/charges")).json()["items"]
    assert [(c["kind"], c["amount"]) for c in charges] == [("late_fee", "2.50")]


async def test_a_prepaid_accounts_payment_tops_it_up_once(api: Api, finance_world: World) -> None:
    fin = finance_world.a.clients["finance"]
    before = (await api.engine.store.state("acme", "a1"))
    assert before is not None
    pay = f"{T}/accounts/a1/payments"
    body = {"method": "cash", "amount": "12.50", "currency": "USD", "reference": "counter 3"}
    r = await fin.post(pay, json=body, headers={"Idempotency-Key": "pre-1"})
    assert r.status_code == 201, r.text
    assert r.json()["topped_up"] is True and r.json()["allocations"] == []
    again = await fin.post(pay, json=body, headers={"Idempotency-Key": "pre-1"})
    assert again.status_code == 200 and again.json()["payment_id"] == r.json()["payment_id"]
    after = await api.engine.store.state("acme", "a1")
    assert after is not None and after.balance - before.balance == 12_500_000  # once
    problem(await fin.post(pay, json={**body, "allocations": [
        {"invoice_id": "inv_x", "amount": "1.00"}]}, headers={"Idempotency-Key": "pre-2"}),
        422)  # fmt: skip
    problem(await fin.post(pay, json={**body, "method": "direct_debit"},
                           headers={"Idempotency-Key": "pre-3"}), 422)  # fmt: skip
    problem(await fin.post(f"{T}/payments/{r.json()['payment_id']}/reverse",
                           json={"reason": "bounced"}), 409)  # fmt: skip
    ops = await api.engine.pool.fetch("SELECT kind, amount, method FROM money_operations"
                                      " WHERE account_id = 'a1' AND kind = 'topup'"
                                      " AND reference = 'counter 3'")  # fmt: skip
    assert [(o["amount"], o["method"]) for o in ops] == [(12_500_000, "cash")]
