"""Building blocks for service tests: a tariff, a hand-moved clock, funded accounts."""

from __future__ import annotations

from charging_engine.account_status import AccountStatus
from charging_engine.balance.store import BalanceStore
from charging_engine.catalog import Account, Catalog, CatalogData, Tenant
from charging_engine.money import Rounding
from charging_engine.rating.model import Rate, RatePlan
from charging_engine.sessions.policy import SessionPolicy
from charging_engine.sessions.service import ChargingService

PLAN = RatePlan("std", "USD", (
    Rate(prefix="1", price_per_minute=10_000, first_increment=6, next_increment=6),
    Rate(prefix="44", price_per_minute=20_000, connect_fee=1_000, min_duration=30,
         first_increment=30, next_increment=6, grace_seconds=3, rounding=Rounding.HALF_UP),
    Rate(prefix="49", price_per_minute=137_777, first_increment=60, next_increment=1,
         rounding=Rounding.UP, decimals=3),
))


class Clock:
    """A clock the test moves by hand: sessions and expiry without waiting."""

    def __init__(self, start_ms: int = 1_800_000_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms


def catalog(*accounts: Account) -> Catalog:
    return Catalog(CatalogData(
        version=1, tenants=[Tenant("t1", "Tenant one", "USD"), Tenant("t2", "Tenant two", "USD")],
        accounts=list(accounts), plans=[("t1", PLAN), ("t2", PLAN)],
    ))


def account(account_id: str, tenant: str = "t1", credit: int = 0,
            status: AccountStatus = AccountStatus.ACTIVE) -> Account:
    return Account(tenant, account_id, "USD", "std", credit, status)



async def fund(store: BalanceStore, acc: Account, amount: int, now_ms: int = 1) -> None:
    await store.provision(acc.tenant_id, acc.account_id, currency=acc.currency,
                          credit_limit=acc.credit_limit, status=acc.status.value, now_ms=now_ms)
    if amount:
        await store.credit(acc.tenant_id, acc.account_id, kind="topup", amount=amount,
                           idem_key=f"fund-{amount}", extra={}, now_ms=now_ms)


def make_service(store: BalanceStore, clock: Clock, *accounts: Account,
                 policy: SessionPolicy | None = None) -> ChargingService:
    return ChargingService(store, catalog(*accounts), policy or SessionPolicy(), clock)
