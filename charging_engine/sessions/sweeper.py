"""Sessions whose end never arrives: find expired reservations and apply the expiry policy.

Every engine process may sweep every bucket: the settle function only acts on a reservation that
is still expired, under the call's end idempotency key, so two sweepers (or a sweeper and a late
end) charge a call once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from charging_engine.balance.keys import parse_expiry_member
from charging_engine.sessions.service import ChargingService

log = logging.getLogger("charging_engine.sweeper")


class Sweeper:
    def __init__(self, service: ChargingService, buckets: int, batch: int = 256) -> None:
        self.service = service
        self.buckets = buckets
        self.batch = batch

    async def sweep_once(self) -> list[tuple[str, str, str, str]]:
        """One pass over every bucket; returns (tenant, account, call, action) per session."""
        now = self.service.clock()
        store = self.service.store
        done: list[tuple[str, str, str, str]] = []
        members = await asyncio.gather(
            *(store.expired(b, now, self.batch) for b in range(self.buckets))
        )
        for bucket, expired in enumerate(members):
            for member in expired:
                tenant, account, call = parse_expiry_member(member)
                action = await self.service.expire(tenant, account, call, now)
                if action == "gone":
                    await store.drop_expiry(bucket, member)
                log.info("expired session %s/%s/%s: %s", tenant, account, call, action)
                done.append((tenant, account, call, action))
        return done

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweep failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
