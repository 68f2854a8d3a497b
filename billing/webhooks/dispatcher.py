"""Delivering the outbox: claim due deliveries, sign, POST, log, retry with backoff, give up.

Any number of dispatchers may run: a claim sets a lease in its own short transaction (rows
picked with ``FOR UPDATE SKIP LOCKED``), so a delivery is attempted by one dispatcher at a
time and a crashed dispatcher's claims come back when their lease ends. Delivery is at least
once: a receiver that answered 2xx but whose answer was lost gets the same ``webhook-id``
again. "Now" for scheduling comes from the billing clock (tests move it instead of waiting);
the signature's timestamp is the real send time, which receivers check against their clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import httpx

from billing.clock import Clock
from billing.secrets import Secrets
from billing.webhooks.signing import backoff, headers

log = logging.getLogger("billing.webhooks")

CLAIM_SQL: Final = """
UPDATE webhook_deliveries d SET lease_until = $2, attempts = d.attempts + 1
FROM webhook_events e, webhook_endpoints p
WHERE d.delivery_id IN (
    SELECT delivery_id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= $1
      AND (lease_until IS NULL OR lease_until < $1)
    ORDER BY next_attempt_at LIMIT $3
    FOR UPDATE SKIP LOCKED
) AND e.event_id = d.event_id AND p.tenant_id = d.tenant_id AND p.endpoint_id = d.endpoint_id
RETURNING d.delivery_id, d.attempts, d.event_id, e.payload, e.created_at AS event_at, p.url,
          p.secret, p.enabled
"""


class Dispatcher:
    def __init__(
        self, pool: asyncpg.Pool, secrets: Secrets, *, clock: Clock,
        client: httpx.AsyncClient | None = None, timeout_s: float = 10.0,
        max_attempts: int = 15, give_up_after: timedelta = timedelta(days=3),
        base_s: float = 30.0, cap_s: float = 6 * 3600.0, lease_s: float = 120.0,
        concurrency: int = 16, rng: random.Random | None = None,
    ) -> None:
        self.pool, self.secrets, self.clock = pool, secrets, clock
        self.client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self.max_attempts, self.give_up_after = max_attempts, give_up_after
        self.base_s, self.cap_s, self.lease = base_s, cap_s, timedelta(seconds=lease_s)
        self.sem = asyncio.Semaphore(concurrency)
        self.rng = rng or random.Random()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run_once(self, limit: int = 200) -> int:
        """Attempt every due delivery once (up to ``limit``); -> how many were delivered."""
        now = self.clock.now()
        rows = await self.pool.fetch(CLAIM_SQL, now, now + self.lease, limit)
        results = await asyncio.gather(*(self._attempt(r, now) for r in rows))
        return sum(results)

    async def run(self, stop: asyncio.Event, interval_s: float = 2.0) -> None:
        while not stop.is_set():
            try:
                while await self.run_once() > 0 and not stop.is_set():
                    pass
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("webhook dispatch failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def _attempt(self, r: Any, now: datetime) -> int:
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        async with self.sem:
            if not r["enabled"]:
                error = "endpoint disabled"
            else:
                try:
                    secret = self.secrets.decrypt(r["secret"])
                    sent_at = datetime.now(UTC)
                    resp = await self.client.post(
                        r["url"], content=r["payload"].encode(),
                        headers=headers(secret, r["event_id"], r["payload"], sent_at),
                    )
                    status = resp.status_code
                    if not 200 <= status < 300:
                        error = f"HTTP {status}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:500]
        ms = int((time.perf_counter() - started) * 1000)
        ok = error is None
        attempt = r["attempts"]
        give_up = not ok and (attempt >= self.max_attempts
                              or now - r["event_at"] >= self.give_up_after)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error,"
                " duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                r["delivery_id"], attempt, now, status, error, ms,
            )
            await conn.execute(
                "UPDATE webhook_deliveries SET status = $2, lease_until = NULL, last_status = $3,"
                " last_error = $4, delivered_at = CASE WHEN $2 = 'delivered' THEN $5"
                " ELSE delivered_at END, next_attempt_at = $6 WHERE delivery_id = $1",
                r["delivery_id"], "delivered" if ok else "failed" if give_up else "pending",
                status, error, now,
                now + backoff(attempt, self.base_s, self.cap_s, self.rng),
            )
        if give_up:
            log.warning("webhook delivery %s gave up after %d attempts: %s",
                        r["delivery_id"], attempt, error)
        return 1 if ok else 0
