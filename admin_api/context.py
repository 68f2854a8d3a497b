"""What every admin route works with, built once per app by ``create_admin_app``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import asyncpg
from fastapi import Depends, Request

from billing.clock import Clock
from charging_engine.accounts.changes import AccountChanges
from charging_engine.accounts.money import MoneyOperations
from charging_engine.balance.store import BalanceStore
from charging_engine.catalog import Catalog

if TYPE_CHECKING:
    from admin_api.alerts.hub import AlertHub
    from admin_api.ops.metrics import Metrics
    from charging_engine.bootstrap import Engine


class CatalogRefresher:
    """Single-flight catalogue reloads: writes that arrive while one reload runs share the
    next one, so a burst of admin writes costs two reloads, not one each."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self._requested = 0
        self._done = 0

    async def refresh(self) -> None:
        self._requested += 1
        mine = self._requested
        async with self._lock:
            if self._done >= mine:
                return
            target = self._requested
            await self._engine.refresh_catalog()
            self._done = target


class EngineClock:
    """Billing's "now" from the engine's clock, so one clock moves both in tests and demos."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._engine.service.clock() / 1000, UTC)


@dataclass
class AdminContext:
    engine: Engine
    metrics: Metrics
    hub: AlertHub
    clock: Clock | None = None  # billing's "now"; default: the engine's clock
    refresher: CatalogRefresher = field(init=False)
    accounts: AccountChanges = field(init=False)  # the engine's use cases, for the routes
    money: MoneyOperations = field(init=False)

    def __post_init__(self) -> None:
        if self.clock is None:
            self.clock = EngineClock(self.engine)
        self.refresher = CatalogRefresher(self.engine)
        self.accounts = AccountChanges(
            self.engine.pool, self.engine.store, clock=self.now_ms,
            on_catalog_change=self.refresher.refresh,
        )
        self.money = MoneyOperations(
            self.engine.pool, self.engine.store, clock=self.now_ms,
            idem_ttl_s=self.engine.settings.idem_ttl_s,
        )

    @property
    def pool(self) -> asyncpg.Pool:
        return self.engine.pool

    @property
    def store(self) -> BalanceStore:
        return self.engine.store

    @property
    def catalog(self) -> Catalog:
        return self.engine.service.catalog

    def now_ms(self) -> int:
        return self.engine.service.clock()

    def now(self) -> datetime:
        """Billing's "now" (an aware UTC datetime)."""
        assert self.clock is not None
        return self.clock.now()


def get_context(request: Request) -> AdminContext:
    ctx: AdminContext = request.app.state.admin
    return ctx


Ctx = Annotated[AdminContext, Depends(get_context)]
