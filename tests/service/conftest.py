"""A charging service on the private Redis, with an in-memory catalogue (no Postgres needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from charging_engine.balance.store import BalanceStore
from charging_engine.balance.transport import RespTransport
from tests.service.support import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[BalanceStore]:
    client = aioredis.Redis.from_url(redis_url)
    s = BalanceStore(client, buckets=16, transport=RespTransport(redis_url))
    await s.load()
    yield s
    await s.close()
    await client.aclose()
