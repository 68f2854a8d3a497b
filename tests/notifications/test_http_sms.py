"""The HTTP SMS gateway channel against a real local HTTP server standing in for a provider, on
real Postgres: messages sent through the Dispatcher arrive once each with the right fields and
credentials (JSON and form bodies; bearer, basic and header auth), a 5xx, a 429 or a refused
connection is retried with the same Idempotency-Key, a 4xx is dead at once, an answer without
an id is dead (never sent again); the registry uses the gateway when no SMPP account is
enabled. And the pure parts: the request built, the id found, the webhook signature checked
(hypothesis: any tamper fails, within the tolerance passes)."""

from __future__ import annotations

import base64
import itertools
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from hypothesis import given
from hypothesis import strategies as st

from billing.clock import MovableClock
from billing.secrets import Secrets, generate_key
from charging_server.demo.loopback import LoopbackServer
from notifications.channel_registry import ChannelRegistry
from notifications.channels.http_sms import (
    HttpSmsChannel,
    HttpSmsSettings,
    PayloadInvalid,
    SignatureInvalid,
    build_request,
    outcome,
    provider_id,
    sign,
    verify,
    verify_inbound,
    verify_status,
)
from notifications.channels.model import Outgoing
from notifications.channels.sms import SmsChannel
from notifications.dispatcher import Dispatcher, Retry
from tests.billing import support
from tests.integration.fixtures import pool_fixture  # noqa: F401

AT = datetime(2026, 6, 1, 9, tzinfo=UTC)
TOKEN = "tok-provider-secret"
FIELDS = {"dst": "{to}", "src": "{from}", "msg": "{text}", "ref": "{reference}"}


@dataclass
class Provider(LoopbackServer):
    """A provider's send API: answers ``script[recipient]``'s statuses in turn, then a 200 with
    ``{"messages": [{"id": ...}]}``; every request is kept."""

    script: dict[str, list[int]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/sms"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/v2/sms", methods=["POST", "PUT"])
        async def send(request: Request) -> Response:
            raw = await request.body()
            ctype = request.headers.get("content-type", "")
            body = (json.loads(raw) if ctype == "application/json"
                    else dict(parse_qsl(raw.decode())))  # fmt: skip
            self.requests.append({"method": request.method, "headers": dict(request.headers),
                                  "body": body})  # fmt: skip
            to = str(body.get("dst", ""))
            if self.script.get(to):
                return Response(b'{"error": "scripted"}', status_code=self.script[to].pop(0))
            if to == "+4915100000077":
                return Response(b'{"accepted": true}', media_type="application/json")
            answer = {"messages": [{"id": f"prov-{next(self._ids)}", "to": to}]}
            return Response(orjson.dumps(answer), media_type="application/json")

        return app

    def sent_to(self, to: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["body"].get("dst") == to]


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with Provider() as p:
        yield p


def settings(provider: Provider, **over: Any) -> HttpSmsSettings:
    base: dict[str, Any] = {"url": provider.url, "auth": "bearer", "secret": TOKEN,
                            "fields": FIELDS, "sender": "ACME", "id_path": "messages.0.id"}
    return HttpSmsSettings(**(base | over))


async def render(r: asyncpg.Record) -> Outgoing:
    return Outgoing(r["notification_id"], r["tenant_id"], r["recipient"],
                    body=orjson.loads(r["context"])["text"])  # fmt: skip


async def queue(pool: asyncpg.Pool, key: str, to: str, text: str) -> int:
    nid: int = await pool.fetchval(
        "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
        " recipient, language, context, next_attempt_at, created_at) VALUES ('t1', 'a1', $1,"
        " 'invoice.ready', 'sms', $2, 'en', $3, $4, $4) RETURNING notification_id", key, to,
        orjson.dumps({"text": text}).decode(), AT)  # fmt: skip
    return nid


async def row(pool: asyncpg.Pool, nid: int) -> asyncpg.Record:
    r: asyncpg.Record = await pool.fetchrow("SELECT * FROM notifications WHERE"
                                            " notification_id = $1", nid)  # fmt: skip
    return r


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> MovableClock:
    await support.tenant(pool, "t1", "EUR")
    await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency) VALUES"
                       " ('t1', 'a1', 'EUR')")  # fmt: skip
    return MovableClock(AT)


