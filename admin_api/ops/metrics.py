"""Prometheus metrics, in a registry per app (no process-global state).

* ``admin_request_seconds``: admin API latency by method, route template and status.
* ``ce_authorizations_total``: real-time authorizations by result (``ok``,
  ``insufficient_funds``, ... ``error``), counted by wrapping the charging service's
  ``authorize`` once per service (the hot path gains one counter increment).
* ``ce_active_calls``: reservations held (expiry index sizes), read at scrape time.
* ``ce_settlement_lag_entries`` / ``ce_settlement_lag_seconds``: ledger entries not yet in
  Postgres and the age of the oldest, read at scrape time.
* ``ce_alerts_total``: alerts stored, by kind; ``ce_alert_subscribers``: live SSE clients.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charging_engine.balance.keys import expiry_key, stream_key

if TYPE_CHECKING:
    from charging_engine.bootstrap import Engine
    from charging_engine.sessions.service import ChargingService

_OBSERVERS: Final = "_ce_authorize_observers"
SCRAPE_TIMEOUT_S: Final = 2.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Histogram(
            "admin_request_seconds", "Admin API request latency", ["method", "route", "status"],
            registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.authorizations = Counter(
            "ce_authorizations", "Real-time authorizations by result", ["result"], registry=r
        )
        self.active_calls = Gauge("ce_active_calls", "Reservations held by calls", registry=r)
        self.lag_entries = Gauge(
            "ce_settlement_lag_entries", "Ledger entries not yet settled into Postgres",
            registry=r,
        )
        self.lag_seconds = Gauge(
            "ce_settlement_lag_seconds", "Age of the oldest unsettled ledger entry", registry=r
        )
        self.alerts = Counter("ce_alerts", "Alerts stored, by kind", ["kind"], registry=r)
        self.subscribers = Gauge("ce_alert_subscribers", "Live alert stream clients", registry=r)

    def alert_stored(self, kind: str) -> None:
        self.alerts.labels(kind=kind).inc()

    def observe_authorizations(self, service: ChargingService) -> None:
        """Count ``service.authorize`` results (wrapped once; later apps add an observer)."""
        observers: list[Callable[[str], None]] | None = getattr(service, _OBSERVERS, None)
        count: Callable[[str], None] = lambda result: self.authorizations.labels(result).inc()  # noqa: E731
        if observers is not None:
            observers.append(count)
            return
        observers = [count]
        original: Callable[..., Awaitable[Any]] = service.authorize

        @functools.wraps(original)
        async def authorize(*args: Any, **kwargs: Any) -> Any:
            try:
                decision = await original(*args, **kwargs)
            except BaseException as exc:
                result = getattr(getattr(exc, "reason", None), "value", "error")
                for observe in observers:
                    observe(str(result))
                raise
            for observe in observers:
                observe(str(decision.reason.value))
            return decision

        setattr(service, _OBSERVERS, observers)
        setattr(service, "authorize", authorize)  # noqa: B010 - instance attribute on purpose

    async def refresh(self, engine: Engine, subscribers: int) -> None:
        """Read the gauges that live in Redis (bounded in time: a scrape must not hang)."""
        self.subscribers.set(subscribers)
        buckets = engine.settings.buckets
        async with asyncio.timeout(SCRAPE_TIMEOUT_S):
            pipe = engine.redis.pipeline(transaction=False)
            for b in range(buckets):
                pipe.zcard(expiry_key(b))
            for b in range(buckets):
                pipe.xlen(stream_key(b))
            for b in range(buckets):
                pipe.xrange(stream_key(b), count=1)
            res = await pipe.execute()
        self.active_calls.set(sum(int(n) for n in res[:buckets]))
        self.lag_entries.set(sum(int(n) for n in res[buckets : 2 * buckets]))
        oldest = [
            int(first[0][0].split(b"-")[0]) for first in res[2 * buckets :] if first
        ]
        self.lag_seconds.set(max(0.0, time.time() - min(oldest) / 1000) if oldest else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware observing every HTTP request's latency under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            self.metrics.requests.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )
