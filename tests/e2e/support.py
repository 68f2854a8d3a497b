"""Running the real engine (``charging-engine serve``) as a child process, and waiting on facts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from charging_engine.config import Settings
from charging_engine.devservers import free_port
from charging_engine.loader import TenantData

RATES = """prefix,description,price_per_minute,first_increment,next_increment
1,USA,0.0600,1,1
44,UK,0.1200,6,6
"""
ACCOUNTS = """account_id,kind,credit_limit,opening_balance,status
a1,prepaid,0,20.00,active
a2,prepaid,0,20.00,active
a3,prepaid,1.00,5.00,active
a4,prepaid,0,20.00,active
a5,prepaid,0,0.40,active
"""
KEY = "e2e-pbx-key"


RICH_ACCOUNTS = """account_id,kind,credit_limit,opening_balance,status
a1,prepaid,0,1000000.00,active
a2,prepaid,0,1000000.00,active
a4,prepaid,100.00,1000000.00,active
"""


def tenant_data(accounts: str = ACCOUNTS) -> TenantData:
    return TenantData.from_text(
        tenant_id="tel", name="Tel", currency="USD", timezone="UTC", plan_id="p",
        rates=RATES, accounts=accounts, pbx_key=KEY,
    )


def settings(redis_url: str, database_url: str, **extra: object) -> Settings:
    return Settings(redis_url=redis_url, database_url=database_url, **extra)  # type: ignore[arg-type]


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, what: str, poll: float = 0.05
) -> None:
    """Wait until ``check()`` holds, failing with ``what`` after ``within`` seconds.

    This waits on an observable fact (a balance, a lag, a health check), never a fixed delay.
    """
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(poll)


class EngineProcess:
    """``charging-engine serve`` on its own port, killable like a crashed production process."""

    def __init__(self, redis_url: str, database_url: str, log: Path, **env: str) -> None:
        self.port = free_port()
        self.log = log
        self.env = {
            **os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
            "CE_REALTIME_PORT": str(self.port), "CE_ADMIN_PORT": str(free_port()), **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, consumer: str) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - starting a child is instant
                [sys.executable, "-m", "charging_server", "-v", "serve"],
                env={**self.env, "CE_CONSUMER_NAME": consumer},
                stdout=out, stderr=subprocess.STDOUT,
            )

        async def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited: {self.log.read_text()[-3000:]}")
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"{self.url}/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(healthy, 30, "the engine to serve /health")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
