"""Delivering the outbox: claim due deliveries, sign, POST, log, retry with backoff, give up.

Any number of dispatchers may run: a claim sets a lease in its own short transaction (rows
picked with ``FOR UPDATE SKIP LOCKED``), so a delivery is attempted by one dispatcher at a
time and a crashed dispatcher's claims come back when their lease ends. Delivery is at least
once: a receiver that answered 2xx but whose answer was lost gets the same ``webhook-id``
again. "Now" for scheduling comes from the billing clock (tests move it instead of waiting);
the signature's timestamp is the real send time, which receivers check against their clock.
Deliveries to a disabled endpoint wait, unattempted, until it is enabled again.
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
from billing.secrets import ENV, Secrets, SecretsKeyError
from billing.webhooks.signing import backoff, headers

log = logging.getLogger("billing.webhooks")

CLAIM_SQL: Final = """
WITH due AS MATERIALIZED (
    SELECT w.delivery_id FROM webhook_deliveries w
    JOIN webhook_endpoints q ON q.tenant_id = w.tenant_id AND q.endpoint_id = w.endpoint_id
    WHERE w.status = 'pending' AND w.next_attempt_at <= $1
      AND (w.lease_until IS NULL OR w.lease_until < $1) AND q.enabled
    ORDER BY w.next_attempt_at LIMIT $3
    FOR UPDATE OF w SKIP LOCKED
)
UPDATE webhook_deliveries d SET lease_until = $2, attempts = d.attempts + 1
FROM due, webhook_events e, webhook_endpoints p
WHERE d.delivery_id = due.delivery_id AND e.event_id = d.event_id
  AND p.tenant_id = d.tenant_id AND p.endpoint_id = d.endpoint_id
RETURNING d.delivery_id, d.attempts, d.lease_until, d.event_id, e.payload,
          e.created_at AS event_at, p.url, p.secret
"""
# A claim is (attempts, lease_until) as the claim left them: a dispatcher whose lease ran out
# and was taken over no longer matches, so its late answer is logged but decides nothing.
_MINE: Final = "delivery_id = $1 AND attempts = $2 AND lease_until = $3"


class Dispatcher:
    def __init__(
        self, pool: asyncpg.Pool, secrets: Secrets, *, clock: Clock,
        client: httpx.AsyncClient | None = None, timeout_s: float = 10.0,
        max_attempts: int = 15, give_up_after: timedelta = timedelta(days=3),
        base_s: float = 30.0, cap_s: float = 6 * 3600.0, lease_s: float = 120.0,
        concurrency: int = 16, rng: random.Random | None = None,
    ) -> None:
        if lease_s <= timeout_s:
            raise ValueError("the lease must outlast a request's timeout")
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1")
        self.pool, self.secrets, self.clock = pool, secrets, clock
        self.client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self.timeout_s = timeout_s
        self.max_attempts, self.give_up_after = max_attempts, give_up_after
        self.base_s, self.cap_s, self.lease = base_s, cap_s, timedelta(seconds=lease_s)
        self.concurrency = concurrency
        self.rng = rng or random.Random()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run_once(self, limit: int = 200) -> int:
        """Attempt every due delivery once (up to ``limit``); -> how many were delivered.

        Claims ``concurrency`` at a time, so no claim waits for a free slot while its lease
        runs out. A delivery whose endpoint secret does not decrypt keeps its claim until the
        lease ends (its attempt not counted) and ``SecretsKeyError`` is raised after the rest
        were attempted."""
        delivered = claimed = 0
        stuck: list[str] = []
        while claimed < limit:
            now = self.clock.now()
            rows = await self.pool.fetch(
                CLAIM_SQL, now, now + self.lease, min(self.concurrency, limit - claimed))
            if not rows:
                break
            claimed += len(rows)
            jobs = []
            for r in rows:
                try:
                    secret = self.secrets.decrypt(r["secret"])
                except SecretsKeyError as exc:
                    await self._unclaim(r, str(exc))
                    stuck.append(str(r["delivery_id"]))
                    continue
                jobs.append(self._attempt(r, secret, now))
            delivered += sum(await asyncio.gather(*jobs))
        if stuck:
            raise SecretsKeyError(
                f"webhook deliveries {', '.join(stuck)} wait: their endpoint secret does not"
                f" decrypt with {ENV} (the key changed without keeping the old one after it)"
            )
        return delivered

    async def run(self, stop: asyncio.Event, interval_s: float = 2.0) -> None:
        """Deliver until ``stop``. Nothing escapes but cancellation: this loop shares a task
        group with settlement, which one bad endpoint or a wrong key must not stop."""
        while not stop.is_set():
            try:
                while await self.run_once() > 0 and not stop.is_set():
                    pass
            except SecretsKeyError as exc:
                log.error("%s", exc)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("webhook dispatch failed (%s); retrying", exc)
            except Exception:
                log.exception("webhook dispatch failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def _post(self, r: Any, secret: str) -> tuple[int | None, str | None]:
        """-> (status code, error): one request, bounded in total by ``timeout_s``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                sent_at = datetime.now(UTC)
                async with self.client.stream(
                    "POST", r["url"], content=r["payload"].encode(),
                    headers=headers(secret, r["event_id"], r["payload"], sent_at),
                ) as resp:  # the answer's body is not read: only its status counts
                    status = resp.status_code
        except TimeoutError:
            return None, f"timeout after {self.timeout_s:g}s"
        except Exception as exc:  # refused, reset, TLS, a URL the client rejects, ...
            return None, f"{type(exc).__name__}: {exc}"[:500]
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    async def _attempt(self, r: Any, secret: str, now: datetime) -> int:
        started = time.perf_counter()
        status, error = await self._post(r, secret)
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
            mine = await conn.fetchval(
                "UPDATE webhook_deliveries SET status = $4, lease_until = NULL, last_status = $5,"
                " last_error = $6, delivered_at = CASE WHEN $4 = 'delivered' THEN $7"
                f" ELSE delivered_at END, next_attempt_at = $8 WHERE {_MINE}"
                " RETURNING delivery_id",
                r["delivery_id"], attempt, r["lease_until"],
                "delivered" if ok else "failed" if give_up else "pending",
                status, error, now, now + backoff(attempt, self.base_s, self.cap_s, self.rng),
            )
        if mine is None:
            log.warning("webhook delivery %s: attempt %d answered after its lease was taken"
                        " over; logged only", r["delivery_id"], attempt)
            return 0
        if give_up:
            log.warning("webhook delivery %s gave up after %d attempts: %s",
                        r["delivery_id"], attempt, error)
        return 1 if ok else 0

    async def _unclaim(self, r: Any, reason: str) -> None:
        """Give the attempt back but keep the lease: retried when it ends, not counted."""
        log.error("webhook delivery %s not attempted: %s", r["delivery_id"], reason)
        await self.pool.execute(
            "UPDATE webhook_deliveries SET attempts = attempts - 1, last_error = $4"
            f" WHERE {_MINE}", r["delivery_id"], r["attempts"], r["lease_until"], reason[:500],
        )
