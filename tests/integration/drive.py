"""Helpers that drive real balance mutations through the charging_v1 Redis functions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from redis.asyncio import Redis

from charging_engine.balance.entries import pack_extra
from charging_engine.balance.keys import AccountKeys

BUCKETS = 8
NOW_MS = 1_700_000_000_000
TTL_S = 3600


async def fcall(
    redis: Redis, fn: str, tenant: str, account: str, idem: str, *args: Any, now_ms: int = NOW_MS
) -> list[Any]:
    keys = AccountKeys.of(tenant, account, BUCKETS).keys(idem)
    result = await redis.fcall(fn, 6, *keys, tenant, account, now_ms, TTL_S, *args)
    return list(result)


_provisions = itertools.count(1)  # each provisioning is a new request, not a retry


async def provision(
    redis: Redis, tenant: str, account: str, currency: str = "USD", credit: int = 0,
    status: str = "active",
) -> None:
    res = await fcall(redis, "ce_provision", tenant, account, f"provision:{next(_provisions)}",
                      currency, credit, status, pack_extra({}))
    assert res[0] == b"ok", res


async def topup(redis: Redis, tenant: str, account: str, amount: int, idem: str) -> int:
    res = await fcall(redis, "ce_credit", tenant, account, idem, "topup", amount,
                      pack_extra({"ref": idem}))
    assert res[0] == b"ok", res
    return int(res[1])


async def authorize(redis: Redis, tenant: str, account: str, call: str, cap: int) -> int:
    res = await fcall(redis, "ce_authorize", tenant, account, f"end:{call}", call, cap, 0,
                      NOW_MS + 3_600_000, b"session", pack_extra({"dst": "4420"}))
    assert res[0] == b"ok", res
    return int(res[1])


async def settle(
    redis: Redis, tenant: str, account: str, call: str, cost: int, kind: str = "commit",
    extra: dict[str, Any] | None = None,
) -> int:
    res = await fcall(redis, "ce_settle", tenant, account, f"end:{call}", call, kind, cost, 0,
                      pack_extra(extra))
    assert res[0] == b"ok", res
    return int(res[2])


def cdr(start_ms: int = NOW_MS - 65_000, duration: int = 60) -> dict[str, Any]:
    return {
        "dst": "442071234567", "prefix": "4420", "plan": "std", "start_ms": start_ms,
        "answer_ms": start_ms + 5_000, "end_ms": start_ms + 5_000 + duration * 1000,
        "duration": duration, "billed": 60, "disposition": "ANSWERED",
    }


async def account_hash(redis: Redis, tenant: str, account: str) -> dict[str, str]:
    raw: dict[bytes, bytes] = await redis.hgetall(  # type: ignore[assignment]
        AccountKeys.of(tenant, account, BUCKETS).account_key
    )
    return {k.decode(): v.decode() for k, v in raw.items()}


class TcpProxy:
    """A TCP forwarder that can be switched off (refusing and cutting connections) and on."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.target_port = host, port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.transport.abort()
                self._writers.discard(up_writer)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


async def correct(
    redis: Redis, tenant: str, account: str, call: str, delta: int, to_seconds: int
) -> list[Any]:
    """A CDR correction of a settled call: ``delta`` more charged (negative refunds)."""
    return await fcall(redis, "ce_credit", tenant, account, f"correction:{call}", "correction",
                       -delta,
                       pack_extra({"to_seconds": to_seconds, "delta": delta, "source": "cdr"}),
                       call)
