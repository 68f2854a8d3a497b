"""Sending the outbox (Postgres adapter): claim due messages, render, send, record the answer.

Several dispatchers may run: a claim takes due rows with ``SKIP LOCKED`` and leases them
(``sending`` until ``lease_until``), so two never send the same row at once; a dispatcher that
dies mid-batch leaves its rows leased, and another takes them again once the lease has run out.
A message is marked sent in its own statement right after the provider took it: the window in
which a crash can send a message twice is that statement (the Message-ID / SMPP reference
names the notification, so a redelivery is recognisable). A failure is retried with
exponential backoff and jitter until ``give_up`` after the message was created; then it is
``dead`` (ops see it and may resend). A refusal for good (``Undeliverable``) is dead at once.
An SMS its tenant's pacing holds (quiet hours, rate limit: ``pacer``) goes back to pending
until then, with no error and its attempt given back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import asyncpg

from notifications import receipts
from notifications.channels.model import Channel, Outgoing, SendFailed, Undeliverable

__all__ = ["Dispatcher", "Retry", "backoff"]

LOGGER = logging.getLogger(__name__)
Render = Callable[[asyncpg.Record], Awaitable[Outgoing]]


class ChannelSource(Protocol):
    """Each tenant's channels (``channel_registry``); a plain mapping serves every tenant."""

    async def channel(self, tenant_id: str, name: str) -> Channel | None: ...


class Pacing(Protocol):
    """When a claimed message may go instead of now (quiet hours, rate limits; ``pacer``)."""

    async def hold(self, r: Any) -> datetime | None: ...

CLAIM_SQL: Final = """
UPDATE notifications SET status = 'sending', lease_until = $2, attempts = attempts + 1
WHERE notification_id IN (
    SELECT notification_id FROM notifications
    WHERE status IN ('pending', 'sending') AND next_attempt_at <= $1
      AND (status = 'pending' OR lease_until < $1)
    ORDER BY next_attempt_at, notification_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED)
RETURNING *
"""


MARK_SQL: Final = """
WITH sent AS (
    UPDATE notifications SET status = 'sent', provider_ref = $2, sent_at = $3,
           lease_until = NULL, last_error = NULL
    WHERE notification_id = $1 RETURNING notification_id),
parts AS (
    INSERT INTO notification_parts (provider_id, channel, notification_id)
    SELECT unnest($4::text[]), $5, $1
    ON CONFLICT (channel, provider_id) DO UPDATE SET notification_id = excluded.notification_id
    RETURNING (xmax <> 0) AS early)
SELECT COALESCE(bool_or(early), false) FROM parts
"""


@dataclass(frozen=True, slots=True)
class Retry:
    first: timedelta = timedelta(seconds=30)
    most: timedelta = timedelta(hours=1)
    give_up: timedelta = timedelta(hours=48)
    lease: timedelta = timedelta(minutes=2)


def backoff(retry: Retry, attempts: int, rnd: random.Random | None = None) -> timedelta:
    """The wait before attempt ``attempts + 1``: doubling from ``first`` up to ``most``, with
    up to a fifth of jitter so that a provider's outage does not end in a thundering herd."""
    base: timedelta = min(retry.first * (2 ** max(attempts - 1, 0)), retry.most)
    jitter: float = (rnd or random).random() / 5
    return base + base * jitter


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, channels: Mapping[str, Channel] | ChannelSource,
                 render: Render, *,
                 now: Callable[[], datetime], retry: Retry | None = None, batch: int = 50,
                 concurrency: int = 16, pacing: Pacing | None = None) -> None:  # fmt: skip
        self.pool, self.channels, self.render, self.now = pool, channels, render, now
        self.pacing = pacing
        self.retry = retry or Retry()
        self.batch, self.concurrency = batch, concurrency

    async def run_once(self) -> int:
        """Claim and send one batch; -> messages sent."""
        at = self.now()
        rows = await self.pool.fetch(CLAIM_SQL, at, at + self.retry.lease, self.batch)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(r: asyncpg.Record) -> bool:
            async with gate:
                return await self._send(r)

        return sum(await asyncio.gather(*(one(r) for r in rows)))

    async def drain(self) -> int:
        """Send until nothing is due (tests and the demo)."""
        sent = 0
        while True:
            n = await self.pool.fetchval(
                "SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending')"
                " AND next_attempt_at <= $1 AND (status = 'pending' OR lease_until < $1)",
                self.now())  # fmt: skip
            if not n:
                return sent
            sent += await self.run_once()

    async def _channel(self, r: asyncpg.Record) -> Channel | None:
        if isinstance(self.channels, Mapping):
            return self.channels.get(r["channel"])
        return await self.channels.channel(r["tenant_id"], r["channel"])

    async def _send(self, r: asyncpg.Record) -> bool:
        hold = await self.pacing.hold(r) if self.pacing is not None else None
        if hold is not None:  # not a failed attempt: it waits, with no error and no backoff
            await self.pool.execute(
                "UPDATE notifications SET status = 'pending', next_attempt_at = $2, attempts ="
                " attempts - 1, lease_until = NULL WHERE notification_id = $1 AND status ="
                " 'sending'", r["notification_id"], hold)  # fmt: skip
            return False
        try:
            channel = await self._channel(r)
            if channel is None:
                raise SendFailed(f"no {r['channel']} channel is configured")
            message = await self.render(r)
            ref = await channel.send(message)
        except Undeliverable as e:
            await self._mark(r, "dead", error=str(e))
            return False
        except Exception as e:  # SendFailed, or anything unexpected: retried, never lost
            if not isinstance(e, SendFailed):
                LOGGER.exception("notification %s failed", r["notification_id"])
            await self._retry(r, f"{type(e).__name__}: {e}"[:500])
            return False
        # One round trip: marked sent, its parts recorded; a receipt that came first (it wrote
        # its part already) is settled against the message now.
        early = await self.pool.fetchval(MARK_SQL, r["notification_id"], ref, self.now(),
                                         ref.split(","), r["channel"])  # fmt: skip
        if early:
            async with self.pool.acquire() as conn, conn.transaction():
                await receipts.settle(conn, r["notification_id"], self.now())
        return True

    async def _retry(self, r: Any, error: str) -> None:
        at = self.now()
        if at - r["created_at"] >= self.retry.give_up:
            await self._mark(r, "dead", error=error)
            return
        await self.pool.execute(
            "UPDATE notifications SET status = 'pending', next_attempt_at = $2, lease_until ="
            " NULL, last_error = $3 WHERE notification_id = $1 AND status = 'sending'",
            r["notification_id"], at + backoff(self.retry, r["attempts"]), error)  # fmt: skip

    async def _mark(self, r: Any, status: str, *, error: str) -> None:
        await self.pool.execute(
            "UPDATE notifications SET status = $2, lease_until = NULL, last_error = $3"
            " WHERE notification_id = $1", r["notification_id"], status, error[:500])
