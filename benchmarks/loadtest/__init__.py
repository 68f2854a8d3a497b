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

# One module per concern: tenant (the seeded accounts), pbx (the simulated Asterisk), engine (its
# process), locust_run, books (the checks after the run), report, drive (one run end to end).
# The names below are re-exported for the tests and ``python -m benchmarks load``.

from __future__ import annotations

import argparse

from benchmarks.loadtest.drive import run
from benchmarks.loadtest.locust_run import LOCUSTFILES
from benchmarks.loadtest.pbx import AMI_SECRET_ENV, AMI_USER, PbxFigures, PbxSide, connector_toml
from benchmarks.loadtest.report import Row, rows
from benchmarks.loadtest.tenant import KEY, TENANT, accounts_csv

__all__ = [
    "AMI_SECRET_ENV",
    "AMI_USER",
    "KEY",
    "LOCUSTFILES",
    "TENANT",
    "PbxFigures",
    "PbxSide",
    "Row",
    "accounts_csv",
    "connector_toml",
    "main",
    "parse_args",
    "parser",
    "rows",
    "run",
]

DEFAULT_TALK = {"realtime": 30, "fastagi": 2}  # realtime: reported seconds; fastagi: real ones


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
    """The arguments, with ``--talk`` defaulting per scenario."""
    args = parser().parse_args(argv)
    if args.talk is None:
        args.talk = DEFAULT_TALK[args.scenario]
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))
