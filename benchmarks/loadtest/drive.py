"""One load run end to end: the private stack, the tenant, the engine (with its PBX for
fastagi), locust for the run time, the tail of calls charged, the books and the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from benchmarks.loadtest.books import CHARGED_WAIT_S, books_close, engine_figures, wait_charged
from benchmarks.loadtest.engine import engine_env, redis_ops, running_engine
from benchmarks.loadtest.locust_run import locust_env, run_locust
from benchmarks.loadtest.pbx import PbxSide, start_pbx
from benchmarks.loadtest.report import Outcome, render
from benchmarks.loadtest.tenant import KEY, seed
from charging_engine.config import Settings
from charging_engine.devservers import PrivateStack, free_port

ROOT = Path(__file__).resolve().parents[2]


async def drive(args: argparse.Namespace, redis_url: str, database_url: str, buckets: int,
                out_dir: Path) -> Outcome:
    """Engine up (with its PBX for fastagi), locust for the run time, the tail charged."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = engine_env(redis_url, database_url, port)
    load_env = locust_env(args)
    target = ["--host", url]
    pbx: PbxSide | None = None
    async with contextlib.AsyncExitStack() as stack:  # on exit: the engine stops, then the PBX
        if args.scenario == "fastagi":
            pbx, pbx_engine_env, pbx_locust_env = await start_pbx(out_dir)
            stack.push_async_callback(pbx.close)
            env |= pbx_engine_env
            load_env |= pbx_locust_env
            target = []  # the locust users reach the engine over FastAGI, not HTTP
        else:
            load_env["CE_LOAD_KEY"] = KEY
        await stack.enter_async_context(running_engine(
            env, url, out_dir / "engine.log",
            lambda: pbx is None or pbx.sim.ami_clients > 0))
        ops_before = redis_ops(redis_url)
        locust = await run_locust(args, target, {**env, **load_env}, out_dir)
        ops_after = redis_ops(redis_url)
        if pbx is not None:
            await charge_the_tail(args, pbx, redis_url, buckets)
    return Outcome(locust.exit_code, locust.log, locust.elapsed, ops_before, ops_after,
                   pbx.figures if pbx is not None else None)


async def charge_the_tail(args: argparse.Namespace, pbx: PbxSide, redis_url: str,
                          buckets: int) -> None:
    """The calls still playing when locust stopped end, then the engine charges them (both
    bounded: what is left is reported, and gated by the books)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.hold_ms / 1000 + 2 * args.talk + 30):
            await pbx.finish()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CHARGED_WAIT_S):
            await wait_charged(redis_url, buckets)


def run(args: argparse.Namespace) -> int:
    """The whole run; its exit code is locust's stats gate, else 1 if the books do not close."""
    out_dir = ROOT / "benchmarks" / "reports" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    with PrivateStack(ROOT / ".var") as stack:
        settings = Settings(redis_url=stack.redis_url, database_url=stack.database_url)
        asyncio.run(seed(settings, args.accounts, args.poor))
        outcome = uvloop.run(drive(args, stack.redis_url, stack.database_url,
                                   settings.buckets, out_dir))
        (out_dir / "locust.log").write_text(outcome.log)
        figures = asyncio.run(engine_figures(settings))
    exit_code = outcome.exit_code or (0 if books_close(args.scenario, figures) else 1)
    report = render(out_dir, args, outcome, figures, exit_code)
    (out_dir / "report.md").write_text(report)
    print(report)
    print(f"report and CSVs in {out_dir}")
    return exit_code
