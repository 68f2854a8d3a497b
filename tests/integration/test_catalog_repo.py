"""The catalogue written to Postgres loads back equal, and every change moves its version."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import asyncpg

from charging_engine.catalog import (
    Account,
    AccountStatus,
    FailurePolicy,
    PbxKey,
    Tenant,
    hash_key,
)
from charging_engine.ledger.catalog_repo import (
    add_pbx_key,
    catalog_version,
    load_catalog,
    replace_rate_plan,
    revoke_pbx_key,
    upsert_account,
    upsert_tenant,
)
from charging_engine.money import Rounding
from charging_engine.rating.model import Rate, RatePlan, TimeBand

from .fixtures import pool_fixture  # noqa: F401  (provides "pool")

TENANTS = [
    Tenant("acme", "Acme Ltd", "GBP", "Europe/London", FailurePolicy.FAIL_OPEN),
    Tenant("zeta", "Zeta", "USD"),
]
ACCOUNTS = [
    Account("acme", "1001", "GBP", "std"),
    Account("acme", "1002", "GBP", None, credit_limit=50_000_000,
            status=AccountStatus.OUTGOING_SUSPENDED, kind="postpaid"),
    Account("zeta", "z.1", "USD", "std", status=AccountStatus.TERMINATED),
]
PEAK = TimeBand("peak", frozenset({0, 1, 2, 3, 4}), time(8, 0), time(18, 0))
NIGHT = TimeBand("night", frozenset(range(7)), time(22, 0), time(6, 30))
WEEKEND = TimeBand("weekend", frozenset({5, 6}))
PLAN = RatePlan(
    "std",
    "GBP",
    (
        Rate("44", 12_000, "UK", connect_fee=5_000, min_duration=30, first_increment=30,
             next_increment=6, grace_seconds=3, rounding=Rounding.HALF_EVEN, decimals=2),
        Rate("4420", 9_000, "London peak", band=PEAK),
        Rate("4420", 4_000, "London night", band=NIGHT),
        Rate("4420", 2_000, "London weekend", band=WEEKEND),
        Rate("4420", 8_000, "London from March",
             active_from=datetime(2025, 3, 1, tzinfo=ZoneInfo("Europe/London"))),
        Rate("1", 1, "NANP", rounding=Rounding.DOWN, decimals=6),
    ),
)


async def write_all(pool: asyncpg.Pool) -> None:
    for t in TENANTS:
        await upsert_tenant(pool, t)
    await replace_rate_plan(pool, "acme", PLAN, name="Standard")
    await replace_rate_plan(pool, "zeta", RatePlan("std", "USD"))
    for a in ACCOUNTS:
        await upsert_account(pool, a)
    await add_pbx_key(pool, "acme", "pbx1", "s3cret")
    await add_pbx_key(pool, "acme", "old", "leaked")
    await revoke_pbx_key(pool, "acme", "old")


async def test_catalogue_round_trip(pool: asyncpg.Pool) -> None:
    await write_all(pool)
    data = await load_catalog(pool)
    assert data.tenants == TENANTS
    assert data.accounts == ACCOUNTS
    assert data.plans == [("acme", PLAN), ("zeta", RatePlan("std", "USD"))]
    assert data.pbx_keys == [PbxKey("acme", "pbx1", hash_key("s3cret"))]
    assert data.version == await catalog_version(pool)
    assert await pool.fetchval("SELECT name FROM rate_plans WHERE plan_id = 'std'"
                               " AND tenant_id = 'acme'") == "Standard"
    assert await pool.fetchval("SELECT count(*) FROM pbx_keys WHERE key_hash = $1",
                               "s3cret") == 0  # only the hash is stored


async def test_load_on_a_connection_inside_a_transaction(pool: asyncpg.Pool) -> None:
    await write_all(pool)
    async with pool.acquire() as conn, conn.transaction():
        data = await load_catalog(conn)
    assert data.accounts == ACCOUNTS
    async with pool.acquire() as conn:
        assert (await load_catalog(conn)).plans == data.plans


async def test_every_catalogue_change_moves_the_version(pool: asyncpg.Pool) -> None:
    await write_all(pool)
    seen = [await catalog_version(pool)]

    async def moved() -> bool:
        seen.append(await catalog_version(pool))
        return seen[-1] > seen[-2]

    await upsert_tenant(pool, Tenant("acme", "Acme Group", "GBP", "Europe/London"))
    assert await moved()
    await upsert_account(pool, Account("acme", "1001", "GBP", "std", credit_limit=1))
    assert await moved()
    await replace_rate_plan(pool, "acme", RatePlan("std", "GBP", PLAN.rates[:1]))
    assert await moved()
    await add_pbx_key(pool, "acme", "pbx2", "other")
    assert await moved()
    await revoke_pbx_key(pool, "acme", "pbx2")
    assert await moved()
    data = await load_catalog(pool)
    assert data.version == seen[-1]
    assert data.tenants[0].name == "Acme Group"
    assert data.plans[0][1].rates == PLAN.rates[:1]
    assert [k.key_id for k in data.pbx_keys] == ["pbx1"]


async def test_replace_rate_plan_swaps_a_big_deck_atomically(pool: asyncpg.Pool) -> None:
    await upsert_tenant(pool, TENANTS[0])
    deck = tuple(
        Rate(str(10_000 + i), 1_000 + i, f"dest {i}",
             active_from=datetime(2024, 1, 1, tzinfo=UTC) if i % 2 else None)
        for i in range(20_000)
    )
    await replace_rate_plan(pool, "acme", RatePlan("big", "GBP", deck))
    await replace_rate_plan(pool, "acme", RatePlan("big", "GBP", deck[:3]))
    assert await pool.fetchval("SELECT count(*) FROM rates") == 3
    await replace_rate_plan(pool, "acme", RatePlan("big", "GBP", deck))
    (plan,) = [p for t, p in (await load_catalog(pool)).plans if p.plan_id == "big"]
    assert plan.rates == deck


async def test_readding_a_revoked_key_id_reactivates_it(pool: asyncpg.Pool) -> None:
    await upsert_tenant(pool, TENANTS[0])
    await add_pbx_key(pool, "acme", "pbx1", "first")
    await revoke_pbx_key(pool, "acme", "pbx1")
    assert (await load_catalog(pool)).pbx_keys == []
    await add_pbx_key(pool, "acme", "pbx1", "rotated")
    assert (await load_catalog(pool)).pbx_keys == [PbxKey("acme", "pbx1", hash_key("rotated"))]
