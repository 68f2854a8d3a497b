"""Loading a tenant from files: rate deck CSV, accounts CSV, PBX key. Re-running is harmless.

Accounts CSV columns: ``account_id, kind, credit_limit, opening_balance, status`` (money as
decimal strings in major units). The opening balance is a top-up with a fixed idempotency key,
so loading the same file twice credits it once.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from charging_engine.account_status import AccountStatus
from charging_engine.catalog import Account, Tenant
from charging_engine.ids import InvalidId, check_id
from charging_engine.money import MoneyError, currency_exponent, parse_amount
from charging_engine.rating.deck import parse_deck
from charging_engine.rating.model import RatePlan

if TYPE_CHECKING:
    from charging_engine.bootstrap import Engine


class LoadError(ValueError):
    """A data file that cannot be loaded; names the file and line."""


@dataclass(frozen=True, slots=True)
class AccountRow:
    account: Account
    opening_balance: int


@dataclass(slots=True)
class TenantData:
    tenant: Tenant
    plan: RatePlan
    accounts: list[AccountRow] = field(default_factory=list)
    pbx_key: str | None = None

    @classmethod
    def from_files(
        cls, *, tenant_id: str, name: str, currency: str, timezone: str, plan_id: str,
        rates: Path, accounts: Path, pbx_key: str | None,
    ) -> TenantData:
        return cls.from_text(
            tenant_id=tenant_id, name=name, currency=currency, timezone=timezone,
            plan_id=plan_id, rates=rates.read_text(), accounts=accounts.read_text(),
            pbx_key=pbx_key,
        )

    @classmethod
    def from_text(
        cls, *, tenant_id: str, name: str, currency: str, timezone: str, plan_id: str,
        rates: str, accounts: str, pbx_key: str | None,
    ) -> TenantData:
        try:
            check_id("tenant", tenant_id)
            check_id("rate plan", plan_id)
            currency_exponent(currency)
        except (InvalidId, MoneyError) as exc:
            raise LoadError(str(exc)) from exc
        tenant = Tenant(tenant_id, name, currency, timezone)
        tenant.tz  # noqa: B018 - validates the timezone name early
        plan = RatePlan(plan_id, currency, tuple(parse_deck(rates)))
        rows = parse_accounts(accounts, tenant_id, currency, plan_id)
        return cls(tenant, plan, rows, pbx_key)


def parse_accounts(text: str, tenant_id: str, currency: str, plan_id: str) -> list[AccountRow]:
    rows: list[AccountRow] = []
    reader = csv.DictReader(io.StringIO(text))
    for line, rec in enumerate(reader, start=2):
        try:
            status = AccountStatus(rec.get("status") or "active")
            kind = rec.get("kind") or "prepaid"
            if kind not in ("prepaid", "postpaid"):
                raise LoadError(f"kind must be prepaid or postpaid, got {kind!r}")
            account = Account(
                tenant_id=tenant_id, account_id=check_id("account", rec["account_id"]),
                currency=currency, rate_plan_id=plan_id,
                credit_limit=parse_amount(rec.get("credit_limit") or "0"),
                status=status, kind=kind,
            )
            opening = parse_amount(rec.get("opening_balance") or "0")
        except (KeyError, ValueError) as exc:
            raise LoadError(f"accounts line {line}: {exc}") from exc
        rows.append(AccountRow(account, opening))
    return rows


async def load_tenant(engine: Engine, data: TenantData) -> str:
    """Write the tenant to Postgres (the record), provision Redis, fund opening balances."""
    from charging_engine.ledger.catalog_repo import (
        add_pbx_key,
        replace_rate_plan,
        upsert_account,
        upsert_tenant,
    )

    now = engine.service.clock()
    async with engine.pool.acquire() as conn, conn.transaction():
        await upsert_tenant(conn, data.tenant)
        await replace_rate_plan(conn, data.tenant.tenant_id, data.plan, data.plan.plan_id)
        for row in data.accounts:
            await upsert_account(conn, row.account)
        if data.pbx_key:
            await add_pbx_key(conn, data.tenant.tenant_id, "default", data.pbx_key)
    store = engine.store
    for row in data.accounts:
        a = row.account
        await store.provision(a.tenant_id, a.account_id, currency=a.currency,
                              credit_limit=a.credit_limit, status=a.status.value, now_ms=now)
        if row.opening_balance:
            await store.credit(a.tenant_id, a.account_id, kind="topup",
                               amount=row.opening_balance, idem_key="opening-balance",
                               extra={"method": "opening_balance"}, now_ms=now)
    await engine.refresh_catalog(force=True)
    return (f"tenant {data.tenant.tenant_id}: {len(data.plan.rates)} rates, "
            f"{len(data.accounts)} accounts")
