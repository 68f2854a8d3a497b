"""One-command load test: private stack, seeded accounts, the engine, locust headless, a report.

    ./run bench load --users 50 --spawn-rate 25 --run-time 30s --accounts 1000
    ./run bench load --scenario fastagi --users 20 --spawn-rate 10 --run-time 10s --accounts 200

Starts private Redis/Postgres (or uses REDIS_URL/DATABASE_URL), loads a tenant with N funded
accounts (and a few without money, for denials), runs ``charging-engine serve`` as its own
process, drives it with locust headless for a fixed time, then writes a report under
benchmarks/reports/<time>/ (report.md, report.csv; locust's own CSVs and final stats beside
them): throughput, p50/p95/p99, failures, and engine-side figures (Redis operations, settlement
lag, ledger rows, reservations left open, reconcile). The exit code is locust's stats gate (p99
and failure-ratio thresholds), else 1 when the books do not close: a reconcile difference, or
(fastagi) a reservation still open once the PBX has ended every call.

Scenarios (``--scenario``):

* ``realtime`` (benchmarks/locustfiles/realtime.py): PBX calls on the real-time HTTP API,
  authorize -> ring -> answer -> end, with denials, unknown destinations and parallel bursts.
* ``fastagi`` (benchmarks/locustfiles/fastagi.py): the engine runs the Asterisk connector
  (``CE_ASTERISK_CONFIG``, a TOML file written into the report folder). The PBX simulator's AMI
  server (pbx_connectors/asterisk/simulator) is the Asterisk the connector logs in to. Each
  locust user asks for every call over FastAGI as a dialplan does, then hands an allowed call to
  the simulator, which plays it on AMI under the authorized Uniqueid (Dial, answer, talk of
  ``--talk`` real seconds on average, Hangup, Cdr): the connector charges it at its hangup as on
  a real PBX, so no reservation is left to its TTL. When locust stops, the run waits for the
  calls still playing to end and for the engine to have charged them, then stops the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio as aioredis
import uvloop

from charging_engine.balance.keys import expiry_key
from charging_engine.bootstrap import open_engine
from charging_engine.config import Settings
from charging_engine.devservers import PrivateStack, free_port
from charging_engine.ledger.reconcile import reconcile
from charging_engine.loader import TenantData, load_tenant
from pbx_connectors.asterisk.simulator import (
    CallHandle,
    CallSpec,
    ScenarioError,
    Simulator,
    SimulatorConfig,
)

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILES = {
    "realtime": Path(__file__).resolve().parent / "locustfiles" / "realtime.py",
    "fastagi": Path(__file__).resolve().parent / "locustfiles" / "fastagi.py",
}
DEFAULT_TALK = {"realtime": 30, "fastagi": 2}  # realtime: reported seconds; fastagi: real ones
TENANT = "load"
KEY = "loadtest-key"
AMI_USER = "charging"
AMI_SECRET_ENV = "CE_LOAD_AMI_SECRET"
CALLER = "15550001"  # the caller id the FastAGI user sends
READY_WAIT_S = 60.0
CHARGED_WAIT_S = 60.0  # after the last hangup, the engine gets this long to charge every call
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
            tenant_id=TENANT, name="Load test", currency="USD", timezone="UTC", plan_id="load",
            rates=RATES, accounts=accounts_csv(funded, poor), pbx_key=KEY,
        ))


def connector_toml(ami_port: int, agi_port: int, secret_env: str = AMI_SECRET_ENV) -> str:
    """The connector's file for the fastagi scenario (format: deploy/asterisk/connector.toml).

    One PBX of the seeded tenant; account codes are the engine's account ids as they are (the
    default ``source = "accountcode"`` without a pattern), which is what the locust user and the
    simulator put in ``agi_accountcode`` and ``AccountCode``. Everything else keeps its default.
    """
    return (
        "# written by benchmarks/loadtest.py --scenario fastagi\n"
        "[[pbx]]\n"
        'name = "load-pbx"\n'
        f'tenant = "{TENANT}"\n\n'
        "[pbx.ami]\n"
        'host = "127.0.0.1"\n'
        f"port = {ami_port}\n"
        f'username = "{AMI_USER}"\n'
        f'secret_env = "{secret_env}"\n\n'
        "[pbx.fastagi]\n"
        'host = "127.0.0.1"\n'
        f"port = {agi_port}\n\n"
        "[pbx.accounts]\n"
        'source = "accountcode"\n'
    )


# --- the simulated Asterisk of the fastagi scenario ------------------------------------------

@dataclass
class PbxFigures:
    """What the simulated Asterisk saw: the PBX's side of the books."""

    taken: int = 0
    refused: int = 0
    answered: int = 0
    billable_seconds: int = 0  # from the calls' Cdr, as Asterisk computes BillableSeconds
    ended_by: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0  # still playing when the run gave up waiting
    peak_live: int = 0


