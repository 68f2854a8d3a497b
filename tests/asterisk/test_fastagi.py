"""The FastAGI server over real TCP, deciding with a real engine on the private Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from charging_engine.balance.store import BalanceStore
from charging_engine.balance.transport import RespTransport
from charging_engine.devservers import free_port
from charging_engine.sessions.service import ChargingService
from pbx_connectors.asterisk.accounts import AccountMapper
from pbx_connectors.asterisk.authorization import Authorizer
from pbx_connectors.asterisk.commands import Leg
from pbx_connectors.asterisk.config import AccountsConfig, FastAgiConfig
from pbx_connectors.asterisk.fastagi import FastAgiServer
from tests.asterisk.support import (
    CLOSED,
    OPEN,
    PER_SECOND,
    SlowLink,
    account,
    agi_call,
    agi_env,
    fund,
    service,
)

VARS = ["CHARGING_MAXSEC", "CHARGING_MAXMS", "CHARGING_REASON", "CHARGING_STATUS"]


@asynccontextmanager
async def agi_server(
    svc: ChargingService, tenant: str = CLOSED, **cfg: object
) -> AsyncIterator[tuple[FastAgiServer, list[Leg]]]:
    legs: list[Leg] = []
    config = FastAgiConfig(port=0, **cfg)
    auth = Authorizer(svc, tenant, AccountMapper(AccountsConfig()), config, legs.append)
    server = FastAgiServer(config, auth.answer)
    await server.start()
    try:
        yield server, legs
    finally:
        await server.close()
        await auth.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_allowed_call_gets_the_backstop_limit_and_is_registered(
    store: BalanceStore,
) -> None:
    acc = account("acc1")
    await fund(store, acc, 90 * PER_SECOND)  # money for 90 seconds
    svc = service(store, acc, slice_seconds=30)
    async with agi_server(svc) as (server, legs):
        res = await agi_call(server.port, agi_env("u-1", linkedid="link-1"))
    assert res.order == VARS  # the status comes last
    assert res.variables == {"CHARGING_MAXSEC": "90", "CHARGING_MAXMS": "90000",
                             "CHARGING_REASON": "ok", "CHARGING_STATUS": "ALLOWED"}
    assert legs == [Leg("u-1", CLOSED, "acc1", "PJSIP/trunk-u-1", "link-1")]
    state = await store.state(CLOSED, "acc1")
    assert state is not None and state.reserved == 30 * PER_SECOND  # one slice reserved


@pytest.mark.parametrize(("env", "reason"), [
    (agi_env("u-2", account="acc1"), "insufficient_funds"),
    (agi_env("u-3", account="nobody"), "unknown_account"),
    (agi_env("u-4", account=""), "unknown_account"),
    (agi_env("u-5", exten="s"), "invalid_destination"),
    (agi_env("u-6", exten="999999999"), "no_rate"),
])
async def test_denials(store: BalanceStore, env: bytes, reason: str) -> None:
    acc = account("acc1")
    await fund(store, acc, 0)
    async with agi_server(service(store, acc)) as (server, legs):
        res = await agi_call(server.port, env)
    assert res.variables == {"CHARGING_MAXSEC": "0", "CHARGING_MAXMS": "0",
                             "CHARGING_REASON": reason, "CHARGING_STATUS": "DENIED"}
    assert legs == []


async def test_unknown_route_is_an_error(store: BalanceStore) -> None:
    async with agi_server(service(store)) as (server, _):
        res = await agi_call(server.port, agi_env("u-7", script="balance"))
    assert (res.status, res.variables["CHARGING_REASON"]) == ("ERROR", "unknown_route")


async def test_stalled_half_header_does_not_delay_anyone(store: BalanceStore) -> None:
    acc = account("acc1")
    await fund(store, acc, 10_000 * PER_SECOND)
    async with agi_server(service(store, acc), header_timeout_s=30.0) as (server, _):
        stalled = []
        for _ in range(5):  # half a header each, then silence
            r, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(b"agi_network: yes\nagi_network_script: autho")
            await w.drain()
            stalled.append(w)
        hostile = []
        for payload in (b"x" * 20_000, b"not an agi line\n\n", b"agi_a: b\n" * 200):
            r, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(payload)
            await w.drain()
            hostile.append((r, w))
        for _ in range(5):  # some peers that send part of a header and hang up
            _, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(b"agi_network: yes\nagi_req")
            w.close()
        # every other request is answered, each within 100 ms, one after the other and at once
        results = [await agi_call(server.port, agi_env(f"seq-{i}")) for i in range(10)]
        results += await asyncio.gather(*(agi_call(server.port, agi_env(f"par-{i}"))
                                          for i in range(20)))
        assert [r.status for r in results] == ["ALLOWED"] * 30
        slowest = max(r.seconds for r in results)
        assert slowest < 0.1, f"an AGI request took {slowest * 1000:.0f} ms"
        for r, w in hostile:  # garbage, oversized and over-long headers were dropped
            async with asyncio.timeout(5):
                assert await r.read() == b""
            w.close()
        for w in stalled:
            assert not w.is_closing()
            w.close()


async def test_never_completed_header_is_dropped_after_its_timeout(store: BalanceStore) -> None:
    async with agi_server(service(store), header_timeout_s=0.3) as (server, _):
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"agi_network: yes\n")
        await w.drain()
        async with asyncio.timeout(5):
            assert await r.read() == b""  # closed by the server, nothing set
        w.close()


async def test_connection_limit_and_allow_list(store: BalanceStore) -> None:
    acc = account("acc1")
    await fund(store, acc, 1000 * PER_SECOND)
    async with agi_server(service(store, acc), max_connections=2,
                          header_timeout_s=30.0) as (server, _):
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await eventually(lambda: _true(len(server._active) == 2), 5, "two held connections")
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(5):
            assert await r.read() == b""  # refused at once: the dialplan fails closed
        w.close()
        for _, hw in held:
            hw.close()
        await eventually(lambda: _true(not server._active), 5, "held connections to end")
        assert (await agi_call(server.port, agi_env("u-8"))).status == "ALLOWED"
    async with agi_server(service(store, acc), allow=("10.0.0.0/8",)) as (server, _):
        res = await agi_call(server.port, agi_env("u-9"))
        assert res.variables == {}


async def _true(value: bool) -> bool:
    return value


@asynccontextmanager
async def engine_at(url: str, *accounts: object) -> AsyncIterator[ChargingService]:
    client = aioredis.Redis.from_url(url)
    store = BalanceStore(client, buckets=16, transport=RespTransport(url, timeout=2.0))
    try:
        yield service(store, *accounts)  # type: ignore[arg-type]
    finally:
        await store.close()
        await client.aclose()


@pytest.mark.parametrize(("tenant", "status", "reason", "maxsec"), [
    (CLOSED, "ERROR", "engine_error", "0"),
    (OPEN, "ALLOWED", "fail_open", "45"),
])
async def test_unreachable_engine_follows_the_failure_policy(
    tenant: str, status: str, reason: str, maxsec: str,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with engine_at(url, account("acc1", tenant)) as svc, \
            agi_server(svc, tenant, fail_open_seconds=45) as (server, legs):
        res = await agi_call(server.port, agi_env("u-10"))
    assert res.order == VARS
    assert (res.status, res.variables["CHARGING_REASON"], res.variables["CHARGING_MAXSEC"]) == \
        (status, reason, maxsec)
    assert len(legs) == (1 if tenant == OPEN else 0)


@pytest.mark.parametrize("tenant", [CLOSED, OPEN])
async def test_stalled_engine_is_answered_within_the_answer_timeout(tenant: str) -> None:
    link = await SlowLink(("127.0.0.1", 9), stall=True).start()  # accepts, never answers
    try:
        async with engine_at(link.url, account("acc1", tenant)) as svc, \
                agi_server(svc, tenant, answer_timeout_s=0.3) as (server, _):
            res = await agi_call(server.port, agi_env("u-11"))
    finally:
        await link.close()
    assert res.variables["CHARGING_REASON"] == ("engine_timeout" if tenant == CLOSED
                                                else "fail_open")
    assert res.status == ("ERROR" if tenant == CLOSED else "ALLOWED")
    assert 0.3 <= res.seconds < 1.0  # answered at the bound, not at the engine's own timeout


@pytest.mark.parametrize("tenant", [CLOSED, OPEN])
async def test_late_reservation_is_given_back_when_failing_closed(
    redis_url: str, store: BalanceStore, tenant: str,
) -> None:
    acc = account("acc1", tenant)
    await fund(store, acc, 1000 * PER_SECOND)
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    link = await SlowLink((host, int(port)), delay=0.5).start()
    try:
        async with engine_at(link.url, acc) as svc, \
                agi_server(svc, tenant, answer_timeout_s=0.1) as (server, _):
            res = await agi_call(server.port, agi_env("u-12"))
            assert res.status == ("ERROR" if tenant == CLOSED else "ALLOWED")

            async def reserved() -> int:
                state = await store.state(tenant, "acc1")
                assert state is not None
                return state.reserved

            await eventually(lambda: _true(True), 0, "")
            if tenant == CLOSED:  # reserved late, then released: nothing stays held
                await eventually(lambda: _settled(store, tenant, "u-12"), 10,
                                 "the late reservation to be released")
                assert await reserved() == 0
            else:  # failing open: the late reservation now covers the running call
                await eventually(lambda: _gt0(reserved()), 10, "the late reservation")
    finally:
        await link.close()


async def _settled(store: BalanceStore, tenant: str, call: str) -> bool:
    return await store.settlement_of(tenant, "acc1", call) is not None


async def _gt0(value: Awaitable[int]) -> bool:
    return await value > 0
