"""Health, readiness, Prometheus metrics, the OpenAPI document, the append-only audit log."""

from __future__ import annotations

import asyncpg
import pytest

from charging_engine.devservers import RedisServer
from tests.admin.conftest import Api, World, eventually, problem


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


async def test_health_and_readiness(
    api: Api, world: World, private_redis: RedisServer
) -> None:
    c = api.client(None)  # no key needed
    assert (await c.get("/health")).json() == {"status": "ok"}
    assert (await c.get("/ready")).json() == {"status": "ready", "redis": "ok", "postgres": "ok"}
    private_redis.stop()
    try:
        r = await c.get("/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "not_ready" and r.json()["redis"].startswith("error")
        assert r.json()["postgres"] == "ok"
        # a route that needs Redis answers 503 as a problem, not a crash
        problem(await world.a.admin.get("/v1/tenants/acme/accounts/a1/balance"), 503,
                "unavailable")
    finally:
        private_redis.start()

    async def ready() -> bool:
        return (await c.get("/ready")).status_code == 200

    await eventually(ready, 10, "readiness after Redis is back")


async def test_metrics(api: Api, world: World) -> None:
    service = api.engine.service
    assert (await service.authorize("acme", "a1", "m-1", "+14155550100")).allowed
    assert (await service.authorize("acme", "a2", "m-2", "+14155550100")).allowed
    assert not (await service.authorize("acme", "a1", "m-3", "+33123456789")).allowed
    await service.end("acme", "a2", "m-2", billable_seconds=10_000)  # exhausts a2
    text = (await api.client(None).get("/metrics")).text
    assert metric(text, 'ce_authorizations_total{result="ok"}') == 2
    assert metric(text, 'ce_authorizations_total{result="no_rate"}') == 1
    assert metric(text, "ce_active_calls") == 1  # m-1 is still up
    assert metric(text, "ce_settlement_lag_entries") > 0  # nothing settled yet in this test
    assert 'admin_request_seconds_count{method="POST",route="/v1/tenants/{tenant_id}/accounts"' \
        in text
    await api.settle()

    async def alert_counted() -> bool:
        text = (await api.client(None).get("/metrics")).text
        return 'ce_alerts_total{kind="exhausted"} 1.0' in text

    await eventually(alert_counted, 5, "the exhausted alert in the metrics")
    text = (await api.client(None).get("/metrics")).text
    assert metric(text, "ce_settlement_lag_entries") == 0


async def test_openapi_is_served_with_problem_errors(api: Api) -> None:
    doc = (await api.client(None).get("/openapi.json")).json()
    assert doc["info"]["title"] == "Charging engine admin API"
    op = doc["paths"]["/v1/tenants/{tenant_id}/accounts/{account_id}/topups"]["post"]
    assert "application/problem+json" in op["responses"]["409"]["content"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in op["parameters"])
    assert (await api.client(None).get("/docs")).status_code == 200
    problem(await api.client(None).get("/v1/nope"), 404)
    problem(await api.client(None).get("/v1/me"), 401, "unauthorized")
    problem(await api.client("ce_wrong").get("/v1/me"), 401, "unauthorized")


async def test_the_audit_log_is_append_only(api: Api, world: World) -> None:
    rows = (await world.a.admin.get("/v1/tenants/acme/audit?limit=500")).json()["items"]
    created = [r for r in rows if r["action"] == "account.create"]
    assert {r["target"] for r in created} == {"account:a1", "account:a2"}
    assert created[0]["before"] is None and created[0]["after"]["currency"] == "USD"
    for sql in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                "TRUNCATE audit_log"):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await api.engine.pool.execute(sql)


async def test_a_failing_background_loop_is_restarted_not_fatal() -> None:
    import asyncio

    from admin_api.background import supervised

    runs = 0
    stop = asyncio.Event()

    async def flaky(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("boom")
        stop.set()

    await asyncio.wait_for(supervised("flaky", flaky, stop), 10)
    assert runs == 2


async def test_oversized_bodies_are_refused_before_they_are_read(api: Api, world: World) -> None:
    admin = world.a.admin
    big = {"account_id": "x", "name": "n" * 70_000}
    problem(await admin.post("/v1/tenants/acme/accounts", json=big), 413, "payload_too_large")
    problem(await admin.post("/v1/tenants/acme/accounts", content=b"{",
                             headers={"Content-Type": "application/json"}), 422)
    problem(await admin.post("/v1/tenants/acme/accounts", content=b"[]",
                             headers={"Content-Type": "application/json"}), 422)
