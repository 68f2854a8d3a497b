"""Live alerts for SSE subscribers of this process, fed by Postgres ``LISTEN ce_alerts``.

The feed (in whichever process stored an alert) notifies its id after the commit; the hub reads
committed alerts only, in id order, and hands each to the subscribers of its tenant. A
subscriber that falls behind (its queue is full) is closed rather than slowing the others; it
reconnects with ``Last-Event-ID`` and replays the gap from the table. After the LISTEN
connection drops, the hub catches up from the last id it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Coroutine, Iterator
from typing import Any, Final

import asyncpg

from admin_api.alerts.feed import CHANNEL
from admin_api.alerts.repo import AlertOut, alert_out, alerts_after, get_alert

log = logging.getLogger("admin_api.alerts")

QUEUE_SIZE: Final = 1000
CATCH_UP_BATCH: Final = 1000
CONNECT_TIMEOUT_S: Final = 5.0
REMEMBERED: Final = 10_000  # ids delivered lately: a notice and a catch-up never deliver twice


class Subscription:
    """One SSE client's queue; ``None`` in it means "you fell behind: reconnect"."""

    def __init__(self, tenant_id: str, account_id: str | None) -> None:
        self.tenant_id = tenant_id
        self.account_id = account_id
        self.queue: asyncio.Queue[AlertOut | None] = asyncio.Queue(QUEUE_SIZE + 1)
        self.closed = False

    def offer(self, alert: AlertOut) -> bool:
        """Queue an alert; False (and closed) when the client is too far behind."""
        if self.closed:
            return False
        if self.account_id is not None and alert.account_id != self.account_id:
            return True
        if self.queue.qsize() >= QUEUE_SIZE:
            self.closed = True
            self.queue.put_nowait(None)
            return False
        self.queue.put_nowait(alert)
        return True


class AlertHub:
    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self.pool = pool
        self.dsn = dsn
        self._subs: dict[str, set[Subscription]] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._last_id: int | None = None  # highest id seen: where a catch-up starts
        self._seen: OrderedDict[int, None] = OrderedDict()
        self.listening = asyncio.Event()  # set while LISTEN is active (readiness, tests)

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    @contextlib.contextmanager
    def subscribe(self, tenant_id: str, account_id: str | None = None) -> Iterator[Subscription]:
        sub = Subscription(tenant_id, account_id)
        self._subs.setdefault(tenant_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(tenant_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[tenant_id]

    def _first_time(self, alert_id: int) -> bool:
        if alert_id in self._seen:
            return False
        self._seen[alert_id] = None
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        if self._last_id is None or alert_id > self._last_id:
            self._last_id = alert_id
        return True

    def publish(self, alert: AlertOut) -> None:
        """Hand a committed alert (once) to its tenant's subscribers."""
        if not self._first_time(alert.id):
            return
        for sub in list(self._subs.get(alert.tenant_id, ())):
            sub.offer(alert)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            self._inbox.put_nowait(json.loads(payload))
        except ValueError:
            log.error("bad %s payload %r", channel, payload)

    async def run(self, stop: asyncio.Event) -> None:
        """LISTEN until ``stop``, reconnecting (and catching up) when the connection drops."""
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._listen(stop)
                backoff = 0.1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("alert hub lost Postgres (%r); reconnecting in %.1fs", exc, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)

    async def _listen(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_S)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(CHANNEL, self._notified)
            if self._last_id is None:
                self._last_id = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM alerts"))
            else:
                await self._catch_up()
            self.listening.set()
            await self._pump(conn, stop, lost)
        finally:
            self.listening.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    async def _pump(
        self, conn: asyncpg.Connection, stop: asyncio.Event, lost: asyncio.Event
    ) -> None:
        """Deliver notices in order until stopped or the connection is lost."""
        ended = asyncio.ensure_future(_first(stop.wait(), lost.wait()))
        try:
            while not ended.done():
                getter = asyncio.ensure_future(self._inbox.get())
                done, _ = await asyncio.wait(
                    {getter, ended}, timeout=5.0, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    await self._deliver(getter.result())
                    continue
                getter.cancel()  # an item not yet taken stays queued
                if not done:  # quiet for a while: make sure the connection is alive
                    await conn.execute("SELECT 1", timeout=CONNECT_TIMEOUT_S)
        finally:
            ended.cancel()

    async def _deliver(self, note: dict[str, Any]) -> None:
        alert_id, tenant = note.get("id"), note.get("tenant_id")
        if not isinstance(alert_id, int) or alert_id in self._seen:
            return
        if tenant not in self._subs:
            self._first_time(alert_id)  # nobody here watches that tenant: nothing to read
            return
        row = await get_alert(self.pool, alert_id)
        if row is not None:
            self.publish(alert_out(row))

    async def _catch_up(self) -> None:
        assert self._last_id is not None
        while True:
            rows = await alerts_after(self.pool, self._last_id, CATCH_UP_BATCH)
            for row in rows:
                self.publish(alert_out(row))
            if len(rows) < CATCH_UP_BATCH:
                return


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of ``waits`` finishes (the others are cancelled)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