class PbxSide:
    """The Asterisk of the fastagi scenario: the simulator's AMI server and a call intake.

    The simulator plays the ``outbound-noagi`` dialplan (no authorization step of its own):
    the locust user has already run the FastAGI exchange, with the Uniqueid (``<call id>-a``)
    and Linkedid (``<call id>-h``) this call id gives the simulator's legs, and hands the call
    over on the intake (one ``PLAY`` line per call, see benchmarks/locustfiles/fastagi.py).
    The connector keys calls by that Uniqueid and ignores the events of legs it did not
    authorize, so it sees what a real Asterisk would send it. What differs: the channels appear
    on AMI only after the authorization (the tracker learns the channel name from the answer;
    a ``CoreShowChannels`` reconciliation, every 60 s, that falls between the two takes the call
    for one that ended while AMI was away, and it is charged the seconds of its Cdr, with one
    warning in engine.log), and the locust user, not the simulator, applies the Dial ``L()`` cap
    to the talk time.
    """

    def __init__(self, secret: str) -> None:
        self.sim = Simulator(SimulatorConfig(users={AMI_USER: secret}, agi=None, cel=False,
                                             record_events=False))
        self.figures = PbxFigures()
        self._server: asyncio.Server | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self.intake_port = 0

    async def start(self) -> None:
        await self.sim.start()
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.intake_port = int(self._server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(self.take(line.decode("utf-8", "replace")).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def take(self, line: str) -> str:
        """``PLAY <call id> <account> <destination> <ring s> <talk s>`` -> ``OK`` | ``ERR``."""
        parts = line.split()
        try:
            if len(parts) != 6 or parts[0] != "PLAY":
                raise ScenarioError("expected PLAY <call id> <account> <destination> <ring s> "
                                    "<talk s>")
            _, call_id, account, destination, ring, talk = parts
            handle = self.sim.start_call(CallSpec(account, CALLER, destination,
                                                  ring_s=float(ring), talk_s=float(talk),
                                                  call_id=call_id))
        except (ScenarioError, ValueError, RuntimeError) as exc:
            self.figures.refused += 1
            return f"ERR {exc}"
        self.figures.taken += 1
        task = asyncio.create_task(self._follow(handle))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        self.figures.peak_live = max(self.figures.peak_live, len(self._calls))
        return "OK"

    async def _follow(self, handle: CallHandle) -> None:
        record = await handle
        f = self.figures
        f.ended_by[record.ended_by] += 1
        if record.answered:
            f.answered += 1
            f.billable_seconds += record.billable_seconds

    async def finish(self) -> None:
        """Take no more calls; wait until every call taken has ended (bound it)."""
        if self._server is not None:
            self._server.close()
        if self._calls:
            await asyncio.wait(set(self._calls))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.figures.unfinished = len(self._calls)
        await self.sim.close()  # cancels calls still playing
        if self._calls:
            await asyncio.wait(set(self._calls))


# --- engine process and engine-side figures ---------------------------------------------------

async def open_reservations(redis_url: str, buckets: int) -> int:
    """Reservations not yet ended or expired: members of every bucket's expiry index."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for b in range(buckets):
                pipe.zcard(expiry_key(b))
            return sum(int(n) for n in await pipe.execute())
    finally:
        await client.aclose()


async def wait_charged(redis_url: str, buckets: int) -> None:
    """Until no reservation is open: the connector charged every call (bound it)."""
    while True:
        if not await open_reservations(redis_url, buckets):
            return
        await asyncio.sleep(0.1)  # polling another process's state


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
            by_kind = await conn.fetch(
                "select settled_by, count(*) as n, coalesce(sum(duration), 0) as seconds, "
                "count(*) filter (where correction <> 0) as corrected "
                "from calls group by settled_by order by settled_by")
    assert settings.redis_url is not None
    return {"lag_at_stop": lag_before_drain, "ledger_rows": rows, "calls": calls,
            "calls_by": {r["settled_by"]: (r["n"], r["seconds"], r["corrected"])
                         for r in by_kind},
            "open_reservations": await open_reservations(settings.redis_url, settings.buckets),
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


async def wait_ready(url: str, proc: asyncio.subprocess.Process, pbx: PbxSide | None) -> None:
    """Until /health answers and, with a PBX, the connector has logged in to its AMI (the
    FastAGI server listens before the AMI client starts). Bound it."""
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            if proc.returncode is not None:
                raise RuntimeError("the engine exited during start-up (see engine.log)")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health")).status_code == 200 and (
                        pbx is None or pbx.sim.ami_clients > 0):
                    return
            await asyncio.sleep(0.1)  # polling another process's state


async def stop_engine(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()


# --- one run ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    exit_code: int
    log: str
    elapsed: float
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    pbx: PbxFigures | None


async def drive(args: argparse.Namespace, redis_url: str, database_url: str, buckets: int,
                out_dir: Path) -> Outcome:
    """Engine up (with its PBX for fastagi), locust for the run time, the tail charged."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "CE_REALTIME_PORT": str(port), "CE_ADMIN_PORT": "off"}
    load_env = {"CE_LOAD_ACCOUNTS": str(args.accounts), "CE_LOAD_POOR": str(args.poor),
                "CE_LOAD_TALK_S": str(args.talk), "CE_LOAD_HOLD_MS": str(args.hold_ms),
                "CE_LOAD_P99_MS": str(args.p99_ms), "CE_LOAD_MAX_FAIL": str(args.max_fail)}
    target = ["--host", url]
    pbx: PbxSide | None = None
    if args.scenario == "fastagi":
        secret = secrets.token_hex(16)
        pbx = PbxSide(secret)
        await pbx.start()
        agi_port = free_port()
        config = out_dir / "asterisk.toml"
        config.write_text(connector_toml(pbx.sim.ami_port, agi_port))
        env |= {"CE_ASTERISK_CONFIG": str(config), AMI_SECRET_ENV: secret}
        load_env |= {"CE_AGI_HOST": "127.0.0.1", "CE_AGI_PORT": str(agi_port),
                     "CE_LOAD_PBX": f"127.0.0.1:{pbx.intake_port}"}
        target = []
    else:
        load_env["CE_LOAD_KEY"] = KEY
    try:
        with (out_dir / "engine.log").open("wb") as log:
            engine = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "charging_server", "serve", env=env, stdout=log,
                stderr=asyncio.subprocess.STDOUT)
        try:
            try:
                async with asyncio.timeout(READY_WAIT_S):
                    await wait_ready(url, engine, pbx)
            except TimeoutError:
                raise RuntimeError("the engine did not become ready (see engine.log)") from None
            ops_before = redis_ops(redis_url)
            started = time.monotonic()
            locust = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "locust", "-f", str(LOCUSTFILES[args.scenario]),
                "--headless", "-u", str(args.users), "-r", str(args.spawn_rate),
                "-t", args.run_time, *target, "--csv", str(out_dir / "locust"),
                "--json-file", str(out_dir / "locust"), "--only-summary", "--stop-timeout", "5",
                env={**env, **load_env}, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            out, err = await locust.communicate()
            elapsed = time.monotonic() - started
            ops_after = redis_ops(redis_url)
            if pbx is not None:  # the calls still playing end, then the engine charges them
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(args.hold_ms / 1000 + 2 * args.talk + 30):
                        await pbx.finish()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CHARGED_WAIT_S):
                        await wait_charged(redis_url, buckets)
        finally:
            await stop_engine(engine)
    finally:
        if pbx is not None:
            await pbx.close()
    assert locust.returncode is not None
    return Outcome(locust.returncode, out.decode() + err.decode(), elapsed, ops_before,
                   ops_after, pbx.figures if pbx is not None else None)


