"""One-command load test: private stack, seeded accounts, the engine, locust headless, a report.

    ./run bench load --users 50 --spawn-rate 25 --run-time 30s --accounts 1000

Starts private Redis/Postgres (or uses REDIS_URL/DATABASE_URL), loads a tenant with N funded
accounts (and a few without money, for denials), runs ``charging-engine serve`` as its own
process, drives it with locust (benchmarks/locustfiles/realtime.py) headless for a fixed time,
then writes a Markdown and CSV report under benchmarks/reports/<time>/: throughput,
p50/p95/p99, failures, and engine-side figures (settlement lag, Redis operations, ledger rows,
reconcile). The exit code is locust's stats gate (p99 and failure-ratio thresholds).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from charging_engine.bootstrap import open_engine
from charging_engine.config import Settings
from charging_engine.devservers import PrivateStack, free_port
from charging_engine.ledger.reconcile import reconcile
from charging_engine.loader import TenantData, load_tenant

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfiles" / "realtime.py"
KEY = "loadtest-key"
RATES = """prefix,description,price_per_minute,first_increment,next_increment
1,USA,0.0100,6,6
44,UK,0.0200,60,1
49,Germany,0.0300,30,6
33,France,0.0250,1,1
"""


def accounts_csv(funded: int, poor: int) -> str:
    rows = ["account_id,kind,credit_limit,opening_balance,status"]
    rows += [f"acc{i},prepaid,0,1000000.00,active" for i in range(funded)]
    rows += [f"poor{i},prepaid,0,0,active" for i in range(poor)]
    return "\n".join(rows) + "\n"


async def seed(settings: Settings, funded: int, poor: int) -> None:
    async with open_engine(settings) as engine:
        await load_tenant(engine, TenantData.from_text(
            tenant_id="load", name="Load test", currency="USD", timezone="UTC", plan_id="load",
            rates=RATES, accounts=accounts_csv(funded, poor), pbx_key=KEY,
        ))


async def engine_figures(settings: Settings) -> dict[str, Any]:
    async with open_engine(settings) as engine:
        lag_before_drain = await engine.settlement.lag()
        deadline = time.monotonic() + 120
        while await engine.settlement.lag() and time.monotonic() < deadline:
            await engine.settlement.drain_once()
        diffs = await reconcile(engine.redis, engine.pool, settings.buckets, engine.settlement)
        async with engine.pool.acquire() as conn:
            rows = await conn.fetchval("select count(*) from ledger_entries")
            calls = await conn.fetchval("select count(*) from calls")
    return {"lag_at_stop": lag_before_drain, "ledger_rows": rows, "calls": calls,
            "reconcile_differences": len(diffs)}


def redis_ops(url: str) -> dict[str, int]:
    r = redis.Redis.from_url(url)
    try:
        stats = r.info("commandstats")
        total = int(r.info("stats")["total_commands_processed"])
    finally:
        r.close()
    out = {"total_commands": total}
    for name, v in stats.items():
        if name in ("cmdstat_fcall", "cmdstat_xreadgroup", "cmdstat_xack", "cmdstat_hget"):
            out[name.removeprefix("cmdstat_")] = int(v["calls"])
    return out


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the engine exited during start-up")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the engine did not become healthy")


def run(args: argparse.Namespace) -> int:
    out_dir = ROOT / "benchmarks" / "reports" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    with PrivateStack(ROOT / ".var") as stack:
        settings = Settings(redis_url=stack.redis_url, database_url=stack.database_url)
        asyncio.run(seed(settings, args.accounts, args.poor))
        port = free_port()
        env = {**os.environ, "REDIS_URL": stack.redis_url, "DATABASE_URL": stack.database_url,
               "CE_REALTIME_PORT": str(port)}
        with (out_dir / "engine.log").open("wb") as log:
            engine = subprocess.Popen([sys.executable, "-m", "charging_engine", "serve"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, engine)
            ops_before = redis_ops(stack.redis_url)
            started = time.monotonic()
            locust = subprocess.run(
                [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                 "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.run_time,
                 "--host", url, "--csv", str(out_dir / "locust"), "--only-summary",
                 "--stop-timeout", "5"],
                env={**env, "CE_LOAD_KEY": KEY, "CE_LOAD_ACCOUNTS": str(args.accounts),
                     "CE_LOAD_POOR": str(args.poor), "CE_LOAD_TALK_S": str(args.talk),
                     "CE_LOAD_HOLD_MS": str(args.hold_ms), "CE_LOAD_P99_MS": str(args.p99_ms),
                     "CE_LOAD_MAX_FAIL": str(args.max_fail)},
                capture_output=True, text=True,
            )
            elapsed = time.monotonic() - started
            ops_after = redis_ops(stack.redis_url)
        finally:
            engine.terminate()
            engine.wait(30)
        (out_dir / "locust.log").write_text(locust.stdout + locust.stderr)
        figures = asyncio.run(engine_figures(settings))
    report = render(out_dir, args, elapsed, ops_before, ops_after, figures, locust.returncode)
    (out_dir / "report.md").write_text(report)
    print(report)
    print(f"report and CSVs in {out_dir}")
    return locust.returncode


def render(out_dir: Path, args: argparse.Namespace, elapsed: float, before: dict[str, int],
           after: dict[str, int], figures: dict[str, Any], exit_code: int) -> str:
    with (out_dir / "locust_stats.csv").open() as f:
        stats = list(csv.DictReader(f))
    lines = [
        f"# Load test {out_dir.name}",
        "",
        f"{args.users} PBX users (spawn {args.spawn_rate}/s) for {args.run_time} on "
        f"{args.accounts} funded + {args.poor} empty accounts; locust exit code {exit_code} "
        f"(gate: p99 <= {args.p99_ms} ms, failures <= {args.max_fail:.2%}).",
        "",
        "| request | count | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in stats:
        lines.append(
            f"| {s['Name']} | {s['Request Count']} | {s['Failure Count']} "
            f"| {float(s['Requests/s']):.0f} | {s['50%']} | {s['95%']} | {s['99%']} "
            f"| {float(s['Max Response Time']):.0f} |"
        )
    commands = after["total_commands"] - before["total_commands"]
    fcalls = after.get("fcall", 0) - before.get("fcall", 0)
    lines += [
        "",
        "Engine side:",
        f"- Redis: {commands} commands ({commands / elapsed:.0f}/s), of which {fcalls} "
        f"balance functions (FCALL, {fcalls / elapsed:.0f}/s)",
        f"- settlement lag when traffic stopped: {figures['lag_at_stop']} entries",
        f"- Postgres ledger: {figures['ledger_rows']} entries, {figures['calls']} call records",
        f"- reconcile Redis vs ledger: {figures['reconcile_differences']} difference(s)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks load", description=__doc__)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--spawn-rate", type=float, default=25)
    p.add_argument("--run-time", default="30s")
    p.add_argument("--accounts", type=int, default=1000)
    p.add_argument("--poor", type=int, default=10)
    p.add_argument("--talk", type=int, default=30, help="typical billable seconds")
    p.add_argument("--hold-ms", type=int, default=0, help="ring time before answer")
    p.add_argument("--p99-ms", type=float, default=100)
    p.add_argument("--max-fail", type=float, default=0.01)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
