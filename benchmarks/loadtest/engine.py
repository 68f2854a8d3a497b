"""The engine under load: ``charging_server serve`` as its own process, as in production, and
the command counters of its Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import redis

READY_WAIT_S = 60.0


def engine_env(redis_url: str, database_url: str, port: int) -> dict[str, str]:
    """The process environment with the private stack and the real-time API on ``port``."""
    return {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
            "CE_REALTIME_PORT": str(port), "CE_ADMIN_PORT": "off"}


@contextlib.asynccontextmanager
async def running_engine(env: dict[str, str], url: str, log_path: Path,
                         also_ready: Callable[[], bool]) -> AsyncIterator[None]:
    """The engine started (output to ``log_path``), ready within READY_WAIT_S, stopped on exit."""
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "charging_server", "serve", env=env, stdout=log,
            stderr=asyncio.subprocess.STDOUT)
    try:
        try:
            async with asyncio.timeout(READY_WAIT_S):
                await wait_ready(url, proc, also_ready)
        except TimeoutError:
            raise RuntimeError("the engine did not become ready (see engine.log)") from None
        yield
    finally:
        await stop_engine(proc)


async def wait_ready(url: str, proc: asyncio.subprocess.Process,
                     also_ready: Callable[[], bool]) -> None:
    """Until /health answers and ``also_ready()`` holds: with a PBX, the connector has logged in
    to its AMI (the FastAGI server listens before the AMI client starts). Bound it."""
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            if proc.returncode is not None:
                raise RuntimeError("the engine exited during start-up (see engine.log)")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health")).status_code == 200 and also_ready():
                    return
            await asyncio.sleep(0.1)  # polling another process's state


async def stop_engine(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM; SIGKILL if it has not exited 30 s later."""
    if proc.returncode is None:
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def redis_ops(url: str) -> dict[str, int]:
    """Commands processed so far, in all and for the calls the engine's hot path makes."""
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
