"""Reading and writing the catalogue (tenants, accounts, rate plans, PBX keys) in Postgres.

Engines hold the catalogue in memory (``charging_engine.catalog``) and poll ``catalog_version``,
a single row the migration's triggers bump on every catalogue write, to know when to reload.
Every function takes an ``asyncpg.Connection`` or a ``Pool``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import time
from typing import Any, TypeAlias

import asyncpg

from charging_engine.account_status import AccountStatus
from charging_engine.catalog import (
    Account,
    CatalogData,
    FailurePolicy,
    PbxKey,
    Tenant,
    hash_key,
)
from charging_engine.money import Rounding
from charging_engine.rating.model import Rate, RatePlan, TimeBand

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool  # both have fetch/execute
_MIDNIGHT = time(0, 0)

RATE_COLUMNS = (
    "tenant_id", "plan_id", "prefix", "description", "price_per_minute", "connect_fee",
    "min_duration", "first_increment", "next_increment", "grace_seconds", "rounding",
    "decimals", "band_name", "band_weekdays", "band_start", "band_end", "active_from",
)


@asynccontextmanager
async def connection(conn: Conn) -> AsyncIterator[asyncpg.Connection]:
    """A single connection: the given one, or one acquired from the given pool."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            yield c
    else:
        yield conn


async def catalog_version(conn: Conn) -> int:
    """The catalogue's current version: cheap enough to poll every second."""
    return int(await conn.fetchval("SELECT version FROM catalog_version WHERE id = 1"))


async def load_catalog(conn: Conn) -> CatalogData:
    """Everything the engine keeps in memory, read from one snapshot with its version."""
    async with connection(conn) as c:
        if c.is_in_transaction():
            return await _load(c)
        async with c.transaction(isolation="repeatable_read", readonly=True):
            return await _load(c)


async def _load(c: asyncpg.Connection) -> CatalogData:
    version = await catalog_version(c)
    tenants = [
        Tenant(
            tenant_id=r["tenant_id"],
            name=r["name"],
            currency=r["currency"],
            timezone=r["timezone"],
            failure_policy=FailurePolicy(r["failure_policy"]),
        )
        for r in await c.fetch(
            "SELECT tenant_id, name, currency, timezone, failure_policy FROM tenants"
            " ORDER BY tenant_id"
        )
    ]
    accounts = [
        Account(
            tenant_id=r["tenant_id"],
            account_id=r["account_id"],
            currency=r["currency"],
            rate_plan_id=r["rate_plan_id"],
            credit_limit=r["credit_limit"],
            status=AccountStatus(r["status"]),
            kind=r["kind"],
        )
        for r in await c.fetch(
            "SELECT tenant_id, account_id, currency, rate_plan_id, credit_limit, status, kind"
            " FROM accounts ORDER BY tenant_id, account_id"
        )
    ]
    rates: dict[tuple[str, str], list[Rate]] = {}
    for r in await c.fetch(
        f"SELECT {', '.join(RATE_COLUMNS)} FROM rates ORDER BY tenant_id, plan_id, id"
    ):
        rates.setdefault((r["tenant_id"], r["plan_id"]), []).append(rate_of(r))
    plans = [
        (
            r["tenant_id"],
            RatePlan(
                plan_id=r["plan_id"],
                currency=r["currency"],
                rates=tuple(rates.get((r["tenant_id"], r["plan_id"]), ())),
            ),
        )
        for r in await c.fetch(
            "SELECT tenant_id, plan_id, currency FROM rate_plans ORDER BY tenant_id, plan_id"
        )
    ]
    keys = [
        PbxKey(tenant_id=r["tenant_id"], key_id=r["key_id"], key_hash=r["key_hash"])
        for r in await c.fetch(
            "SELECT tenant_id, key_id, key_hash FROM pbx_keys WHERE revoked_at IS NULL"
            " ORDER BY tenant_id, key_id"
        )
    ]
    return CatalogData(
        version=version, tenants=tenants, accounts=accounts, plans=plans, pbx_keys=keys
    )