def run(args: argparse.Namespace) -> int:
    out_dir = ROOT / "benchmarks" / "reports" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    with PrivateStack(ROOT / ".var") as stack:
        settings = Settings(redis_url=stack.redis_url, database_url=stack.database_url)
        asyncio.run(seed(settings, args.accounts, args.poor))
        outcome = uvloop.run(drive(args, stack.redis_url, stack.database_url,
                                   settings.buckets, out_dir))
        (out_dir / "locust.log").write_text(outcome.log)
        figures = asyncio.run(engine_figures(settings))
    # realtime: a user locust kills mid-call (it can, see locustfiles/fastagi.py _place) leaves
    # its reservation to the TTL, so open reservations are reported there, not gated.
    books_ok = figures["reconcile_differences"] == 0 and (
        args.scenario != "fastagi" or figures["open_reservations"] == 0)
    exit_code = outcome.exit_code or (0 if books_ok else 1)
    report = render(out_dir, args, outcome, figures, exit_code)
    (out_dir / "report.md").write_text(report)
    print(report)
    print(f"report and CSVs in {out_dir}")
    return exit_code


@dataclass(frozen=True)
class Row:
    name: str
    count: int
    failures: int
    rps: float
    p50: int
    p95: int
    p99: int
    max_ms: float


def percentile(times: dict[int, int], count: int, q: float) -> int:
    """locust's own percentile over its rounded response-time histogram."""
    below = int(count * q)
    seen = 0
    for t in sorted(times, reverse=True):
        seen += times[t]
        if count - seen <= below:
            return t
    return 0


