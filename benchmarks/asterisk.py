"""Asterisk connector: AMI events parsed and applied per second, FastAGI authorizations per
second with p50/p99 latency, against a real engine on a private Redis.

* AMI, in memory: the events a real Asterisk 22 sent for five concurrent calls (transcript 10)
  replayed as many calls with fresh ids, framed by ``AmiParser`` and applied by the ``Tracker``.
* AMI, over TCP: the same bytes sent by a minimal AMI server to a whole ``PbxConnector``
  (socket, inbox, single ordered consumer, tracker, the engine's answer and end for every call
  on the private Redis), timed until every call is charged.
* FastAGI: a separate client process plays Asterisk's side (connect, environment, acknowledge
  every SET VARIABLE) against the connector's FastAGI server, whose answers come from the
  engine. Closed loop for the peak, then open loop at half of it for the latencies. The ratio
  to the engine's own authorize rate (in-process, same concurrency) is what the FastAGI layer
  costs.

Asterisk's side (the AMI bytes, the AMI server, the FastAGI client) is benchmarks/fake_asterisk.py.

Figures are printed, never asserted: these machines are shared and noisy.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from benchmarks.fake_asterisk import ACCOUNTS, TENANT, ami_server, render
from charging_engine.balance.store import BalanceStore
from charging_engine.balance.transport import RespTransport
from charging_engine.catalog import Account, Catalog, CatalogData, Tenant
from charging_engine.devservers import RedisServer, ensure_binaries
from charging_engine.rating.model import Rate, RatePlan
from charging_engine.runtime import tune_gc
from charging_engine.sessions.service import ChargingService
from pbx_connectors.asterisk.accounts import AccountMapper
from pbx_connectors.asterisk.ami_protocol import AmiParser
from pbx_connectors.asterisk.authorization import Authorizer
from pbx_connectors.asterisk.commands import Leg
from pbx_connectors.asterisk.config import (
    AccountsConfig,
    AmiConfig,
    ChargingConfig,
    FastAgiConfig,
    PbxConfig,
)
from pbx_connectors.asterisk.connector import PbxConnector
from pbx_connectors.asterisk.fastagi import FastAgiServer
from pbx_connectors.asterisk.tracker import Tracker

PLAN = RatePlan("bench", "USD", (
    Rate(prefix="1", price_per_minute=10_000, first_increment=6, next_increment=6),
    Rate(prefix="44", price_per_minute=20_000, first_increment=60, next_increment=1),
))


@dataclass
class Figures:
    events_per_call: float
    pure_events: float
    tcp_events: float
    tcp_calls: float
    agi_peak: float
    engine_authorize: float
    agi_p50_ms: float
    agi_p99_ms: float
    agi_offered: float


def pure_ami(batches: int) -> tuple[float, float]:
    data, legs, n = render(batches)
    tracker = Tracker(TENANT, AccountMapper(AccountsConfig()))
    now = time.time_ns() // 1_000_000
    for leg in legs:
        tracker.authorized(leg, now)
    parser = AmiParser(expect_banner=False)
    start = time.perf_counter()
    parser.feed(data)
    commands = 0
    for msg in parser.messages():
        commands += len(tracker.apply(msg, now))
    elapsed = time.perf_counter() - start
    return n / elapsed, n / len(legs)


async def tcp_ami(url: str, batches: int, tag: str) -> tuple[float, float]:
    data, legs, n = render(batches, tag)
    svc, client = await setup(url)
    go = asyncio.Event()
    server = await ami_server(data, go)
    port = server.sockets[0].getsockname()[1]
    config = PbxConfig(name="bench", tenant=TENANT,
                       ami=AmiConfig(port=port, username="u", secret="s"),
                       fastagi=FastAgiConfig(port=0),
                       charging=ChargingConfig(cdr_wait_s=0.05, reconcile_interval_s=3600))
    conn = PbxConnector(svc, config)
    stop = asyncio.Event()
    task = asyncio.create_task(conn.run(stop))
    try:
        await conn.ami.logged_in.wait()
        for i in range(0, len(legs), 500):
            await asyncio.gather(*(svc.authorize(TENANT, leg.account, leg.call_id,
                                                 "12125550100") for leg in legs[i:i + 500]))
        for leg in legs:
            conn.authorized(leg)  # what the FastAGI server does for an allowed call
        tune_gc()
        start = time.perf_counter()
        go.set()
        await until(lambda: conn.tracker.events_applied >= n)
        applied = time.perf_counter() - start
        await until(lambda: conn.executor.stats["ended"] >= len(legs)
                    and not conn.executor.pending)
        charged = time.perf_counter() - start
        return n / applied, len(legs) / charged
    finally:
        stop.set()
        await task
        server.close()
        await svc.store.close()
        await client.aclose()


async def until(done: Callable[[], bool]) -> None:
    """Poll counters owned by the connector (1 ms resolution is plenty at these durations)."""
    while not done():  # noqa: ASYNC110 - nothing to wait on but the counters themselves
        await asyncio.sleep(0.001)


# --- engine and FastAGI ------------------------------------------------------------------------

async def setup(url: str) -> tuple[ChargingService, aioredis.Redis]:
    client = aioredis.Redis.from_url(url)
    store = BalanceStore(client, 64, idem_ttl_s=3600, transport=RespTransport(url))
    await store.load()
    accounts = [Account(TENANT, f"a{i}", "USD", "bench") for i in range(ACCOUNTS)]
    catalog = Catalog(CatalogData(1, [Tenant(TENANT, "Bench", "USD")], accounts,
                                  [(TENANT, PLAN)]))
    for a in accounts:
        await store.provision(TENANT, a.account_id, currency="USD", credit_limit=0,
                              status="active", now_ms=1)
        await store.credit(TENANT, a.account_id, kind="topup", amount=10**15,
                           idem_key="bench", extra={}, now_ms=1)
    return ChargingService(store, catalog), client


async def engine_authorize(url: str, seconds: float, workers: int) -> float:
    svc, client = await setup(url)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            await svc.authorize(TENANT, f"a{(w + i) % ACCOUNTS}", f"e-{w}-{i}", "12125550100")
            done += 1

    try:
        tune_gc()
        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(workers)))
        return done / (time.perf_counter() - start)
    finally:
        await svc.store.close()
        await client.aclose()


async def agi_server(url: str, tag: str) -> tuple[FastAgiServer, Authorizer, ChargingService,
                                                   aioredis.Redis, Tracker]:
    svc, client = await setup(url)
    tracker = Tracker(TENANT)

    def register(leg: Leg) -> None:  # as the connector does for an allowed call
        tracker.authorized(leg, 0)

    auth = Authorizer(svc, TENANT, AccountMapper(AccountsConfig()),
                      FastAgiConfig(port=0, max_connections=10_000), register)
    server = FastAgiServer(FastAgiConfig(port=0, max_connections=10_000), auth.answer, tag)
    await server.start()
    tune_gc()
    return server, auth, svc, client, tracker


def agi_client(port: int, mode: str, value: float, seconds: float, tag: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.fake_asterisk", str(port), mode, str(value),
         str(seconds), tag], check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def _fastagi(url: str, mode: str, value: float, seconds: float, tag: str
                   ) -> dict[str, float]:
    server, auth, svc, client, _ = await agi_server(url, tag)
    try:
        return await asyncio.to_thread(agi_client, server.port, mode, value, seconds, tag)
    finally:
        await server.close()
        await auth.aclose()
        await svc.store.close()
        await client.aclose()


# --- run and report ----------------------------------------------------------------------------

def run(seconds: float = 4.0, rounds: int = 3, batches: int = 400) -> Figures:
    import logging

    import uvloop

    logging.getLogger("pbx_connectors").setLevel(logging.ERROR)  # reconnects of the fake PBX
    redis_bin, _ = ensure_binaries()
    pure = [pure_ami(batches) for _ in range(rounds)]
    with tempfile.TemporaryDirectory(prefix="ce-bench-ast-") as tmp:
        server = RedisServer(Path(tmp), redis_server=redis_bin)
        server.start()
        try:
            tcp = [uvloop.run(tcp_ami(server.url, batches, f"r{r}")) for r in range(rounds)]
            peaks, engine = [], []
            for r in range(rounds):  # alternate the two sides: same noise for both
                peaks.append(uvloop.run(_fastagi(server.url, "closed", 50, seconds, f"p{r}")))
                engine.append(uvloop.run(engine_authorize(server.url, seconds, 50)))
            peak = statistics.median(p["rate"] for p in peaks)
            lat = uvloop.run(_fastagi(server.url, "open", peak / 2, seconds, "lat"))
        finally:
            server.stop()
    return Figures(
        events_per_call=pure[0][1],
        pure_events=statistics.median(p[0] for p in pure),
        tcp_events=statistics.median(t[0] for t in tcp),
        tcp_calls=statistics.median(t[1] for t in tcp),
        agi_peak=peak, engine_authorize=statistics.median(engine),
        agi_p50_ms=lat["p50"], agi_p99_ms=lat["p99"], agi_offered=peak / 2,
    )


def report(f: Figures) -> str:
    return "\n".join([
        "asterisk: AMI events and FastAGI authorizations (medians of alternating rounds)",
        f"  AMI events per call (transcript 10)              {f.events_per_call:10.1f}",
        f"  AMI events parsed+applied, in memory             {f.pure_events:10,.0f} /s",
        f"  AMI events over TCP through the connector        {f.tcp_events:10,.0f} /s",
        f"  calls answered+charged from those events         {f.tcp_calls:10,.0f} /s",
        f"  = calls/s the event path sustains (TCP / per call) "
        f"{f.tcp_events / f.events_per_call:8,.0f} /s",
        f"  FastAGI authorizations, 50 connections (peak)    {f.agi_peak:10,.0f} /s",
        f"  engine authorize in-process, 50 workers          {f.engine_authorize:10,.0f} /s",
        f"  ratio FastAGI / engine                           "
        f"{f.agi_peak / f.engine_authorize:10.2f}",
        f"  FastAGI at {f.agi_offered:,.0f}/s (half of peak): p50 / p99   "
        f"{f.agi_p50_ms:.2f} ms / {f.agi_p99_ms:.2f} ms",
    ])


if __name__ == "__main__":
    print(report(run()))