def rate_of(r: asyncpg.Record) -> Rate:
    """A ``rates`` row (RATE_COLUMNS) as the rating model's Rate."""
    band = None
    if r["band_name"] is not None:
        weekdays = r["band_weekdays"]
        band = TimeBand(
            name=r["band_name"],
            weekdays=frozenset(weekdays) if weekdays is not None else frozenset(range(7)),
            start=r["band_start"] if r["band_start"] is not None else _MIDNIGHT,
            end=r["band_end"] if r["band_end"] is not None else _MIDNIGHT,
        )
    return Rate(
        prefix=r["prefix"],
        price_per_minute=r["price_per_minute"],
        description=r["description"],
        connect_fee=r["connect_fee"],
        min_duration=r["min_duration"],
        first_increment=r["first_increment"],
        next_increment=r["next_increment"],
        grace_seconds=r["grace_seconds"],
        rounding=Rounding(r["rounding"]),
        decimals=r["decimals"],
        band=band,
        active_from=r["active_from"],
    )


def rate_values(rate: Rate) -> tuple[Any, ...]:
    """The rate's columns after tenant_id, plan_id, in RATE_COLUMNS order."""
    band = rate.band
    return (
        rate.prefix, rate.description, rate.price_per_minute, rate.connect_fee,
        rate.min_duration, rate.first_increment, rate.next_increment, rate.grace_seconds,
        Rounding(rate.rounding).value, rate.decimals,
        band.name if band else None, sorted(band.weekdays) if band else None,
        band.start if band else None, band.end if band else None, rate.active_from,
    )


async def upsert_tenant(conn: Conn, tenant: Tenant) -> None:
    await conn.execute(
        """
        INSERT INTO tenants (tenant_id, name, currency, timezone, failure_policy)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name,
            currency = excluded.currency, timezone = excluded.timezone,
            failure_policy = excluded.failure_policy
        """,
        tenant.tenant_id, tenant.name, tenant.currency, tenant.timezone,
        FailurePolicy(tenant.failure_policy).value,
    )


async def upsert_account(conn: Conn, account: Account) -> None:
    await conn.execute(
        """
        INSERT INTO accounts (tenant_id, account_id, currency, kind, status, credit_limit,
                              rate_plan_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (tenant_id, account_id) DO UPDATE SET currency = excluded.currency,
            kind = excluded.kind, status = excluded.status,
            credit_limit = excluded.credit_limit, rate_plan_id = excluded.rate_plan_id,
            updated_at = now()
        """,
        account.tenant_id, account.account_id, account.currency, account.kind,
        AccountStatus(account.status).value, account.credit_limit, account.rate_plan_id,
    )


async def replace_rate_plan(conn: Conn, tenant_id: str, plan: RatePlan, name: str = "") -> None:
    """Create or replace a plan and all its rates atomically (COPY, so big decks are fast)."""
    async with connection(conn) as c, c.transaction():
        await c.execute(
            """
            INSERT INTO rate_plans (tenant_id, plan_id, name, currency) VALUES ($1, $2, $3, $4)
            ON CONFLICT (tenant_id, plan_id) DO UPDATE SET name = excluded.name,
                currency = excluded.currency
            """,
            tenant_id, plan.plan_id, name, plan.currency,
        )
        await c.execute(
            "DELETE FROM rates WHERE tenant_id = $1 AND plan_id = $2", tenant_id, plan.plan_id
        )
        if plan.rates:
            await c.copy_records_to_table(
                "rates",
                records=[(tenant_id, plan.plan_id, *rate_values(r)) for r in plan.rates],
                columns=RATE_COLUMNS,
            )


async def add_pbx_key(conn: Conn, tenant_id: str, key_id: str, secret: str) -> None:
    """Store a PBX key by its hash only; re-adding a key id replaces it and un-revokes it."""
    await conn.execute(
        """
        INSERT INTO pbx_keys (tenant_id, key_id, key_hash) VALUES ($1, $2, $3)
        ON CONFLICT (tenant_id, key_id) DO UPDATE SET key_hash = excluded.key_hash,
            created_at = now(), revoked_at = NULL
        """,
        tenant_id, key_id, hash_key(secret),
    )


async def revoke_pbx_key(conn: Conn, tenant_id: str, key_id: str) -> None:
    await conn.execute(
        "UPDATE pbx_keys SET revoked_at = now()"
        " WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL",
        tenant_id, key_id,
    )