def dispatcher(pool: asyncpg.Pool, channel: Any, clock: MovableClock) -> Dispatcher:
    return Dispatcher(pool, {"sms": channel}, render, now=clock.now,
                      retry=Retry(first=timedelta(seconds=10)))  # fmt: skip


@pytest.mark.parametrize(("auth", "body_format"), [("bearer", "json"), ("basic", "form"),
                                                   ("header", "json")])  # fmt: skip
async def test_each_message_arrives_once_with_its_fields_and_credentials(
    pool: asyncpg.Pool, tenant: MovableClock, provider: Provider, auth: str, body_format: str
) -> None:
    creds = {"bearer": {}, "basic": {"username": "acme"},
             "header": {"header_name": "X-Api-Key"}}[auth]  # fmt: skip
    channel = HttpSmsChannel(settings(provider, auth=auth, body_format=body_format, **creds))
    d = dispatcher(pool, channel, tenant)
    texts = {"+4915100000001": "Your invoice is ready", "+4915100000002": "Zahlung: 42,00 €",
             "+306900000001": "Ο λογαριασμός & σας=έτοιμος"}  # fmt: skip
    ids = {to: await queue(pool, f"k{n}", to, text) for n, (to, text) in enumerate(texts.items())}
    try:
        assert await d.drain() == 3
        assert await d.drain() == 0
    finally:
        await channel.aclose()
    assert len(provider.requests) == 3
    expected_auth = {"bearer": ("authorization", f"Bearer {TOKEN}"),
                     "basic": ("authorization",
                               "Basic " + base64.b64encode(f"acme:{TOKEN}".encode()).decode()),
                     "header": ("x-api-key", TOKEN)}[auth]  # fmt: skip
    refs = set()
    for to, text in texts.items():
        (req,) = provider.sent_to(to)
        nid = ids[to]
        assert req["method"] == "POST"
        assert req["body"] == {"dst": to, "src": "ACME", "msg": text, "ref": str(nid)}
        assert req["headers"][expected_auth[0]] == expected_auth[1]
        assert req["headers"]["idempotency-key"] == str(nid)
        r = await row(pool, nid)
        assert r["status"] == "sent" and r["attempts"] == 1, dict(r)
        refs.add(r["provider_ref"])
        part = await pool.fetchval("SELECT channel FROM notification_parts WHERE provider_id"
                                   " = $1", r["provider_ref"])  # fmt: skip
        assert part == "sms"
    assert refs == {"prov-1", "prov-2", "prov-3"}


async def test_5xx_and_429_are_retried_and_a_4xx_is_dead(
    pool: asyncpg.Pool, tenant: MovableClock, provider: Provider
) -> None:
    channel = HttpSmsChannel(settings(provider))
    d = dispatcher(pool, channel, tenant)
    provider.script = {"+4915100000011": [503, 429], "+4915100000012": [400],
                       "+4915100000013": [500]}  # fmt: skip
    flaky = await queue(pool, "flaky", "+4915100000011", "one")
    bad = await queue(pool, "bad", "+4915100000012", "two")
    once = await queue(pool, "once", "+4915100000013", "three")
    try:
        assert await d.drain() == 0
        r = await row(pool, flaky)
        assert r["status"] == "pending" and "503" in r["last_error"], dict(r)
        assert (await row(pool, bad))["status"] == "dead"
        assert "400" in (await row(pool, bad))["last_error"]
        for _ in range(3):  # past each backoff: 429 retried again, then both succeed
            tenant.advance(timedelta(minutes=5))
            await d.drain()
    finally:
        await channel.aclose()
    assert [(await row(pool, n))["status"] for n in (flaky, bad, once)] == ["sent", "dead",
                                                                            "sent"]
    assert (await row(pool, flaky))["attempts"] == 3
    keys = [r["headers"]["idempotency-key"] for r in provider.sent_to("+4915100000011")]
    assert keys == [str(flaky)] * 3  # the same reference every time: the provider may dedupe
    assert len(provider.sent_to("+4915100000012")) == 1  # dead: never tried again
    assert len(provider.sent_to("+4915100000013")) == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_a_refused_connection_is_retried_and_an_answer_without_id_is_dead(
    pool: asyncpg.Pool, tenant: MovableClock, provider: Provider
) -> None:
    down = HttpSmsChannel(settings(provider, url=f"http://127.0.0.1:{_closed_port()}/sms"))
    nid = await queue(pool, "down", "+4915100000021", "hello")
    try:
        assert await dispatcher(pool, down, tenant).drain() == 0
    finally:
        await down.aclose()
    r = await row(pool, nid)
    assert r["status"] == "pending" and "ConnectError" in r["last_error"], dict(r)
    up = HttpSmsChannel(settings(provider))
    odd = await queue(pool, "odd", "+4915100000077", "no id in the answer")
    try:
        tenant.advance(timedelta(minutes=5))
        assert await dispatcher(pool, up, tenant).drain() == 1
        tenant.advance(timedelta(hours=1))
        await dispatcher(pool, up, tenant).drain()
    finally:
        await up.aclose()
    assert (await row(pool, nid))["status"] == "sent"
    r = await row(pool, odd)
    assert r["status"] == "dead" and "messages.0.id" in r["last_error"], dict(r)
    assert len(provider.sent_to("+4915100000077")) == 1


