"""Clients on the per-test servers, as fixtures ``redis`` and ``pool`` (import the functions)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from charging_engine.balance.functions import load_functions


@pytest.fixture(name="redis")
async def redis_fixture(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await load_functions(client)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(name="pool")
async def pool_fixture(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()
