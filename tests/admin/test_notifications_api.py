"""Notification settings, channels, templates and the outbox through the admin API: passwords
never returned, templates validated on save (unknown variables and reaches for internals are
422s naming the problem), previews with sample data, a dead message resent once."""

from __future__ import annotations

import orjson
import pytest

from billing.secrets import generate_key
from tests.admin.conftest import Api, World, problem

T = "/v1/tenants/acme"
TPL = f"{T}/notification-templates/invoice.ready/sms/body/de"


async def test_settings_channels_and_templates(api: Api, world: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    admin, ops = world.a.admin, world.a.clients["ops"]
    r = await admin.put(f"{T}/notification-settings", json={"sms_alternate": True,
                                                            "locale": "de_DE"})
    assert r.status_code == 200 and r.json()["sms_alternate"] is True
    assert (await ops.get(f"{T}/notification-settings")).json()["locale"] == "de_DE"

    r = await admin.put(f"{T}/notification-channels/smtp", json={
        "host": "smtp.acme.example", "port": 587, "sender": "Acme <billing@acme.example>",
        "username": "billing", "password": "s3cret-smtp"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert "s3cret-smtp" not in r.text and r.json()["password_set"] is True
    problem(await admin.put(f"{T}/notification-channels/smpp", json={
        "host": "smsc.example", "port": 2775}), 422)  # fmt: skip
    problem(await ops.put(f"{T}/notification-channels/smtp", json={
        "host": "x.example", "port": 25, "sender": "x@x.example"}), 403)  # fmt: skip
    r = await admin.put(f"{T}/notification-channels/smtp", json={
        "host": "smtp2.acme.example", "port": 465, "sender": "b@acme.example",
        "security": "tls"})  # fmt: skip
    assert r.json()["password_set"] is True  # kept when not given again
    assert "s3cret" not in (await ops.get(f"{T}/notification-channels/smtp")).text

    good = "Rechnung {{ invoice_number }} über {{ amount_due|money }}, fällig {{ due_date|date }}"
    r = await admin.put(TPL, json={"source": good})
    assert r.status_code == 200, r.text
    bad = problem(await admin.put(TPL, json={"source": "Hallo {{ kundennummer }}"}), 422)
    assert "kundennummer" in bad["detail"]
    problem(await admin.put(TPL, json={"source": "{{ ''.__class__.__mro__ }}"}), 422)
    problem(await admin.put(TPL, json={"source": "{% for %}"}), 422)
    problem(await admin.put(f"{T}/notification-templates/no.such/sms/body/en",
                            json={"source": "x"}), 404)  # fmt: skip
    items = (await ops.get(f"{T}/notification-templates")).json()["items"]
    assert [(i["event"], i["language"], i["source"]) for i in items] == [
        ("invoice.ready", "de", good)]

    r = await ops.post(f"{T}/notification-templates/preview", json={
        "event": "invoice.ready", "channel": "sms", "part": "body", "source": good})
    assert r.status_code == 200, r.text
    assert "€" in r.json()["text"] or "$" in r.json()["text"]
    assert r.json()["fell_back"] is False
    r = await ops.post(f"{T}/notification-templates/preview", json={
        "event": "payment.succeeded", "channel": "email", "part": "subject"})
    assert r.status_code == 200 and r.json()["text"]
    problem(await ops.post(f"{T}/notification-templates/preview", json={
        "event": "invoice.ready", "channel": "sms", "part": "html"}), 422)  # fmt: skip
    assert (await admin.delete(TPL)).status_code == 204
    problem(await admin.delete(TPL), 404)


async def test_outbox_search_and_resend(api: Api, world: World) -> None:
    pool = api.engine.pool
    nid = await pool.fetchval(
        "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
        " recipient, language, context, status, last_error, next_attempt_at, created_at)"
        " VALUES ('acme', 'a1', 'ev1', 'invoice.ready', 'email', 'a1@example.com', 'en', '{}',"
        " 'dead', '550 no such user', now(), now()) RETURNING notification_id")  # fmt: skip
    ops, admin = world.a.clients["ops"], world.a.admin
    items = (await ops.get(f"{T}/notifications?status=dead")).json()["items"]
    assert [i["notification_id"] for i in items] == [nid]
    assert (await ops.get(f"{T}/notifications?status=sent")).json()["items"] == []
    problem(await ops.post(f"{T}/notifications/{nid}/resend"), 403)
    r = await admin.post(f"{T}/notifications/{nid}/resend")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    problem(await admin.post(f"{T}/notifications/{nid}/resend"), 409)
    problem(await admin.post(f"{T}/notifications/999999/resend"), 404)


async def test_sms_quiet_hours_and_rate_limit_settings(api: Api, world: World) -> None:
    admin, pool = world.a.admin, api.engine.pool
    r = await admin.put(f"{T}/notification-settings", json={
        "quiet_start": "21:00", "quiet_end": "08:00", "sms_per_minute": 30})  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["quiet_start"], r.json()["quiet_end"]) == ("21:00:00", "08:00:00")
    row = await pool.fetchrow("SELECT quiet_start::text, sms_per_minute FROM"
                                    " notification_settings WHERE tenant_id = 'acme'")  # fmt: skip
    assert tuple(row) == ("21:00:00", 30)
    for bad, says in [({"quiet_start": "21:00"}, "go together"),
                      ({"quiet_start": "08:00", "quiet_end": "08:00"}, "must differ"),
                      ({"quiet_start": "21:00+02:00", "quiet_end": "08:00"}, "no offset"),
                      ({"sms_per_minute": 0}, "greater than or equal"),
                      ({"quiet_start": "25:00", "quiet_end": "08:00"}, "time")]:
        body = problem(await admin.put(f"{T}/notification-settings", json=bad), 422)
        assert says in orjson.dumps(body).decode(), (bad, body)
    r = await admin.put(f"{T}/notification-settings", json={})  # back to none
    assert r.json()["quiet_start"] is None and r.json()["sms_per_minute"] is None
