"""Alerts: detected atomically in Redis when a balance moves, stored, listed, acknowledged,
and streamed live per tenant over Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from admin_api.alerts.hub import QUEUE_SIZE, Subscription
from admin_api.alerts.repo import AlertOut
from charging_engine.balance.keys import alerts_key
from charging_engine.devservers import free_port
from tests.admin.conftest import BUCKETS, Api, World, eventually, problem

A1 = "/v1/tenants/acme/accounts/a1"


@pytest.fixture
async def served(api: Api) -> AsyncIterator[str]:
    """The admin app on a real HTTP listener (streaming needs a real server)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        api.app, host="127.0.0.1", port=port, loop="none", lifespan="off", log_level="warning",
    ))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return bool(server.started)

    await eventually(started, 10, "the admin listener")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Events:
    """Reads an SSE response: ``next()`` returns the next event as (id, event, data)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> tuple[str | None, str | None, dict[str, Any]]:
        fields: dict[str, str] = {}
        async for line in self.lines:
            if line == "":
                if "data" in fields:
                    return fields.get("id"), fields.get("event"), json.loads(fields["data"])
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                if line[1:].strip() == "subscribed":
                    return None, "subscribed", {}
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise AssertionError("stream ended")


@contextlib.asynccontextmanager
async def stream(url: str, secret: str, **headers: str) -> AsyncIterator[Events]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=30.0)) as c, c.stream(
        "GET", f"{url}/v1/tenants/acme/alerts/stream",
        headers={"Authorization": f"Bearer {secret}", **headers},
    ) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        events = Events(r)
        assert (await events.next())[1] == "subscribed"
        yield events


async def call(api: Api, account: str, call_id: str, seconds: int) -> None:
    """A real call through the charging service: authorize, then end after ``seconds``."""
    service = api.engine.service
    d = await service.authorize("acme", account, call_id, "+14155550100")
    assert d.allowed, d
    await service.end("acme", account, call_id, billable_seconds=seconds)


async def test_the_stream_delivers_a_low_balance_alert_within_a_second(
    api: Api, world: World, served: str
) -> None:
    r = await world.a.admin.patch(A1, json={"low_balance_thresholds": ["9.00"]})
    assert r.status_code == 200, r.text
    async with stream(served, world.a.keys["ops"]) as events:
        await call(api, "a1", "c-1", 1200)  # 20 minutes at 0.06: 10.00 -> 8.80
        crossed = time.monotonic()
        async with asyncio.timeout(1.0):
            alert_id, kind, data = await events.next()
        latency = time.monotonic() - crossed
    assert kind == "alert" and alert_id == str(data["id"])
    assert data["kind"] == "low_balance" and data["account_id"] == "a1"
    assert data["balance"] == "8.80" and data["threshold"] == "9.00"
    print(f"low-balance alert delivered {latency * 1000:.1f} ms after the crossing")


async def test_hysteresis_keeps_a_hovering_balance_quiet(api: Api, world: World) -> None:
    admin = world.a.admin
    r = await admin.patch(A1, json={"low_balance_thresholds": ["5.00"],
                                    "low_balance_hysteresis": "1.00"})
    assert r.status_code == 200, r.text
    n = 0

    async def move(amount: str) -> None:
        nonlocal n
        n += 1
        r = await admin.post(f"{A1}/adjustments", json={"amount": amount, "reason": "hover"},
                             headers={"Idempotency-Key": f"h-{n}"})
        assert r.status_code == 201, r.text

    await move("-5.10")  # 4.90: crosses -> alert 1
    await move("+0.60")  # 5.50: above the line, below line + hysteresis: stays disarmed
    await move("-0.55")  # 4.95: no alert
    await move("+0.60")  # 5.55
    await move("-0.60")  # 4.95: no alert
    await move("+1.05")  # 6.00: re-armed
    await move("-1.01")  # 4.99: alert 2
    await move("-0.01")  # 4.98: still below, no alert

    async def stored() -> list[dict[str, Any]]:
        r = await admin.get("/v1/tenants/acme/alerts?kind=low_balance&account=a1")
        return list(r.json()["items"])

    await eventually(lambda: _count(stored, 2), 5, "two low-balance alerts")
    alerts = await stored()
    assert [a["balance"] for a in alerts] == ["4.99", "4.90"]
    # nothing else arrives: the later moves were all inside the hysteresis band
    await eventually(lambda: streams_empty(api), 5, "every alert entry to be stored")
    assert len(await stored()) == 2


async def streams_empty(api: Api) -> bool:
    """Every alert entry Redis produced has been stored (the feed deletes after storing)."""
    redis = api.engine.redis
    return all([await redis.xlen(alerts_key(b)) == 0 for b in range(BUCKETS)])


async def _count(fetch: Any, n: int) -> bool:
    return len(await fetch()) >= n


async def test_exhausted_status_change_and_immediate_threshold(api: Api, world: World) -> None:
    admin = world.a.admin
    # a line above the balance fires when it is set
    r = await admin.patch("/v1/tenants/acme/accounts/a2",
                          json={"low_balance_thresholds": ["20.00"]})
    assert r.status_code == 200
    # spending everything is "exhausted", once
    await call(api, "a1", "c-1", 10_020)  # 10.02 of talk on 10.00: balance -0.02
    r = await admin.post(f"{A1}/status", json={"status": "suspended", "reason": "fraud check"})
    assert r.status_code == 200, r.text

    async def kinds() -> list[tuple[str, str]]:
        r = await admin.get("/v1/tenants/acme/alerts")
        return [(a["kind"], a["account_id"]) for a in r.json()["items"]]

    want = [("status_changed", "a1"), ("exhausted", "a1"), ("low_balance", "a2")]

    async def all_there() -> bool:
        return sorted(await kinds()) == sorted(want)

    await eventually(all_there, 5, f"alerts {want}")
    status = (await admin.get("/v1/tenants/acme/alerts?kind=status_changed")).json()["items"][0]
    assert (status["from_status"], status["to_status"]) == ("active", "suspended")


async def test_alerts_are_acknowledged_once_and_audited(api: Api, world: World) -> None:
    admin, ops = world.a.admin, world.a.clients["ops"]
    await admin.patch(A1, json={"low_balance_thresholds": ["50.00"]})

    async def one() -> bool:
        return len((await ops.get("/v1/tenants/acme/alerts")).json()["items"]) == 1

    await eventually(one, 5, "the alert")
    alert = (await ops.get("/v1/tenants/acme/alerts?acknowledged=false")).json()["items"][0]
    r1 = await ops.post(f"/v1/tenants/acme/alerts/{alert['id']}/ack")
    r2 = await admin.post(f"/v1/tenants/acme/alerts/{alert['id']}/ack")
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["acknowledged_by"] == r2.json()["acknowledged_by"] == world.a.key_ids["ops"]
    assert (await ops.get("/v1/tenants/acme/alerts?acknowledged=false")).json()["items"] == []
    audit = (await admin.get("/v1/tenants/acme/audit?action=alert.acknowledge")).json()["items"]
    assert len(audit) == 1 and audit[0]["key_id"] == world.a.key_ids["ops"]
    problem(await ops.post("/v1/tenants/acme/alerts/999999/ack"), 404, "not_found")
    problem(await world.a.clients["agent"].get("/v1/tenants/acme/alerts"), 403, "forbidden")


async def test_a_reconnecting_client_replays_what_it_missed(
    api: Api, world: World, served: str
) -> None:
    admin = world.a.admin
    await admin.patch(A1, json={"low_balance_thresholds": ["50.00"]})
    await admin.patch("/v1/tenants/acme/accounts/a2", json={"low_balance_thresholds": ["50.00"]})

    async def two() -> bool:
        return len((await admin.get("/v1/tenants/acme/alerts")).json()["items"]) == 2

    await eventually(two, 5, "two alerts")
    first, second = sorted(a["id"] for a in (await admin.get(
        "/v1/tenants/acme/alerts")).json()["items"])
    async with stream(served, world.a.keys["ops"], **{"Last-Event-ID": str(first)}) as events:
        alert_id, _, data = await events.next()
        assert alert_id == str(second) and data["account_id"] == "a2"
        # then live: another tenant's alert is not delivered, this tenant's is
        await world.b.admin.patch("/v1/tenants/zeta/accounts/b1",
                                  json={"low_balance_thresholds": ["50.00"]})
        await admin.post(f"{A1}/status", json={"status": "inactive", "reason": "x"})
        async with asyncio.timeout(5):
            _, _, live = await events.next()
        assert (live["tenant_id"], live["kind"]) == ("acme", "status_changed")


def test_a_subscriber_that_falls_behind_is_cut_off_not_waited_for() -> None:
    sub = Subscription("acme", None)
    alert = AlertOut(id=1, tenant_id="acme", account_id="a1", kind="exhausted", balance="0.00",
                     threshold=None, from_status=None, to_status=None,
                     raised_at="2024-01-01T00:00:00Z", acknowledged_at=None,  # type: ignore[arg-type]
                     acknowledged_by=None)
    for _ in range(QUEUE_SIZE):
        assert sub.offer(alert)
    assert not sub.offer(alert) and sub.closed
    items = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert items[-1] is None and len(items) == QUEUE_SIZE + 1
