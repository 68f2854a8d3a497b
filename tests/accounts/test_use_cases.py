"""The engine's account and money use cases without any HTTP layer, as billing will call them:
real Redis (the charging functions) and real PostgreSQL (the record), domain errors raised.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges, AccountPatch, NewAccount
from charging_engine.accounts.errors import (
    AccountClosed,
    AccountExists,
    BalanceNotZero,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidInput,
    NotFound,
)
from charging_engine.accounts.money import MoneyOperations, Operation
from charging_engine.audit import Actor
from charging_engine.balance.store import BalanceStore
from tests.integration.fixtures import pool_fixture, redis_fixture  # noqa: F401

BILLING = Actor("billing", "system")
TENANT = "t1"


@dataclass
class UseCases:
    accounts: AccountChanges
    money: MoneyOperations
    store: BalanceStore
    pool: asyncpg.Pool
    catalog_changes: list[int]


@pytest.fixture
async def cases(redis: aioredis.Redis, pool: asyncpg.Pool) -> AsyncIterator[UseCases]:
    store = BalanceStore(redis, buckets=8)
    await store.load()
    await pool.execute("INSERT INTO tenants (tenant_id, currency) VALUES ($1, 'EUR')", TENANT)
    changes: list[int] = []
    clock = itertools.count(1_800_000_000_000, 1000)

    async def refreshed() -> None:
        changes.append(1)

    yield UseCases(
        AccountChanges(pool, store, clock=lambda: next(clock), on_catalog_change=refreshed),
        MoneyOperations(pool, store, clock=lambda: next(clock)),
        store, pool, changes,
    )


async def test_create_provisions_redis_records_history_and_audits(cases: UseCases) -> None:
    row, created = await cases.accounts.create(BILLING, TENANT, NewAccount("a1"))
    assert created and row.currency == "EUR" and row.status is AccountStatus.ACTIVE
    state = await cases.store.state(TENANT, "a1")
    assert state is not None and state.balance == 0
    history = await cases.pool.fetch("SELECT to_status, changed_by FROM account_status_history")
    assert [(r["to_status"], r["changed_by"]) for r in history] == [("active", "billing")]
    audit = await cases.pool.fetchval(
        "SELECT key_id FROM audit_log WHERE action = 'account.create'"
    )
    assert audit == "billing"
    assert cases.catalog_changes == [1]
    again, created_again = await cases.accounts.create(BILLING, TENANT, NewAccount("a1"))
    assert not created_again and again.account_id == "a1"
    with pytest.raises(AccountExists):
        await cases.accounts.create(BILLING, TENANT, NewAccount("a1", name="other"))


async def test_refusals_are_domain_errors(cases: UseCases) -> None:
    with pytest.raises(NotFound):
        await cases.accounts.update(BILLING, TENANT, "nobody", AccountPatch(name="x"))
    with pytest.raises(InvalidInput):
        await cases.accounts.create(BILLING, TENANT, NewAccount("bad id!"))
    with pytest.raises(NotFound):
        await cases.accounts.create(BILLING, "no-tenant", NewAccount("a1"))
    await cases.accounts.create(BILLING, TENANT, NewAccount("a1"))
    with pytest.raises(InvalidInput):
        await cases.accounts.update(BILLING, TENANT, "a1", AccountPatch(credit_limit=-1))
    with pytest.raises(InvalidInput):
        Operation.topup(0, "cash")
    with pytest.raises(InsufficientFunds) as refused:
        await cases.money.perform(BILLING, TENANT, "a1", Operation.withdrawal(5, "r"), "k-w")
    assert refused.value.available == 0 and refused.value.currency == "EUR"


async def test_status_change_reaches_redis_and_close_needs_zero(cases: UseCases) -> None:
    await cases.accounts.create(BILLING, TENANT, NewAccount("a1"))
    await cases.accounts.change_status(
        BILLING, TENANT, "a1", AccountStatus.OUTGOING_SUSPENDED, "unpaid invoice"
    )
    state = await cases.store.state(TENANT, "a1")
    assert state is not None and state.status == "outgoing_suspended"
    await cases.money.perform(BILLING, TENANT, "a1", Operation.topup(1_000_000, "cash"), "k1")
    with pytest.raises(BalanceNotZero) as refused:
        await cases.accounts.close(BILLING, TENANT, "a1", "customer left")
    assert refused.value.balance == 1_000_000
    await cases.money.perform(
        BILLING, TENANT, "a1", Operation.withdrawal(1_000_000, "refund"), "k2"
    )
    closed = await cases.accounts.close(BILLING, TENANT, "a1", "customer left")
    assert closed.status is AccountStatus.TERMINATED
    with pytest.raises(AccountClosed):
        await cases.money.perform(BILLING, TENANT, "a1", Operation.topup(1, "cash"), "k3")
    reasons = await cases.pool.fetch(
        "SELECT to_status, reason FROM account_status_history ORDER BY id"
    )
    assert [r["to_status"] for r in reasons] == ["active", "outgoing_suspended", "terminated"]


async def test_same_key_concurrently_credits_once(cases: UseCases) -> None:
    await cases.accounts.create(BILLING, TENANT, NewAccount("a1"))
    op = Operation.topup(2_500_000, "card", reference="gw-1")
    outcomes = await asyncio.gather(
        *(cases.money.perform(BILLING, TENANT, "a1", op, "pay-1") for _ in range(8))
    )
    state = await cases.store.state(TENANT, "a1")
    assert state is not None and state.balance == 2_500_000
    assert sum(not o.replayed for o in outcomes) >= 1
    assert {o.operation.balance_after for o in outcomes} == {2_500_000}
    audits = await cases.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'account.topup'"
    )
    assert audits == 1
    with pytest.raises(IdempotencyKeyReused):
        await cases.money.perform(BILLING, TENANT, "a1", Operation.topup(1, "card"), "pay-1")


amounts = st.integers(min_value=1, max_value=10**9)
ops = st.lists(
    st.tuples(st.sampled_from(["topup", "adjust+", "adjust-"]), amounts, st.integers(0, 5)),
    min_size=1, max_size=12,
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
async def test_balance_is_the_sum_of_distinct_keys(
    cases: UseCases, sequence: list[tuple[str, int, int]]
) -> None:
    """Any mix of operations, keys repeated at random: each key moves the balance once, by
    the amount first sent with it, and the record agrees with Redis."""
    account = f"p{next(_accounts)}"
    await cases.accounts.create(BILLING, TENANT, NewAccount(account))
    first: dict[str, Operation] = {}
    for kind, amount, key_no in sequence:
        key = f"{account}-k{key_no}"
        op = {
            "topup": Operation.topup(amount, "cash"),
            "adjust+": Operation.adjustment(amount, "fix"),
            "adjust-": Operation.adjustment(-amount, "fix"),
        }[kind]
        if key in first and first[key] != op:
            with pytest.raises(IdempotencyKeyReused):
                await cases.money.perform(BILLING, TENANT, account, op, key)
            continue
        first.setdefault(key, op)
        await cases.money.perform(BILLING, TENANT, account, op, key)
    state = await cases.store.state(TENANT, account)
    assert state is not None
    assert state.balance == sum(op.amount for op in first.values())
    recorded = await cases.pool.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM money_operations WHERE account_id = $1"
        " AND status = 'ok'", account,
    )
    assert recorded == state.balance


_accounts = itertools.count(1)
