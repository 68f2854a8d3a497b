"""The schema is applied once, in order, and every catalogue write moves the version."""

from __future__ import annotations

import asyncio

import asyncpg

from charging_engine.ledger.migrations import Migration
from charging_engine.ledger.migrations import available as available_in
from charging_engine.ledger.migrations import migrate as migrate_packages
from charging_server.migrations import PACKAGES

from .fixtures import pool_fixture  # noqa: F401  (provides "pool")


def available() -> list[Migration]:
    """Every package's migrations, as the assembly point applies them."""
    return available_in(PACKAGES)


async def migrate(dsn: str) -> list[str]:
    return await migrate_packages(dsn, PACKAGES)


async def test_migrating_an_up_to_date_database_applies_nothing(
    database_url: str, pool: asyncpg.Pool
) -> None:
    assert await migrate(database_url) == []
    rows = await pool.fetch("SELECT version, name, applied_at FROM schema_migrations"
                            " ORDER BY version")
    want = sorted((m.version, m.name) for m in available())
    assert [(r["version"], r["name"]) for r in rows] == want
    assert rows[0]["applied_at"] is not None


async def test_fresh_database_is_migrated_once_even_concurrently(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await pool.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    results = await asyncio.gather(*(migrate(database_url) for _ in range(3)))
    assert sorted(results) == [[], [], [m.version for m in available()]]
    assert await migrate(database_url) == []
    assert await pool.fetchval("SELECT version FROM catalog_version") == 1


async def test_money_columns_are_bigint(pool: asyncpg.Pool) -> None:
    money = {
        ("accounts", "credit_limit"), ("rates", "price_per_minute"), ("rates", "connect_fee"),
        ("ledger_entries", "amount"), ("ledger_entries", "reserved"),
        ("ledger_entries", "balance_after"), ("calls", "cost"),
    }
    rows = await pool.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    )
    types = {(r["table_name"], r["column_name"]): r["data_type"] for r in rows}
    assert {types[c] for c in money} == {"bigint"}


async def test_catalogue_writes_bump_the_version_once_per_statement(pool: asyncpg.Pool) -> None:
    async def version() -> int:
        return int(await pool.fetchval("SELECT version FROM catalog_version"))

    v0 = await version()
    await pool.execute("INSERT INTO tenants (tenant_id, name, currency) VALUES ('t', 'T', 'EUR')")
    v1 = await version()
    assert v1 == v0 + 1
    await pool.execute(
        "INSERT INTO accounts (tenant_id, account_id, currency)"
        " SELECT 't', 'a' || g, 'EUR' FROM generate_series(1, 50) g"
    )
    assert await version() == v1 + 1
    await pool.execute(
        "INSERT INTO rate_plans (tenant_id, plan_id, currency) VALUES ('t', 'p', 'EUR')"
    )
    await pool.execute(
        "INSERT INTO rates (tenant_id, plan_id, prefix, price_per_minute) VALUES ('t', 'p', '1', 5)"
    )
    await pool.execute("INSERT INTO pbx_keys (tenant_id, key_id, key_hash) VALUES ('t', 'k', 'h')")
    await pool.execute("DELETE FROM rates")
    assert await version() == v1 + 5
    # The ledger is not catalogue: settling calls must not make engines reload.
    await pool.execute(
        "INSERT INTO ledger_entries (tenant_id, account_id, seq, kind, amount, reserved,"
        " balance_after, idem_key, stream_id, bucket, ts)"
        " VALUES ('t', 'a1', 1, 'topup', 5, 0, 5, 'x', '1-0', 0, now())"
    )
    assert await version() == v1 + 5
