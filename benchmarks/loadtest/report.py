"""The run's report: report.md (printed too) and report.csv, the request table built from
locust's final stats."""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.loadtest.pbx import PbxFigures


@dataclass
class Outcome:
    """What the driven part of a run hands the report."""

    exit_code: int
    log: str
    elapsed: float
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    pbx: PbxFigures | None


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


def write_csv(path: Path, table: list[Row]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["request", "count", "failures", "req_per_s", "p50_ms", "p95_ms",
                         "p99_ms", "max_ms"])
        for r in table:
            writer.writerow([r.name, r.count, r.failures, f"{r.rps:.1f}", r.p50, r.p95, r.p99,
                             f"{r.max_ms:.1f}"])


def render(out_dir: Path, args: argparse.Namespace, outcome: Outcome, figures: dict[str, Any],
           exit_code: int) -> str:
    """Write report.csv into ``out_dir`` (from its locust.json); return report.md's text."""
    table = rows(json.loads((out_dir / "locust.json").read_text()))
    write_csv(out_dir / "report.csv", table)
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
    lines += _engine_side(outcome, figures)
    if outcome.pbx is not None:
        lines += _pbx_side(outcome.pbx)
    return "\n".join(lines) + "\n"


def _engine_side(outcome: Outcome, figures: dict[str, Any]) -> list[str]:
    before, after, elapsed = outcome.ops_before, outcome.ops_after, outcome.elapsed
    commands = after["total_commands"] - before["total_commands"]
    fcalls = after.get("fcall", 0) - before.get("fcall", 0)
    return [
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


def _pbx_side(p: PbxFigures) -> list[str]:
    ends = ", ".join(f"{k} {v}" for k, v in sorted(p.ended_by.items()))
    return [
        "",
        "PBX side (simulator):",
        f"- calls played after an ALLOWED authorization: {p.taken} (refused {p.refused}, "
        f"still playing when given up {p.unfinished}; at most {p.peak_live} at once)",
        f"- answered {p.answered}, Cdr billable seconds {p.billable_seconds}; ended by: "
        f"{ends or 'nothing'}",
    ]
