"""The real-time API end to end on a real Redis: lifecycle, money, auth, isolation, bad input.

Bad input must be answered 4xx with a problem document and must leave Redis exactly as it was:
a half-written reservation or charge is worse than an error.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from charging_engine.balance.store import BalanceStore
from charging_engine.money import format_amount
from charging_engine.rating.pricing import billed_seconds, cost
from charging_engine.realtime.app import create_app
from charging_engine.sessions.service import ChargingService
from tests.realtime.conftest import FUNDS, KEY_T1, KEY_T2, NOW_MS, RATE_UK, Engine

PROBLEM = "application/problem+json"
LIVE = "live-1"  # a call authorized and answered by the ``live_call`` fixture
UK = "+44 20 7946 0000"


def usd(micros: int) -> str:
    return format_amount(micros, "USD")


def assert_problem(r: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "reason"} <= body.keys()
    assert body["type"].endswith(body["reason"])
    assert isinstance(body["detail"], str) and body["detail"]
    if reason is not None:
        assert body["reason"] == reason, body
    return body


async def snapshot(r: aioredis.Redis) -> dict[bytes, bytes | None]:
    """Every key and its serialized value: equal snapshots mean nothing was written."""
    keys = sorted([k async for k in r.scan_iter(match="*", count=1000)])
    return {k: await r.dump(k) for k in keys}


@pytest.fixture
async def live_call(engine: Engine) -> int:
    """``a1`` has call ``LIVE`` authorized (to the UK rate) and answered at NOW_MS."""
    d = await engine.service.authorize("t1", "a1", LIVE, UK)
    assert d.allowed
    await engine.service.answer("t1", "a1", LIVE, NOW_MS)
    return d.reserved


# --- happy paths -------------------------------------------------------------------------------


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"Authorization": ""})
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_lifecycle_authorize_answer_end(client: httpx.AsyncClient, engine: Engine) -> None:
    r = await client.post(
        "/v1/calls/authorize",
        json={"account": "a1", "call_id": "c-1", "destination": UK, "caller": "1001"},
    )
    assert r.status_code == 200, r.text
    slice_cost = cost(RATE_UK, 300)  # the policy's 300 s slice
    assert r.json() == {
        "allowed": True,
        "reason": "ok",
        "max_seconds": 300,
        "max_ms": 300_000,
        "reserved": usd(slice_cost),
        "destination": "442079460000",
        "rate_prefix": "44",
        "detail": "",
    }

    r = await client.get("/v1/accounts/a1/balance")
    assert r.json()["reserved"] == usd(slice_cost) == "0.30"
    assert r.json()["available"] == usd(FUNDS - slice_cost)

    r = await client.post("/v1/calls/answer", json={"account": "a1", "call_id": "c-1"})
    assert r.status_code == 200, r.text
    assert r.json() == {"answered_at_ms": NOW_MS, "max_seconds": 300}

    engine.clock.now_ms += 125_400  # the call lasts 125.4 s
    r = await client.post("/v1/calls/end", json={"account": "a1", "call_id": "c-1"})
    assert r.status_code == 200, r.text
    charged = cost(RATE_UK, 125)
    assert charged == 125_000  # 60 s first block, then per second, at 0.06/min
    assert r.json() == {
        "reason": "ok",
        "cost": usd(charged),
        "balance": usd(FUNDS - charged),
        "billed_seconds": billed_seconds(RATE_UK, 125),
        "duration": 125,
    }

    r = await client.get("/v1/accounts/a1/balance")
    assert r.status_code == 200
    assert r.json() == {
        "account": "a1",
        "currency": "USD",
        "balance": usd(FUNDS - charged),
        "credit_limit": "0.00",
        "reserved": "0.00",
        "available": usd(FUNDS - charged),
        "status": "active",
    }


async def test_extend_is_idempotent_per_sequence(
    client: httpx.AsyncClient, engine: Engine, live_call: int
) -> None:
    body = {"account": "a1", "call_id": LIVE, "sequence": 1}
    first = await client.post("/v1/calls/extend", json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "extended": True,
        "reason": "ok",
        "max_seconds": 600,
        "seconds_left": 600,
    }
    again = await client.post("/v1/calls/extend", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["max_seconds"] == 600  # the retry reserves nothing more
    r = await client.get("/v1/accounts/a1/balance")
    assert r.json()["reserved"] == usd(cost(RATE_UK, 600))

    r = await client.post("/v1/calls/extend", json={**body, "sequence": 2})
    assert r.json()["max_seconds"] == 900


async def test_retried_extend_repeats_the_first_answer(
    client: httpx.AsyncClient, live_call: int
) -> None:
    body = {"account": "a1", "call_id": LIVE, "sequence": 1}
    first = await client.post("/v1/calls/extend", json=body)
    again = await client.post("/v1/calls/extend", json=body)
    assert again.json() == first.json()


async def test_duplicate_end_is_charged_once(client: httpx.AsyncClient, live_call: int) -> None:
    body = {"account": "a1", "call_id": LIVE, "billable_seconds": 61}
    first = await client.post("/v1/calls/end", json=body)
    assert first.status_code == 200, first.text
    charged = cost(RATE_UK, 61)
    assert first.json()["reason"] == "ok"
    assert first.json()["cost"] == usd(charged)

    for _ in range(2):
        r = await client.post("/v1/calls/end", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["reason"] == "duplicate"
        assert r.json()["cost"] == usd(charged)
        assert r.json()["balance"] == usd(FUNDS - charged)

    r = await client.get("/v1/accounts/a1/balance")
    assert r.json()["balance"] == usd(FUNDS - charged)
    assert r.json()["reserved"] == "0.00"


@pytest.mark.parametrize(
    ("account", "destination", "reason", "normalised"),
    [
        ("poor", UK, "insufficient_funds", "442079460000"),
        ("noplan", UK, "no_rate_plan", "442079460000"),
        ("a1", "0033 1 23 45 67 89", "no_rate", "33123456789"),
    ],
)
async def test_refusals_are_200_with_allowed_false(
    client: httpx.AsyncClient, account: str, destination: str, reason: str, normalised: str
) -> None:
    r = await client.post(
        "/v1/calls/authorize",
        json={"account": account, "call_id": "c-2", "destination": destination},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allowed"] is False
    assert body["reason"] == reason
    assert body["max_seconds"] == body["max_ms"] == 0
    assert body["reserved"] == "0.00"
    assert body["destination"] == normalised
    assert body["detail"]


# --- authentication and tenant isolation -------------------------------------------------------


async def test_key_is_required_and_checked(client: httpx.AsyncClient) -> None:
    path = "/v1/accounts/a1/balance"
    missing = await client.get(path, headers={"Authorization": ""})
    assert_problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")

    for headers in (
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": f"Basic {KEY_T1}"},
        {"Authorization": "", "X-API-Key": "not-a-key"},
    ):
        assert_problem(await client.get(path, headers=headers), 401, "unauthorized")

    ok = await client.get(path, headers={"Authorization": "", "X-API-Key": KEY_T1})
    assert ok.status_code == 200


async def test_key_is_checked_before_the_body(client: httpx.AsyncClient, engine: Engine) -> None:
    before = await snapshot(engine.redis)
    r = await client.post(
        "/v1/calls/end",
        json={"account": "a1", "call_id": LIVE, "billable_seconds": "x"},
        headers={"Authorization": "Bearer wrong"},
    )
    assert_problem(r, 401)
    assert await snapshot(engine.redis) == before


async def test_tenant_cannot_reach_another_tenants_account(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    t2 = {"Authorization": f"Bearer {KEY_T2}"}
    r = await client.post(
        "/v1/calls/authorize",
        json={"account": "b1", "call_id": "x-1", "destination": UK},
        headers=t2,
    )
    assert r.status_code == 200 and r.json()["allowed"], r.text
    before = await snapshot(engine.redis)

    # Tenant t1's key names t2's account: it does not exist for t1.
    r = await client.get("/v1/accounts/b1/balance")
    assert_problem(r, 404, "unknown_account")
    r = await client.post(
        "/v1/calls/authorize", json={"account": "b1", "call_id": "x-2", "destination": UK}
    )
    body = assert_problem(r, 404, "unknown_account")
    assert body["allowed"] is False
    assert body["max_seconds"] == 0
    r = await client.post(
        "/v1/calls/end", json={"account": "b1", "call_id": "x-1", "billable_seconds": 600}
    )
    assert_problem(r, 404, "unknown_account")
    assert await snapshot(engine.redis) == before

    r = await client.get("/v1/accounts/b1/balance", headers=t2)
    assert r.status_code == 200
    assert r.json()["currency"] == "EUR"
    assert r.json()["reserved"] == format_amount(cost(RATE_UK, 300), "EUR")


# --- bad input: 4xx problem, nothing written ---------------------------------------------------

JSON = {"content-type": "application/json"}
END = "/v1/calls/end"
AUTH = "/v1/calls/authorize"
ANSWER = "/v1/calls/answer"
EXTEND = "/v1/calls/extend"


def _end(**fields: Any) -> dict[str, Any]:
    return {"account": "a1", "call_id": LIVE, **fields}


def _auth(**fields: Any) -> dict[str, Any]:
    return {"account": "a1", "call_id": "new-1", "destination": UK, **fields}


# (id, method, path, JSON body or raw bytes, extra headers, status, reason)
# fmt: off
BAD: list[tuple[str, str, str, Any, dict[str, str], int, str]] = [
    ("unknown account", "POST", AUTH, _auth(account="nobody"), {}, 404, "unknown_account"),
    ("unknown account end", "POST", END, _end(account="nobody"), {}, 404, "unknown_account"),
    ("unknown call end", "POST", END, _end(call_id="nope"), {}, 404, "unknown_call"),
    ("unknown call extend", "POST", EXTEND, _end(call_id="nope", sequence=1), {}, 404,
     "unknown_call"),
    ("unknown account balance", "GET", "/v1/accounts/nobody/balance", None, {}, 404,
     "unknown_account"),
    ("malformed json", "POST", END, b'{"account": "a1", "call_id": ', JSON, 422,
     "invalid_request"),
    ("trailing garbage", "POST", END, b'{"account": "a1", "call_id": "live-1"} x', JSON, 422,
     "invalid_request"),
    ("invalid utf-8", "POST", END, b'{"account": "\xff\xfe"}', JSON, 422, "invalid_request"),
    ("integer beyond json limits", "POST", END,
     b'{"account": "a1", "call_id": "live-1", "billable_seconds": 1' + b"0" * 5000 + b"}",
     JSON, 422, "invalid_request"),
    ("NaN", "POST", END, b'{"account": "a1", "call_id": "live-1", "billable_seconds": NaN}',
     JSON, 422, "invalid_request"),
    ("negative duration", "POST", END, _end(billable_seconds=-1), {}, 422, "invalid_request"),
    ("duration over a week", "POST", END, _end(billable_seconds=604_801), {}, 422,
     "invalid_request"),
    ("huge duration", "POST", END, _end(billable_seconds=10**30), {}, 422, "invalid_request"),
    ("negative end time", "POST", END, _end(ended_at_ms=-5), {}, 422, "invalid_request"),
    ("end time past 2100", "POST", END, _end(ended_at_ms=4_102_444_800_001), {}, 422,
     "invalid_request"),
    ("end before answer", "POST", END, _end(ended_at_ms=NOW_MS - 10_000), {}, 422,
     "invalid_request"),
    ("answer long before authorize", "POST", ANSWER, _end(answered_at_ms=NOW_MS - 3_600_000),
     {}, 422, "invalid_request"),
    ("non-numeric destination", "POST", AUTH, _auth(destination="sip:bob@example.com"), {},
     422, "invalid_request"),
    ("letters in number", "POST", AUTH, _auth(destination="+44 20 CALL ME"), {}, 422,
     "invalid_request"),
    ("destination too long", "POST", AUTH, _auth(destination="4" * 33), {}, 422,
     "invalid_request"),
    ("too many digits", "POST", AUTH, _auth(destination="4" * 16), {}, 422, "invalid_request"),
    ("empty destination", "POST", AUTH, _auth(destination=""), {}, 422, "invalid_request"),
    ("missing fields", "POST", AUTH, {"account": "a1"}, {}, 422, "invalid_request"),
    ("missing call_id", "POST", END, {"account": "a1", "billable_seconds": 5}, {}, 422,
     "invalid_request"),
    ("string for int", "POST", END, _end(billable_seconds="60"), {}, 422, "invalid_request"),
    ("string sequence", "POST", EXTEND, _end(sequence="1"), {}, 422, "invalid_request"),
    ("float for int", "POST", END, _end(billable_seconds=60.0), {}, 422, "invalid_request"),
    ("fractional seconds", "POST", END, _end(billable_seconds=60.5), {}, 422,
     "invalid_request"),
    ("bool for int", "POST", END, _end(billable_seconds=True), {}, 422, "invalid_request"),
    ("bool sequence", "POST", EXTEND, _end(sequence=True), {}, 422, "invalid_request"),
    ("int for string", "POST", AUTH, _auth(destination=442079460000), {}, 422,
     "invalid_request"),
    ("bool for string", "POST", AUTH, _auth(account=True), {}, 422, "invalid_request"),
    ("sequence zero", "POST", EXTEND, _end(sequence=0), {}, 422, "invalid_request"),
    ("sequence too big", "POST", EXTEND, _end(sequence=100_001), {}, 422, "invalid_request"),
    ("extra field", "POST", END, _end(billable_seconds=5, tenant="t2"), {}, 422,
     "invalid_request"),
    ("bad account id", "POST", AUTH, _auth(account="a 1"), {}, 422, "invalid_request"),
    ("account id too long", "POST", AUTH, _auth(account="a" * 65), {}, 422, "invalid_request"),
    ("call id with space", "POST", AUTH, _auth(call_id="a b"), {}, 422, "invalid_request"),
    ("call id too long", "POST", AUTH, _auth(call_id="c" * 129), {}, 422, "invalid_request"),
    ("call id the engine refuses", "POST", AUTH, _auth(call_id="c\u00e91"), {}, 422,
     "invalid_request"),
    ("caller too long", "POST", AUTH, _auth(caller="1" * 65), {}, 422, "invalid_request"),
    ("empty body", "POST", END, b"", JSON, 422, "invalid_request"),
    ("null body", "POST", END, b"null", JSON, 422, "invalid_request"),
    ("array body", "POST", END, b'["a1", "live-1"]', JSON, 422, "invalid_request"),
    ("string body", "POST", END, b'"end it"', JSON, 422, "invalid_request"),
    ("text/plain", "POST", END, json.dumps(_end()).encode(), {"content-type": "text/plain"},
     415, "unsupported_media_type"),
    ("form encoded", "POST", END, b"account=a1&call_id=live-1",
     {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ("no content type", "POST", END, json.dumps(_end()).encode(), {}, 415,
     "unsupported_media_type"),
    ("bad account in path", "GET", "/v1/accounts/a%20b/balance", None, {}, 422,
     "invalid_request"),
    ("body too large", "POST", AUTH, _auth(caller="1" * 20_000), {}, 413, "payload_too_large"),
    ("unknown route", "POST", "/v1/calls/hangup", _end(), {}, 404, "not_found"),
    ("wrong method", "GET", END, None, {}, 405, "method_not_allowed"),
]
# fmt: on


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD],
)
async def test_bad_input_is_a_4xx_problem_and_writes_nothing(
    client: httpx.AsyncClient,
    engine: Engine,
    live_call: int,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    before = await snapshot(engine.redis)
    if isinstance(body, bytes):
        r = await client.request(method, path, content=body, headers=headers)
    elif body is None:
        r = await client.request(method, path, headers=headers)
    else:
        r = await client.request(method, path, json=body, headers=headers)

    problem = assert_problem(r, status, reason)
    if status == 422 and "errors" in problem:
        listed = ", ".join(e["field"] for e in problem["errors"])
        assert all(
            e["field"] in problem["detail"] or e["field"] == "body" for e in problem["errors"]
        ), (listed, problem["detail"])
    if status == 405:
        assert "allow" in r.headers

    assert await snapshot(engine.redis) == before
    state = await engine.service.balance("t1", "a1")
    assert state["balance"] == FUNDS
    assert state["reserved"] == live_call  # only the live call's reservation
    assert await engine.store.session("t1", "a1", "new-1") is None
    assert await engine.store.session("t1", "a1", LIVE) is not None


async def test_streamed_body_too_large_is_a_problem(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"account": "a1", "call_id": "new-1", "destination": "44", "caller": "'
        for _ in range(40):
            yield b"1" * 1024
        yield b'"}'

    before = await snapshot(engine.redis)
    r = await client.post(AUTH, content=chunks(), headers=JSON)
    assert_problem(r, 413, "payload_too_large")
    assert await snapshot(engine.redis) == before


async def test_validation_detail_names_every_bad_field(client: httpx.AsyncClient) -> None:
    r = await client.post(
        END, json={"account": "a 1", "call_id": LIVE, "billable_seconds": "9", "x": 1}
    )
    body = assert_problem(r, 422, "invalid_request")
    assert {e["field"] for e in body["errors"]} == {"account", "billable_seconds", "x"}
    for name in ("account", "billable_seconds", "x"):
        assert name in body["detail"]


# --- failures of the engine itself -------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens here once the socket is closed


@pytest.fixture
async def unreachable_service(engine: Engine) -> AsyncIterator[ChargingService]:
    """The same catalogue on a Redis that refuses connections."""
    no_retry = Retry(NoBackoff(), retries=0)
    dead = aioredis.Redis(port=_closed_port(), socket_connect_timeout=1, retry=no_retry)
    store = BalanceStore(dead, 16)
    try:
        yield ChargingService(store, engine.service.catalog, clock=engine.clock)
    finally:
        await store.close()
        await dead.aclose()


async def test_redis_down_is_503_and_service_is_swappable(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: Engine,
    unreachable_service: ChargingService,
) -> None:
    app.state.service = unreachable_service
    for method, path, body in (
        ("POST", AUTH, _auth()),
        ("POST", END, _end(billable_seconds=5)),
        ("GET", "/v1/accounts/a1/balance", None),
    ):
        r = await client.request(method, path, json=body)
        assert_problem(r, 503, "engine_unavailable")

    app.state.service = engine.service  # swapped back at runtime: answers again
    r = await client.get("/v1/accounts/a1/balance")
    assert r.status_code == 200


class _BrokenService(ChargingService):
    async def balance(self, tenant_id: str, account_id: str) -> dict[str, Any]:
        raise RuntimeError("a bug")


async def test_unexpected_error_is_503_problem(engine: Engine) -> None:
    broken = _BrokenService(engine.store, engine.service.catalog)
    app = create_app(broken)
    # The last-resort handler answers, then Starlette re-raises for the server's log.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine") as c:
        r = await c.get("/v1/accounts/a1/balance", headers={"X-API-Key": KEY_T1})
    assert_problem(r, 503, "engine_unavailable")


# --- OpenAPI -----------------------------------------------------------------------------------


async def test_openapi_documents_routes_and_problems(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json", headers={"Authorization": ""})
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "Charging engine real-time API"
    paths = spec["paths"]
    for path in (AUTH, ANSWER, EXTEND, END, "/v1/accounts/{account}/balance", "/health"):
        assert path in paths
    responses = paths[AUTH]["post"]["responses"]
    assert {"200", "401", "404", "422", "503"} <= responses.keys()
    assert PROBLEM in responses["422"]["content"]
    assert "DecisionProblem" in json.dumps(responses["404"])
    assert "HTTPValidationError" not in json.dumps(spec)
    docs = await client.get("/docs", headers={"Authorization": ""})
    assert docs.status_code == 200


# --- fuzzing: no input is a server error -------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["a1", LIVE, UK, "", " ", "0", "-1", "1e3", "{x}"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)

VALID: dict[str, dict[str, Any]] = {
    AUTH: _auth(caller="1001"),
    ANSWER: _end(answered_at_ms=NOW_MS),
    EXTEND: _end(sequence=1),
    END: _end(billable_seconds=5, ended_at_ms=NOW_MS + 5_000),
}


@pytest.mark.parametrize("path", list(VALID))
@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_arbitrary_json_is_never_a_server_error(
    client: httpx.AsyncClient, live_call: int, path: str, data: st.DataObject
) -> None:
    body = dict(VALID[path])
    field = data.draw(st.sampled_from([*body, "extra"]), label="field")
    if data.draw(st.booleans(), label="drop") and field in body:
        del body[field]
    else:
        body[field] = data.draw(json_values, label="value")
    r = await client.post(path, content=json.dumps(body), headers=JSON)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith(PROBLEM)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(account=st.text(max_size=80))
async def test_arbitrary_account_in_path_is_never_a_server_error(
    client: httpx.AsyncClient, account: str
) -> None:
    r = await client.get(f"/v1/accounts/{quote(account, safe='')}/balance")
    assert r.status_code < 500, r.text
