"""Building blocks for the connector's tests: a tariff, funded accounts on the real Redis, and the
Asterisk side of FastAGI spoken over raw TCP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from charging_engine.balance.store import BalanceStore
from charging_engine.catalog import (
    Account,
    Catalog,
    CatalogData,
    FailurePolicy,
    Tenant,
)
from charging_engine.rating.model import Rate, RatePlan
from charging_engine.sessions.policy import SessionPolicy
from charging_engine.sessions.service import ChargingService

# 0.06 a minute, per second: 1,000 micros a second, so money and seconds convert by hand.
PER_SECOND = 1_000
PLAN = RatePlan("std", "USD", (
    Rate(prefix="1", price_per_minute=60 * PER_SECOND, first_increment=1, next_increment=1),
    Rate(prefix="44", price_per_minute=120_000, connect_fee=5_000, first_increment=30,
         next_increment=6),
))
CLOSED, OPEN = "t1", "t2"  # tenants failing closed and open


def catalog(*accounts: Account) -> Catalog:
    return Catalog(CatalogData(
        version=1,
        tenants=[Tenant(CLOSED, "Closed", "USD"),
                 Tenant(OPEN, "Open", "USD", failure_policy=FailurePolicy.FAIL_OPEN)],
        accounts=list(accounts), plans=[(CLOSED, PLAN), (OPEN, PLAN)],
    ))


def account(account_id: str, tenant: str = CLOSED, credit: int = 0) -> Account:
    return Account(tenant, account_id, "USD", "std", credit)


async def fund(store: BalanceStore, acc: Account, amount: int) -> None:
    await store.provision(acc.tenant_id, acc.account_id, currency=acc.currency,
                          credit_limit=acc.credit_limit, status=acc.status.value, now_ms=1)
    if amount:
        await store.credit(acc.tenant_id, acc.account_id, kind="topup", amount=amount,
                           idem_key=f"fund-{amount}", extra={}, now_ms=1)


def service(store: BalanceStore, *accounts: Account, slice_seconds: int = 300) -> ChargingService:
    return ChargingService(store, catalog(*accounts), SessionPolicy(slice_seconds=slice_seconds))


def agi_env(uniqueid: str, *, account: str = "acc1", exten: str = "15559999",
            script: str = "authorize", linkedid: str = "", port: int = 4573) -> bytes:
    """The environment Asterisk 22 sends (as in transcript 06), ended by a blank line."""
    env = [
        ("agi_network", "yes"), ("agi_network_script", script),
        ("agi_request", f"agi://127.0.0.1:{port}/{script}"),
        ("agi_channel", f"PJSIP/trunk-{uniqueid}"), ("agi_language", "en"),
        ("agi_type", "PJSIP"), ("agi_uniqueid", uniqueid), ("agi_version", "22.10.1"),
        ("agi_callerid", "15550001"), ("agi_calleridname", "Alice"),
        ("agi_callingpres", "0"), ("agi_dnid", "unknown"), ("agi_rdnis", "unknown"),
        ("agi_context", "outbound"), ("agi_extension", exten), ("agi_priority", "2"),
        ("agi_enhanced", "0.0"), ("agi_accountcode", account), ("agi_threadid", "1"),
    ]
    if linkedid:
        env.append(("agi_arg_1", linkedid))
    return "".join(f"{k}: {v}\n" for k, v in env).encode() + b"\n"


async def _readline(reader: asyncio.StreamReader) -> bytes:
    """A reset (the server closed with our environment unread) ends the session like EOF."""
    try:
        return await reader.readline()
    except ConnectionResetError:
        return b""


@dataclass
class AgiResult:
    variables: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    seconds: float = 0.0  # from connecting to the server closing

    @property
    def status(self) -> str | None:
        return self.variables.get("CHARGING_STATUS")


async def agi_call(port: int, env: bytes, *, within: float = 10.0) -> AgiResult:
    """Play Asterisk: send the environment, acknowledge every command, until the server closes."""
    out = AgiResult()
    start = time.monotonic()
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(env)
            await writer.drain()
            while line := await _readline(reader):
                parts = line.decode().rstrip("\n").split(" ", 3)
                assert parts[:2] == ["SET", "VARIABLE"], line
                name, value = parts[2], parts[3]
                assert value.startswith('"') and value.endswith('"'), line
                out.variables[name] = value[1:-1]
                out.order.append(name)
                writer.write(b"200 result=1\n")
                await writer.drain()
        finally:
            writer.close()
    out.seconds = time.monotonic() - start
    return out


class SlowLink:
    """A TCP proxy that holds every client->server chunk for ``delay`` seconds: a real, slow
    network path to a real server. ``stall=True`` forwards nothing at all (a hung peer)."""

    def __init__(self, upstream: tuple[str, int], delay: float = 0.0, stall: bool = False) -> None:
        self.upstream = upstream
        self.delay = delay
        self.stall = stall
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def start(self) -> SlowLink:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self.stall:
                while await reader.read(65536):
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            assert up_writer is not None

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                           delay: float) -> None:
                while data := await src.read(65536):
                    if delay:
                        await asyncio.sleep(delay)  # the slow link itself, not a test wait
                    dst.write(data)
                    await dst.drain()
                dst.close()

            async with asyncio.TaskGroup() as tg:
                tg.create_task(pump(reader, up_writer, self.delay))
                tg.create_task(pump(up_reader, writer, 0.0))
        except (ConnectionError, OSError):
            pass
        finally:
            # abort, never a graceful close: a peer that stopped reading would keep a graceful
            # close (and uvloop's loop.close()) waiting for ever
            writer.transport.abort()
            if up_writer is not None:
                up_writer.transport.abort()
            self._tasks.discard(task)
