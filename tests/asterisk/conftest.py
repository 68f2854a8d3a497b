"""A balance store on the session's private Redis (emptied per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from charging_engine.balance.store import BalanceStore
from charging_engine.balance.transport import RespTransport


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[BalanceStore]:
    client = aioredis.Redis.from_url(redis_url)
    s = BalanceStore(client, buckets=16, transport=RespTransport(redis_url))
    await s.load()
    yield s
    await s.close()
    await client.aclose()
