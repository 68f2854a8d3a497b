"""The run loop of a stream consumer: passes until stopped, outages retried with backoff.

A failed pass acks nothing (what it read stays pending), so the loop only has to try again:
after ``BACKOFF_MIN`` seconds, doubling to ``BACKOFF_MAX`` while the failure lasts, and with a
thorough pass (own pending entries and reclaims first) so that what the failed pass had read
is picked up again. Stopping interrupts any wait: it never waits out a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg
import redis.exceptions

BACKOFF_MIN: Final = 0.1
BACKOFF_MAX: Final = 2.0

# Failures expected while Postgres or Redis restarts or is unreachable: retried quietly.
TRANSIENT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,  # includes ConnectionRefusedError and TimeoutError (pool acquisition)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

Pass = Callable[[bool], Awaitable[int]]


async def wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` unless stopped first: stopping never waits out a backoff."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_with_backoff(
    one_pass: Pass,
    stop: asyncio.Event,
    *,
    log: logging.Logger,
    what: str,
    thorough_every: float,
    idle_below: int = 0,
    idle_interval: float = 0.0,
) -> None:
    """Call ``one_pass(thorough)`` until ``stop``; it returns how many entries it handled.

    ``thorough`` is true on the first pass, after a failure and every ``thorough_every``
    seconds. A pass that handled fewer than ``idle_below`` entries is followed by a pause of
    ``idle_interval`` (let entries gather instead of polling in a tight loop; 0 for blocking
    reads, which wait in Redis).
    """
    backoff = BACKOFF_MIN
    loop = asyncio.get_running_loop()
    next_thorough = 0.0  # the first pass picks up what a previous run left pending
    while not stop.is_set():
        thorough = loop.time() >= next_thorough
        try:
            n = await one_pass(thorough)
        except TRANSIENT_ERRORS as exc:
            next_thorough = 0.0  # what was read but not written is pending: re-read it
            log.warning("%s unavailable (%r); retrying in %.1fs", what, exc, backoff)
        except Exception:
            next_thorough = 0.0
            log.exception("%s batch failed; retrying in %.1fs", what, backoff)
        else:
            if thorough:
                next_thorough = loop.time() + thorough_every
            backoff = BACKOFF_MIN
            if n < idle_below:
                await wait(stop, idle_interval)
            continue
        await wait(stop, backoff)
        backoff = min(backoff * 2, BACKOFF_MAX)
