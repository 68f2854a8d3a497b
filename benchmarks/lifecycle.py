"""Engine authorize->commit lifecycles against redis-benchmark running the same functions.

Everything is measured in one run on one machine, side by side, and printed as ratios:

* redis-benchmark (50 clients, no pipelining) calling ``ce_authorize`` and ``ce_settle`` with
  fresh call ids; a lifecycle is one of each, so its rate is 1 / (1/auth + 1/settle);
* the engine in-process: many concurrent calls doing authorize -> end through the
  ``ChargingService`` (rating, session record, coalesced pipelines), closed loop;
* authorize latency (p50/p99) under an open-loop load at half the engine's peak rate.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from charging_engine.balance.entries import pack_extra
from charging_engine.balance.keys import AccountKeys
from charging_engine.balance.store import BalanceStore, end_key
from charging_engine.balance.transport import RespTransport
from charging_engine.catalog import Account, Catalog, CatalogData, Tenant
from charging_engine.devservers import RedisServer, ensure_binaries
from charging_engine.rating.model import Rate, RatePlan
from charging_engine.runtime import tune_gc
from charging_engine.sessions.blob import SessionInfo, call_detail, pack_session
from charging_engine.sessions.service import ChargingService

BUCKETS = 64
ACCOUNTS = 64
PLAN = RatePlan("bench", "USD", (
    Rate(prefix="1", price_per_minute=10_000, first_increment=6, next_increment=6),
    Rate(prefix="44", price_per_minute=20_000, first_increment=60, next_increment=1),
))


@dataclass
class Figures:
    redis_authorize: float
    redis_settle: float
    engine_lifecycles: float
    p50_ms: float
    p99_ms: float
    offered: float

    @property
    def redis_lifecycles(self) -> float:
        return 1 / (1 / self.redis_authorize + 1 / self.redis_settle)


def redis_benchmark(port: int, requests: int, *command: str) -> float:
    """Requests/s that redis-benchmark reports for one command (``__rand_int__`` varies ids)."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-r", "100000000",
         "-P", "1", "-q", *command],
        check=True, capture_output=True, text=True,
    ).stdout
    m = re.findall(r"([\d.]+) requests per second", out.replace("\r", "\n"))
    if not m:
        raise RuntimeError(f"unexpected redis-benchmark output: {out!r}")
    return float(m[-1])


def payload_sizes() -> tuple[int, int]:
    """Bytes of the session record and of the CDR extra the engine sends for a benchmark call,
    so redis-benchmark stores as much per call (Redis keeps both opaque)."""
    now = int(time.time() * 1000)
    info = SessionInfo(PLAN.rates[0], "12125550100", PLAN.plan_id, now)
    cdr = call_detail(info, None, now + 42_000, 42, 42, "answered")  # ended unanswered, as here
    return len(pack_session(info)), len(pack_extra(cdr))


def redis_side(port: int, requests: int) -> tuple[float, float]:
    """redis-benchmark calling the engine's functions with payloads of the engine's sizes.
    Its settlements find no reservation (its ids are random), so they do a little less than
    the engine's: the comparison leans towards redis-benchmark."""
    k = AccountKeys.of("bench", "rb", BUCKETS)
    now = str(int(time.time() * 1000))
    common = ["bench", "rb", now, "3600"]
    blob, extra = ("x" * n for n in payload_sizes())
    auth = redis_benchmark(
        port, requests, "FCALL", "ce_authorize", "6", *k.keys(end_key("c__rand_int__")),
        *common, "c__rand_int__", "1000", "100", str(int(now) + 600_000), blob, "",
    )
    settle = redis_benchmark(
        port, requests, "FCALL", "ce_settle", "6", *k.keys(end_key("d__rand_int__")),
        *common, "d__rand_int__", "commit", "1500", "0", extra, "42", blob,
    )
    return auth, settle


async def setup(url: str) -> tuple[ChargingService, aioredis.Redis]:
    client = aioredis.Redis.from_url(url, max_connections=64)
    store = BalanceStore(client, BUCKETS, idem_ttl_s=3600, transport=RespTransport(url))
    await store.load()
    accounts = [Account("bench", f"a{i}", "USD", "bench") for i in range(ACCOUNTS)]
    catalog = Catalog(CatalogData(1, [Tenant("bench", "Bench", "USD")], accounts,
                                  [("bench", PLAN)]))
    for a in [*accounts, Account("bench", "rb", "USD", "bench")]:
        await store.provision("bench", a.account_id, currency="USD", credit_limit=0,
                              status="active", now_ms=1)
        await store.credit("bench", a.account_id, kind="topup", amount=10**14,
                           idem_key="bench", extra={}, now_ms=1)
    return ChargingService(store, catalog), client


