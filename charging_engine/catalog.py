"""What the hot path needs to know about tenants, accounts and tariffs, held in memory.

Postgres is the source; ``ledger.catalog_repo`` loads a ``CatalogData`` and the engine swaps in a
new ``Catalog`` when the catalogue version in Postgres moves. Lookups never do I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo

from charging_engine.account_status import AccountStatus
from charging_engine.rating.model import RatePlan
from charging_engine.rating.tariff import Tariff


class FailurePolicy(StrEnum):
    """What a PBX connector answers when the engine cannot decide in time."""

    FAIL_CLOSED = "fail_closed"  # deny the call
    FAIL_OPEN = "fail_open"  # let it through with a short limit


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    currency: str
    timezone: str = "UTC"
    failure_policy: FailurePolicy = FailurePolicy.FAIL_CLOSED

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Account:
    tenant_id: str
    account_id: str
    currency: str
    rate_plan_id: str | None
    credit_limit: int = 0
    status: AccountStatus = AccountStatus.ACTIVE
    kind: str = "prepaid"


@dataclass(frozen=True, slots=True)
class PbxKey:
    """A PBX's real-time API key: only its SHA-256 is stored."""

    tenant_id: str
    key_id: str
    key_hash: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True)
class CatalogData:
    version: int = 0
    tenants: list[Tenant] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    plans: list[tuple[str, RatePlan]] = field(default_factory=list)  # (tenant_id, plan)
    pbx_keys: list[PbxKey] = field(default_factory=list)


class Catalog:
    """Immutable snapshot with O(1) lookups; rebuilt, never mutated, when the data changes."""

    __slots__ = ("_accounts", "_keys", "_tariffs", "_tenants", "version")

    def __init__(self, data: CatalogData) -> None:
        self.version = data.version
        self._tenants = {t.tenant_id: t for t in data.tenants}
        self._accounts = {(a.tenant_id, a.account_id): a for a in data.accounts}
        self._tariffs = {(t, p.plan_id): Tariff(p) for t, p in data.plans}
        self._keys = {k.key_hash: k for k in data.pbx_keys}

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def account(self, tenant_id: str, account_id: str) -> Account | None:
        return self._accounts.get((tenant_id, account_id))

    def tariff(self, tenant_id: str, plan_id: str) -> Tariff | None:
        return self._tariffs.get((tenant_id, plan_id))

    def pbx_key(self, secret: str) -> PbxKey | None:
        return self._keys.get(hash_key(secret))

    def accounts(self) -> list[Account]:
        return list(self._accounts.values())