def rows(entries: list[dict[str, Any]]) -> list[Row]:
    """The request table from locust's final stats (``--json-file``), with the aggregate.

    Not from ``locust_stats.csv``: locust rewrites that once a second and not at the end, so
    it misses the last second of the run."""
    out: list[Row] = []
    merged: Counter[int] = Counter()
    for e in sorted(entries, key=lambda e: str(e["name"])):
        times = {int(k): int(v) for k, v in e["response_times"].items()}
        merged.update(times)
        out.append(_row(str(e["name"]), [e], times))
    if entries:
        out.append(_row("Aggregated", entries, dict(merged)))
    return out


def _row(name: str, entries: list[dict[str, Any]], times: dict[int, int]) -> Row:
    count = sum(int(e["num_requests"]) for e in entries)
    span = (max(float(e["last_request_timestamp"] or 0) for e in entries)
            - min(float(e["start_time"]) for e in entries))
    return Row(name, count, sum(int(e["num_failures"]) for e in entries),
               count / span if span > 0 else 0.0, percentile(times, count, 0.50),
               percentile(times, count, 0.95), percentile(times, count, 0.99),
               max(float(e["max_response_time"] or 0) for e in entries))


def render(out_dir: Path, args: argparse.Namespace, outcome: Outcome, figures: dict[str, Any],
           exit_code: int) -> str:
    table = rows(json.loads((out_dir / "locust.json").read_text()))
    with (out_dir / "report.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["request", "count", "failures", "req_per_s", "p50_ms", "p95_ms",
                         "p99_ms", "max_ms"])
        for r in table:
            writer.writerow([r.name, r.count, r.failures, f"{r.rps:.1f}", r.p50, r.p95, r.p99,
                             f"{r.max_ms:.1f}"])
    who = ("PBX users on the real-time HTTP API" if args.scenario == "realtime" else
           "Asterisk users (FastAGI authorize, then the call played on the simulator's AMI)")
    lines = [
        f"# Load test {out_dir.name} ({args.scenario})",
        "",
        f"{args.users} {who} (spawn {args.spawn_rate}/s) for {args.run_time} on "
        f"{args.accounts} funded + {args.poor} empty accounts; exit code {exit_code} "
        f"(locust stats gate {outcome.exit_code}: p99 <= {args.p99_ms} ms, failures <= "
        f"{args.max_fail:.2%}; books: no reconcile difference"
        + (", no reservation left open)." if args.scenario == "fastagi" else ")."),
        "",
        "| request | count | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table:
        lines.append(f"| {r.name} | {r.count} | {r.failures} | {r.rps:.0f} | {r.p50} | {r.p95} "
                     f"| {r.p99} | {r.max_ms:.0f} |")
    before, after, elapsed = outcome.ops_before, outcome.ops_after, outcome.elapsed
    commands = after["total_commands"] - before["total_commands"]
    fcalls = after.get("fcall", 0) - before.get("fcall", 0)
    lines += [
        "",
        "Engine side:",
        f"- Redis: {commands} commands ({commands / elapsed:.0f}/s), of which {fcalls} "
        f"balance functions (FCALL, {fcalls / elapsed:.0f}/s)",
        f"- settlement lag when the engine stopped: {figures['lag_at_stop']} entries",
        f"- Postgres ledger: {figures['ledger_rows']} entries, {figures['calls']} call records"
        + "".join(f"; {kind} {n} ({seconds} s, {corrected} corrected by Cdr)"
                  for kind, (n, seconds, corrected) in figures["calls_by"].items()),
        f"- reservations left open: {figures['open_reservations']}",
        f"- reconcile Redis vs ledger: {figures['reconcile_differences']} difference(s)",
    ]
    p = outcome.pbx
    if p is not None:
        ends = ", ".join(f"{k} {v}" for k, v in sorted(p.ended_by.items()))
        lines += [
            "",
            "PBX side (simulator):",
            f"- calls played after an ALLOWED authorization: {p.taken} (refused {p.refused}, "
            f"still playing when given up {p.unfinished}; at most {p.peak_live} at once)",
            f"- answered {p.answered}, Cdr billable seconds {p.billable_seconds}; ended by: "
            f"{ends or 'nothing'}",
        ]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=sorted(LOCUSTFILES), default="realtime")
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--spawn-rate", type=float, default=25)
    p.add_argument("--run-time", default="30s")
    p.add_argument("--accounts", type=int, default=1000)
    p.add_argument("--poor", type=int, default=10)
    p.add_argument("--talk", type=int, default=None,
                   help="typical billable seconds (realtime: reported at the end, default 30; "
                   "fastagi: real seconds each call talks on the simulator, default 2)")
    p.add_argument("--hold-ms", type=int, default=0, help="ring time before answer")
    p.add_argument("--p99-ms", type=float, default=100)
    p.add_argument("--max-fail", type=float, default=0.01)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    if args.talk is None:
        args.talk = DEFAULT_TALK[args.scenario]
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
