"""Inbound SMS through the admin API: the tenant's number and keywords, and the HTTP SMS
gateway's signed webhooks. A text posted by the gateway is answered by the keywords exactly as
over SMPP (the reply is an outbox row), a redelivered message id is answered once, and nothing
unsigned, stale, signed with another secret or for another number is acted upon. A delivery
status settles the tenant's own message and no other tenant's."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from billing.secrets import generate_key
from notifications.channels.http_sms import SIGNATURE_HEADER, sign
from tests.admin.conftest import Api, World, problem

T = "/v1/tenants/acme"
SECRET = "acme-gateway-webhook-secret"
SHORTCODE = "+15550001234"


async def post(c: httpx.AsyncClient, hook: str, payload: dict[str, str], *,
               secret: str = SECRET, at: int | None = None,
               body: bytes | None = None) -> httpx.Response:  # fmt: skip
    """``payload`` signed as the gateway signs it (``body``: what is sent instead)."""
    signed = orjson.dumps(payload)
    stamp = int(datetime.now(UTC).timestamp()) if at is None else at
    return await c.post(hook, content=signed if body is None else body, headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, stamp, signed)})


@pytest.fixture
async def acme(api: Api, world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("CE_SECRETS_KEY", generate_key())
    admin = world.a.admin
    r = await admin.patch(f"{T}/accounts/a1", json={"primary_mobile": "+12125550101",
                                                    "alternate_mobile": "+12125550102"})
    assert r.status_code == 200, r.text
    r = await admin.put(f"{T}/inbound-settings", json={"destination": "+1 555 000 1234",
                                                       "support_contact": "+1 800 555"})
    assert r.status_code == 200 and r.json()["destination"] == SHORTCODE, r.text
    r = await admin.put(f"{T}/notification-channels/http_sms", json={
        "url": "https://sms.acme.example/send", "auth": "bearer", "token": "acme-token",
        "sender": "ACME", "webhook_secret": SECRET})  # fmt: skip
    assert r.status_code == 200, r.text
    assert SECRET not in r.text and "acme-token" not in r.text
    assert r.json()["webhook_secret_set"] is True and r.json()["password_set"] is True
    return world


async def replies(api: Api) -> list[dict[str, object]]:
    rows = await api.engine.pool.fetch(
        "SELECT account_id, recipient, event, source_event FROM notifications WHERE"
        " tenant_id = 'acme' AND event LIKE 'sms.%' ORDER BY notification_id")  # fmt: skip
    return [dict(r) for r in rows]


async def test_settings_and_keywords(api: Api, acme: World) -> None:
    admin, ops = acme.a.admin, acme.a.clients["ops"]
    assert (await ops.get(f"{T}/inbound-settings")).json()["support_contact"] == "+1 800 555"
    problem(await ops.put(f"{T}/inbound-settings", json={"destination": "+15550009"}), 403)
    r = await acme.b.admin.put("/v1/tenants/zeta/inbound-settings",
                               json={"destination": "15550001234"})  # fmt: skip
    problem(r, 409, "destination_taken")  # one number, one tenant: however it is written
    problem(await admin.put(f"{T}/inbound-settings", json={"destination": "+"}), 422)

    r = await admin.put(f"{T}/inbound-keywords/Saldo", json={"meaning": "balance",
                                                              "language": "de"})  # fmt: skip
    assert r.json() == {"keyword": "SALDO", "meaning": "balance", "language": "de"}
    problem(await admin.put(f"{T}/inbound-keywords/help", json={"meaning": "help"}), 422)
    problem(await ops.put(f"{T}/inbound-keywords/x", json={"meaning": "help"}), 403)
    items = (await ops.get(f"{T}/inbound-keywords")).json()["items"]
    assert [i["keyword"] for i in items] == ["SALDO"]
    assert (await admin.delete(f"{T}/inbound-keywords/saldo")).status_code == 204
    problem(await admin.delete(f"{T}/inbound-keywords/saldo"), 404)
    assert (await ops.get(f"{T}/inbound-keywords")).json()["items"] == []


async def test_a_signed_text_is_answered_once_and_logged(api: Api, acme: World) -> None:
    hook = "/v1/sms-gateway/acme/inbound"
    c = api.client(None)
    text = {"from": "+12125550102", "to": "15550001234", "text": " balance ", "message_id": "g1"}
    r = await post(c, hook, text)
    assert r.status_code == 200 and r.json()["outcome"] == "logged", r.text
    r = await post(c, hook, text)  # the gateway retried
    assert r.status_code == 200, r.text
    r = await post(c, hook, text | {"from": "+19990000000", "message_id": "g2"})
    assert r.status_code == 200, r.text
    (reply,) = await replies(api)  # the unknown sender gets no reply (none configured)
    assert (reply["account_id"], reply["recipient"], reply["event"]) == \
        ("a1", "+12125550102", "sms.balance_reply")  # fmt: skip
    log = (await acme.a.clients["ops"].get(f"{T}/inbound-messages")).json()["items"]
    assert [(m["number"], m["account_id"], m["outcome"]) for m in log] == [
        ("+19990000000", None, "no_reply"), ("+12125550102", "a1", "replied")]
    assert reply["source_event"] == f"inbound:{log[1]['id']}"
    only = (await acme.a.clients["ops"].get(f"{T}/inbound-messages",
                                           params={"outcome": "replied"})).json()["items"]
    assert [m["id"] for m in only] == [log[1]["id"]]
    page = (await acme.a.clients["ops"].get(f"{T}/inbound-messages",
                                           params={"limit": 1})).json()  # fmt: skip
    rest = (await acme.a.clients["ops"].get(
        f"{T}/inbound-messages", params={"cursor": page["next_cursor"]})).json()["items"]
    assert [m["id"] for m in page["items"] + rest] == [m["id"] for m in log]


async def test_nothing_unverified_is_acted_upon(api: Api, acme: World) -> None:
    hook = "/v1/sms-gateway/acme/inbound"
    c = api.client(None)
    text = {"from": "+12125550101", "to": SHORTCODE, "text": "BALANCE", "message_id": "g9"}
    body = orjson.dumps(text)
    plain = {"Content-Type": "application/json"}
    problem(await c.post(hook, content=body, headers=plain), 401, "unverified")
    problem(await post(c, hook, text, secret="another-secret-entirely"), 401)
    stale = int(datetime.now(UTC).timestamp()) - 3600
    problem(await post(c, hook, text, at=stale), 401, "unverified")
    tampered = body.replace(b"BALANCE", b"HELP")
    problem(await post(c, hook, text, body=tampered), 401, "unverified")
    problem(await post(c, hook, text | {"to": "+15550009999"}), 422,
            "unknown_destination")
    problem(await post(c, hook, {"from": "+1"}), 422, "invalid_request")
    problem(await post(c, "/v1/sms-gateway/zeta/inbound", text), 404)
    assert await api.engine.pool.fetchval("SELECT count(*) FROM inbound_messages") == 0
    assert await replies(api) == []


async def test_a_status_settles_the_tenants_own_message_only(api: Api, acme: World) -> None:
    pool = api.engine.pool
    ids = {}
    for tenant, account, provider in (("acme", "a1", "gw-1"), ("zeta", "b1", "gw-2")):
        ids[tenant] = await pool.fetchval(
            "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
            " recipient, language, context, status, next_attempt_at, created_at) VALUES ($1,"
            " $3, $2, 'sms.help', 'sms', '+12125550101', 'en', '{}', 'sent', now(), now())"
            " RETURNING notification_id", tenant, f"s-{tenant}", account)  # fmt: skip
        await pool.execute("INSERT INTO notification_parts (notification_id, channel,"
                           " provider_id) VALUES ($1, 'sms', $2)", ids[tenant], provider)
    c = api.client(None)
    hook = "/v1/sms-gateway/acme/status"
    r = await post(c, hook, {"message_id": "gw-2", "status": "delivered"})
    assert r.json()["outcome"] == "ignored", r.text
    r = await post(c, hook, {"message_id": "gw-1", "status": "delivered"})
    assert r.json()["outcome"] == "recorded", r.text
    problem(await post(c, hook, {"message_id": "gw-1", "status": "maybe"}), 422)
    status = dict(await pool.fetch("SELECT tenant_id, status FROM notifications WHERE"
                                   " source_event LIKE 's-%'"))  # fmt: skip
    assert status == {"acme": "delivered", "zeta": "sent"}
