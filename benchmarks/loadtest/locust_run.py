"""locust headless on one scenario's locustfile, for a fixed time, with its final stats saved."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCUSTFILES = {
    "realtime": Path(__file__).resolve().parent.parent / "locustfiles" / "realtime.py",
    "fastagi": Path(__file__).resolve().parent.parent / "locustfiles" / "fastagi.py",
}


@dataclass(frozen=True)
class LocustRun:
    exit_code: int  # locust's stats gate (the locustfiles set it from CE_LOAD_P99_MS/MAX_FAIL)
    log: str
    elapsed: float


def locust_env(args: argparse.Namespace) -> dict[str, str]:
    """What every locustfile reads from its environment (see their docstrings)."""
    return {"CE_LOAD_ACCOUNTS": str(args.accounts), "CE_LOAD_POOR": str(args.poor),
            "CE_LOAD_TALK_S": str(args.talk), "CE_LOAD_HOLD_MS": str(args.hold_ms),
            "CE_LOAD_P99_MS": str(args.p99_ms), "CE_LOAD_MAX_FAIL": str(args.max_fail)}


async def run_locust(args: argparse.Namespace, target: list[str], env: dict[str, str],
                     out_dir: Path) -> LocustRun:
    """Run locust to its end; its CSVs and ``locust.json`` (final stats) land in ``out_dir``."""
    started = time.monotonic()
    locust = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILES[args.scenario]),
        "--headless", "-u", str(args.users), "-r", str(args.spawn_rate),
        "-t", args.run_time, *target, "--csv", str(out_dir / "locust"),
        "--json-file", str(out_dir / "locust"), "--only-summary", "--stop-timeout", "5",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await locust.communicate()
    elapsed = time.monotonic() - started
    assert locust.returncode is not None
    return LocustRun(locust.returncode, out.decode() + err.decode(), elapsed)