async def test_the_registry_uses_the_gateway_unless_an_smpp_account_is_enabled(
    pool: asyncpg.Pool, tenant: MovableClock, provider: Provider
) -> None:
    secrets = Secrets(generate_key())
    stored = {"url": provider.url, "auth": "bearer", "fields": FIELDS, "sender": "ACME",
              "id_path": "messages.0.id"}  # fmt: skip
    await pool.execute(
        "INSERT INTO notification_channels (tenant_id, channel, settings, secret_enc) VALUES"
        " ('t1', 'http_sms', $1, $2)", orjson.dumps(stored).decode(),
        secrets.encrypt(TOKEN))  # fmt: skip
    registry = ChannelRegistry(pool, secrets, now=tenant.now)
    try:
        d = Dispatcher(pool, registry, render, now=tenant.now)
        nid = await queue(pool, "via-registry", "+4915100000031", "through the registry")
        assert await d.drain() == 1
        (req,) = provider.sent_to("+4915100000031")
        assert req["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert (await row(pool, nid))["status"] == "sent"
        assert isinstance(await registry.channel("t1", "sms"), HttpSmsChannel)
        await pool.execute(
            "INSERT INTO notification_channels (tenant_id, channel, settings) VALUES ('t1',"
            " 'smpp', $1)", orjson.dumps({"host": "127.0.0.1", "port": _closed_port(),
                                          "system_id": "acme", "source": "ACME"}).decode())
        assert isinstance(await registry.channel("t1", "sms"), SmsChannel)
        await pool.execute("UPDATE notification_channels SET enabled = false, updated_at ="
                           " now() WHERE channel = 'smpp'")  # fmt: skip
        assert isinstance(await registry.channel("t1", "sms"), HttpSmsChannel)
        await pool.execute("UPDATE notification_channels SET enabled = false")
        assert await registry.channel("t1", "sms") is None
        assert await registry.channel("t1", "email") is None
    finally:
        await registry.close()
    await pool.execute("UPDATE notification_channels SET enabled = true WHERE channel ="
                       " 'http_sms'")  # fmt: skip
    keyless = ChannelRegistry(pool, None, now=tenant.now)
    try:  # the token cannot be decrypted: nothing is sent without it (it waits, not dead)
        assert await keyless.channel("t1", "sms") is None
    finally:
        await keyless.close()


# The pure parts.


def test_build_request_and_provider_id() -> None:
    s = HttpSmsSettings(url="https://sms.example/send", auth="header", header_name="X-Key",
                        secret="k1", fields={"to": "{to}", "body": "{text}"},
                        body_format="form")  # fmt: skip
    req = build_request(s, Outgoing(7, "t1", "+4915100000001", "a&b=c"))
    assert req.content == b"to=%2B4915100000001&body=a%26b%3Dc"
    assert req.headers["X-Key"] == "k1" and req.headers["Idempotency-Key"] == "7"
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in req.headers
    assert provider_id("id", {"id": 42}) == "42"
    assert provider_id("messages.1.id", {"messages": [{"id": "a"}, {"id": "b"}]}) == "b"
    assert provider_id("ids", {"ids": ["p1", "p2"]}) == "p1,p2"
    for path, answer in (("id", {}), ("id", {"id": None}), ("id", {"id": True}),
                         ("m.5.id", {"m": [{"id": 1}]}), ("id", {"id": ""}), ("id", [1]),
                         ("ids", {"ids": []})):  # fmt: skip
        with pytest.raises(ValueError):
            provider_id(path, answer)
    assert [outcome(s) for s in (200, 201, 302, 400, 401, 404, 408, 429, 500, 503)] == [
        "sent", "sent", "retry", "refused", "refused", "refused", "retry", "retry", "retry",
        "retry"]  # fmt: skip


SECRETS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
BODIES = st.binary(max_size=300)
STAMPS = st.integers(min_value=1_000_000_000, max_value=4_000_000_000)


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@given(SECRETS, BODIES, STAMPS, st.integers(min_value=-300, max_value=300))
def test_a_signature_within_the_tolerance_passes(secret: str, body: bytes, ts: int,
                                                 skew: int) -> None:
    verify(secret, sign(secret, ts, body), body, now=at(ts + skew))


@given(SECRETS, BODIES, STAMPS, st.data())
def test_any_tamper_fails(secret: str, body: bytes, ts: int, data: st.DataObject) -> None:
    header = sign(secret, ts, body)
    now = at(ts)
    other_body = data.draw(BODIES.filter(lambda b: b != body))
    other_secret = data.draw(SECRETS.filter(lambda s: s != secret))
    other_ts = data.draw(st.integers(min_value=ts - 300, max_value=ts + 300).filter(
        lambda t: t != ts))  # fmt: skip
    mac = header.rpartition("v1=")[2]
    late = data.draw(st.integers(min_value=301, max_value=10**6)) * data.draw(
        st.sampled_from([1, -1]))  # fmt: skip
    for args in ((secret, header, other_body, now), (other_secret, header, body, now),
                 (secret, f"t={other_ts},v1={mac}", body, now),
                 (secret, header, body, at(ts + late)),
                 (secret, f"t={ts},v1={mac[:-1]}", body, now), (secret, None, body, now),
                 (secret, f"v1={mac}", body, now), (secret, f"t={ts}", body, now)):
        with pytest.raises(SignatureInvalid):
            verify(args[0], args[1], args[2], now=args[3])


@given(st.text(max_size=200), BODIES)
def test_a_garbled_header_is_only_ever_a_signature_error(header: str, body: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        verify("s3cret", header, body, now=at(2_000_000_000))


def test_webhook_payloads_are_read_only_once_signed() -> None:
    now = at(2_000_000_000)
    body = orjson.dumps({"from": "+4915100000001", "to": "4444", "text": "BALANCE",
                         "message_id": "mo-1", "extra": 1})  # fmt: skip
    text = verify_inbound("s3cret", sign("s3cret", 2_000_000_000, body), body, now=now)
    assert (text.source, text.destination, text.text, text.message_id) == (
        "+4915100000001", "4444", "BALANCE", "mo-1")
    with pytest.raises(SignatureInvalid):  # the signature first: garbage unsigned is a 401
        verify_inbound("s3cret", "t=1,v1=00", b"not json", now=now)
    for bad in (b"not json", b"[]", orjson.dumps({"from": "x", "to": "y", "text": 5,
                                                  "message_id": "m"})):  # fmt: skip
        with pytest.raises(PayloadInvalid):
            verify_inbound("s3cret", sign("s3cret", 2_000_000_000, bad), bad, now=now)
    status = orjson.dumps({"message_id": "prov-1,prov-2", "status": "delivered"})
    report = verify_status("s3cret", sign("s3cret", 2_000_000_000, status), status, now=now)
    assert (report.message_id, report.status) == ("prov-1,prov-2", "delivered")
    odd = orjson.dumps({"message_id": "prov-1", "status": "lost"})
    with pytest.raises(PayloadInvalid):
        verify_status("s3cret", sign("s3cret", 2_000_000_000, odd), odd, now=now)