async def closed_loop(svc: ChargingService, seconds: float, workers: int, tag: str) -> float:
    """Lifecycles/s with ``workers`` calls always in flight."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            call, acc = f"{tag}-{w}-{i}", f"a{(w + i) % ACCOUNTS}"
            d = await svc.authorize("bench", acc, call, "+1 212 555 0100")
            await svc.end("bench", acc, call, billable_seconds=min(d.max_seconds, 42))
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done / (time.perf_counter() - start)


async def open_loop(svc: ChargingService, rate: float, seconds: float) -> list[float]:
    """Authorize latencies (ms) with calls arriving at ``rate``/s whatever the engine does."""
    latencies: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        call, acc = f"open-{i}", f"a{i % ACCOUNTS}"
        t0 = time.perf_counter()
        d = await svc.authorize("bench", acc, call, "+44 20 7946 0000")
        latencies.append((time.perf_counter() - t0) * 1000)
        await svc.end("bench", acc, call, billable_seconds=min(d.max_seconds, 30))

    interval = 1 / rate
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.create_task(one(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await asyncio.gather(*list(tasks))
    return latencies


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


async def engine_peak(url: str, seconds: float, round_no: int) -> float:
    svc, client = await setup(url)
    try:
        tune_gc()  # as `charging-engine serve` does
        await closed_loop(svc, 0.5, 200, f"warm{round_no}")
        return await closed_loop(svc, seconds, 200, f"peak{round_no}")
    finally:
        await svc.store.close()
        await client.aclose()


async def engine_latency(url: str, rate: float, seconds: float) -> tuple[float, float]:
    svc, client = await setup(url)
    try:
        tune_gc()
        await closed_loop(svc, 0.5, 200, "warm-lat")
        lat = await open_loop(svc, rate, seconds)
        return percentile(lat, 0.50), percentile(lat, 0.99)
    finally:
        await svc.store.close()
        await client.aclose()


def run(seconds: float = 5.0, requests: int = 200_000, rounds: int = 3) -> Figures:
    """Alternate redis-benchmark and engine rounds and keep the medians: the machines are
    shared and noisy, and alternating exposes both sides to the same noise."""
    import uvloop

    redis_bin, _ = ensure_binaries()
    auths, settles, peaks = [], [], []
    with tempfile.TemporaryDirectory(prefix="ce-bench-") as tmp:
        server = RedisServer(Path(tmp), redis_server=redis_bin)
        server.start()
        try:
            asyncio.run(_prepare(server.url))  # functions loaded, accounts funded
            for n in range(rounds):
                auth, settle = redis_side(server.port, requests)
                auths.append(auth)
                settles.append(settle)
                peaks.append(uvloop.run(engine_peak(server.url, seconds, n)))
            rows = zip(auths, settles, peaks, strict=True)
            print("rounds (authorize, settle, engine):",
                  [(round(a), round(s), round(p)) for a, s, p in rows])
            peak = statistics.median(peaks)
            p50, p99 = uvloop.run(engine_latency(server.url, peak / 2, seconds))
        finally:
            server.stop()
    return Figures(statistics.median(auths), statistics.median(settles), peak, p50, p99,
                   peak / 2)


async def _prepare(url: str) -> None:
    svc, client = await setup(url)
    await svc.store.close()
    await client.aclose()


def report(f: Figures) -> str:
    ratio = f.engine_lifecycles / f.redis_lifecycles
    return "\n".join([
        "## authorize -> commit lifecycles (one run, same machine, medians of alternating rounds)",
        f"redis-benchmark ce_authorize (50 clients, unpipelined): {f.redis_authorize:10.0f} /s",
        f"redis-benchmark ce_settle    (50 clients, unpipelined): {f.redis_settle:10.0f} /s",
        f"redis-benchmark lifecycle (1 authorize + 1 settle):     {f.redis_lifecycles:10.0f} /s",
        f"engine lifecycles (in-process, 200 concurrent calls):   {f.engine_lifecycles:10.0f} /s",
        f"ratio engine / redis-benchmark lifecycle:               {ratio:10.2f}  (target >= 1)",
        f"authorize latency at {f.offered:.0f}/s (half of peak): p50 {f.p50_ms:.3f} ms, "
        f"p99 {f.p99_ms:.3f} ms  (target p99 <= 2 ms)",
    ])
