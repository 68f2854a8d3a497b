"""Before a command starts: can its Redis and PostgreSQL be reached? One clear line if not.

A newcomer with a mistyped ``DATABASE_URL`` should read which server could not be reached and
why, not an asyncpg traceback from deep inside the engine's start-up. URLs are printed without
their password.
"""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions

CONNECT_TIMEOUT_S: Final = 10.0


class Unreachable(RuntimeError):
    """A server a command needs does not answer (or refuses our credentials)."""


def redact(url: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user:***@host/db``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


async def check_postgres(url: str) -> None:
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError,
            asyncpg.InterfaceError) as exc:
        raise Unreachable(f"cannot reach PostgreSQL at {redact(url)}: {_why(exc)}") from None
    await conn.close()


async def check_redis(url: str) -> None:
    try:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
        )
    except ValueError as exc:
        raise Unreachable(f"cannot reach Redis at {redact(url)}: {_why(exc)}") from None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await client.ping()
    except (OSError, TimeoutError, redis.exceptions.RedisError) as exc:
        raise Unreachable(f"cannot reach Redis at {redact(url)}: {_why(exc)}") from None
    finally:
        await client.aclose()


async def check(redis_url: str | None, database_url: str | None) -> None:
    """Raise ``Unreachable`` for the first given server that does not answer."""
    if database_url is not None:
        await check_postgres(database_url)
    if redis_url is not None:
        await check_redis(redis_url)
