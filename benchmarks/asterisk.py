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

from charging_engine.balance.store import BalanceStore
from charging_engine.balance.transport import RespTransport
from charging_engine.catalog import Account, Catalog, CatalogData, Tenant
from charging_engine.devservers import RedisServer, ensure_binaries
from charging_engine.rating.model import Rate, RatePlan
from charging_engine.runtime import tune_gc
from charging_engine.sessions.service import ChargingService
from pbx_connectors.asterisk.accounts import AccountMapper
from pbx_connectors.asterisk.ami_protocol import AmiParser, Message, parse_all
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
from pbx_connectors.asterisk.events import timestamp_us
from pbx_connectors.asterisk.fastagi import FastAgiServer
from pbx_connectors.asterisk.tracker import Tracker

TENANT = "bench"
ACCOUNTS = 64
PLAN = RatePlan("bench", "USD", (
    Rate(prefix="1", price_per_minute=10_000, first_increment=6, next_increment=6),
    Rate(prefix="44", price_per_minute=20_000, first_increment=60, next_increment=1),
))
TRANSCRIPT = (Path(__file__).resolve().parent.parent / "tests" / "fixtures"
              / "asterisk-transcripts" / "10_five_concurrent_calls.txt")


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


# --- AMI traffic ----------------------------------------------------------------------------

def render(batches: int, tag: str = "") -> tuple[bytes, list[Leg], int]:
    """The transcript's events ``batches`` times over, ids prefixed per batch (and ``tag``),
    timestamps moved to now (the engine refuses answer times far from its clock)."""
    lines = TRANSCRIPT.read_text().splitlines()
    kept = [ln for ln in lines if not ln.startswith((">>>", "Asterisk Call Manager/"))]
    base = [m for m in parse_all("\r\n".join(kept).encode() + b"\r\n\r\n") if m.event]
    first = min(t for m in base if (t := timestamp_us(m)) is not None)
    shift = time.time_ns() // 1000 - first
    chunks: list[bytes] = []
    legs: list[Leg] = []
    for k in range(batches):
        for m in base:
            out = Message()
            for key, value in m.pairs:
                lk = key.lower()
                if lk.endswith(("uniqueid", "linkedid")) and value:
                    value = f"{tag}b{k}-{value}"
                elif lk == "timestamp":
                    us = int(value.replace(".", "")) + shift
                    value = f"{us // 1_000_000}.{us % 1_000_000:06d}"
                out.add(key, value)
            chunks.append(out.encode())
            if m.event == "Newchannel" and "@outbound" in (m.get("Channel") or "") \
                    and (m.get("Channel") or "").endswith(";2"):
                legs.append(Leg(f"{tag}b{k}-{m['Uniqueid']}", TENANT, f"a{len(legs) % ACCOUNTS}",
                                m["Channel"], f"{tag}b{k}-{m['Linkedid']}"))
    return b"".join(chunks), legs, len(base) * batches


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


async def _fake_asterisk(data: bytes, go: asyncio.Event) -> asyncio.Server:
    """Just enough AMI: banner, Login, Ping, an empty CoreShowChannels; then ``data``."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = AmiParser(expect_banner=False)

        async def blast() -> None:
            await go.wait()
            for i in range(0, len(data), 1 << 16):
                writer.write(data[i:i + (1 << 16)])
                await writer.drain()

        sender = asyncio.create_task(blast())
        try:
            while chunk := await reader.read(1 << 16):
                parser.feed(chunk)
                for msg in parser.messages():
                    aid = msg.get("ActionID") or ""
                    action = (msg.get("Action") or "").lower()
                    if action == "coreshowchannels":
                        writer.write(Message.of(Response="Success", ActionID=aid,
                                                EventList="start").encode())
                        writer.write(Message.of(Event="CoreShowChannelsComplete", ActionID=aid,
                                                EventList="Complete", ListItems=0).encode())
                    else:
                        writer.write(Message.of(Response="Success", ActionID=aid).encode())
        finally:
            sender.cancel()
            writer.close()

    return await asyncio.start_server(session, "127.0.0.1", 0)


async def tcp_ami(url: str, batches: int, tag: str) -> tuple[float, float]:
    data, legs, n = render(batches, tag)
    svc, client = await setup(url)
    go = asyncio.Event()
    server = await _fake_asterisk(data, go)
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
        [sys.executable, "-m", "benchmarks.asterisk", "client", str(port), mode, str(value),
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


# --- the client process (Asterisk's side) ------------------------------------------------------

async def _exchange(port: int, uniqueid: str, account: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write((
            "agi_network: yes\nagi_network_script: authorize\n"
            f"agi_request: agi://127.0.0.1:{port}/authorize\n"
            f"agi_channel: Local/12125550100@outbound-{uniqueid};2\nagi_type: Local\n"
            f"agi_uniqueid: {uniqueid}\nagi_callerid: 15550001\nagi_context: outbound\n"
            f"agi_extension: 12125550100\nagi_accountcode: {account}\n"
            f"agi_arg_1: {uniqueid}-h\n\n").encode())
        status = ""
        while line := await reader.readline():
            if line.startswith(b"SET VARIABLE CHARGING_STATUS"):
                status = line.split(b'"')[1].decode()
            writer.write(b"200 result=1\n")
        return status
    finally:
        writer.close()


async def _client(port: int, mode: str, value: float, seconds: float, tag: str
                  ) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    n = 0

    async def one(i: int) -> None:
        nonlocal failures
        t0 = time.perf_counter()
        status = await _exchange(port, f"{tag}-{i}", f"a{i % ACCOUNTS}")
        latencies.append((time.perf_counter() - t0) * 1000)
        failures += status != "ALLOWED"

    start = time.perf_counter()
    if mode == "closed":
        deadline = start + seconds

        async def worker() -> None:
            nonlocal n
            while time.perf_counter() < deadline:
                n += 1
                await one(n)

        await asyncio.gather(*(worker() for _ in range(int(value))))
    else:
        tasks = []
        total = int(value * seconds)
        for i in range(total):
            delay = start + i / value - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {"rate": len(latencies) / elapsed, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "failures": failures}


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


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
    if sys.argv[1:2] == ["client"]:
        import uvloop

        port, mode, value, secs, tag = sys.argv[2:7]
        print(json.dumps(uvloop.run(_client(int(port), mode, float(value), float(secs), tag))))
    else:
        print(report(run()))
