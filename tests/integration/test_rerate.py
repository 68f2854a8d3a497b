"""Re-rating a period on real Redis and Postgres: differences booked once, balances consistent.

Calls go through the real charging service and settlement; the corrected plan is compared with
an independent scalar computation (``Tariff.find`` + ``cost``) of what each call should cost.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from charging_engine.bootstrap import Engine, open_engine
from charging_engine.catalog import Account
from charging_engine.config import Settings
from charging_engine.ledger.catalog_repo import replace_rate_plan, upsert_account
from charging_engine.ledger.reconcile import reconcile
from charging_engine.ledger.rerate import RerateError, RerateSummary, rerate
from charging_engine.loader import TenantData, load_tenant
from charging_engine.rating.deck import parse_deck
from charging_engine.rating.model import RatePlan
from charging_engine.rating.pricing import cost
from charging_engine.rating.tariff import Tariff

TENANT, ZONE = "tel", ZoneInfo("Europe/London")
HEADER = ("prefix,price_per_minute,first_increment,next_increment,"
          "band,band_weekdays,band_start,band_end\n")
OLD = HEADER + """44,0.1200,6,6,,,,
1,0.0600,1,1,,,,
33,0.1000,60,60,,,,
49,0.1000,60,60,,,,
49,0.2000,60,60,peak,0-4,08:00,18:00
"""
NEW = HEADER + """44,0.1500,6,6,,,,
1,0.0500,1,1,,,,
49,0.1000,60,60,,,,
49,0.3000,60,60,peak,0-4,08:00,18:00
"""
THIRD = NEW.replace("44,0.1500", "44,0.1100")
ACCOUNTS = "account_id,kind,credit_limit,opening_balance,status\na1,prepaid,0,100.00,active\n" \
           "a2,prepaid,0,100.00,active\n"  # fmt: skip
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=ZoneInfo("Europe/London"))  # 23:00 UTC on 31 March


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass(frozen=True)
class Call:
    call_id: str
    account: str
    dst: str
    start_ms: int
    seconds: int


CALLS = [
    Call("c1", "a1", "447911123456", at("2026-03-10T10:00:00+00:00"), 95),
    Call("c2", "a1", "12125550100", at("2026-03-20T23:30:00+00:00"), 61),
    Call("c3", "a2", "33123456789", at("2026-03-28T12:00:00+00:00"), 30),  # no rate any more
    # Monday 30 March 07:30 UTC is 08:30 in London after the DST change: peak band
    Call("c4", "a2", "4930123456", at("2026-03-30T07:30:00+00:00"), 125),
    Call("c5", "a1", "442071234567", at("2026-04-02T10:00:00+00:00"), 60),  # after the period
    Call("c6", "a2", "447700900000", at("2026-02-27T10:00:00+00:00"), 60),  # before it
    Call("c7", "b1", "447911123456", at("2026-03-11T10:00:00+00:00"), 95),  # another plan
    Call("c8", "a1", "442079460000", at("2026-03-12T10:00:00+00:00"), 0),  # not answered
    Call("c9", "a2", "447911000111", at("2026-03-31T22:59:59.999+00:00"), 42),  # CDR-corrected
]
CDR_SECONDS = {"c9": 200}
IN_PERIOD = ["c1", "c2", "c3", "c4", "c8", "c9"]


def plan(deck: str) -> RatePlan:
    return RatePlan("p", "USD", tuple(parse_deck(deck)))


def expected_cost(deck: str, call: Call) -> int | None:
    """The scalar answer: what the call costs under ``deck`` (None: no rate)."""
    rate = Tariff(plan(deck)).find(call.dst, datetime.fromtimestamp(call.start_ms / 1000, UTC),
                                   ZONE)  # fmt: skip
    return None if rate is None else cost(rate, CDR_SECONDS.get(call.call_id, call.seconds))


@pytest.fixture
async def engine(redis_url: str, database_url: str) -> AsyncIterator[Engine]:
    settings = Settings(redis_url=redis_url, database_url=database_url, buckets=8,
                        consumer_name="rerate-test", reclaim_idle_ms=100)  # fmt: skip
    async with open_engine(settings) as e:
        await load_tenant(e, TenantData.from_text(
            tenant_id=TENANT, name="Tel", currency="USD", timezone="Europe/London",
            plan_id="p", rates=OLD, accounts=ACCOUNTS, pbx_key=None))  # fmt: skip
        other = RatePlan("q", "USD", tuple(parse_deck(OLD)))
        await replace_rate_plan(e.pool, TENANT, other)
        await upsert_account(e.pool, Account(TENANT, "b1", "USD", "q"))
        await e.store.provision(TENANT, "b1", currency="USD", credit_limit=0, status="active",
                                now_ms=1)  # fmt: skip
        await e.store.credit(TENANT, "b1", kind="topup", amount=100_000_000, idem_key="open",
                             extra={}, now_ms=1)  # fmt: skip
        await e.refresh_catalog(force=True)
        for call in CALLS:
            await place(e, call)
        for call_id, seconds in CDR_SECONDS.items():
            call = next(c for c in CALLS if c.call_id == call_id)
            fix = await e.service.correct(TENANT, call.account, call_id, seconds)
            assert fix.corrected, fix
        await drain(e)
        yield e


async def place(e: Engine, call: Call) -> None:
    e.service.clock = lambda: call.start_ms
    decision = await e.service.authorize(TENANT, call.account, call.call_id, call.dst)
    assert decision.allowed, decision
    if call.seconds:
        await e.service.answer(TENANT, call.account, call.call_id)
    await e.service.end(TENANT, call.account, call.call_id, billable_seconds=call.seconds)


async def drain(e: Engine) -> None:
    while await e.settlement.drain_once():
        pass


async def balances(e: Engine) -> dict[str, int]:
    out = {}
    for account in ("a1", "a2", "b1"):
        state = await e.store.state(TENANT, account)
        assert state is not None
        out[account] = state.balance
    return out


async def charged(e: Engine, call_id: str) -> int:
    """A call's charge in the ledger: its cost and every correction of it."""
    row = await e.pool.fetchrow(
        "SELECT c.cost + coalesce((SELECT -sum(amount) FROM ledger_entries e WHERE"
        " e.tenant_id = c.tenant_id AND e.call_id = c.call_id AND e.kind = 'correction'), 0)"
        " AS charged FROM calls c WHERE c.tenant_id = $1 AND c.call_id = $2", TENANT, call_id)
    assert row is not None
    return int(row["charged"])


async def run(e: Engine, deck: str, run_id: str) -> RerateSummary:
    return await rerate(e.store, e.pool, e.settlement, tenant=TENANT, plan=plan(deck),
                        since=SINCE, until=UNTIL, run_id=run_id)  # fmt: skip


async def test_rerate_books_each_difference_once_and_balances_follow(engine: Engine) -> None:
    calls = {c.call_id: c for c in CALLS}
    before = await balances(engine)
    charges = {cid: await charged(engine, cid) for cid in calls}
    for cid in IN_PERIOD:  # the live charges are the old plan's prices
        assert charges[cid] == (expected_cost(OLD, calls[cid]) or 0), cid
    want = {cid: expected_cost(NEW, calls[cid]) for cid in IN_PERIOD}
    deltas = {cid: w - charges[cid] for cid, w in want.items() if w is not None}
    assert deltas["c4"] > 0 and deltas["c1"] > 0 and deltas["c2"] < 0 and deltas["c9"] > 0

    summary = await run(engine, NEW, "march-fix")
    corrected = [cid for cid, d in deltas.items() if d]
    assert (summary.examined, summary.unrated, summary.incomplete, summary.failed) == (6, 1, 0, 0)
    assert (summary.corrected, summary.duplicates) == (len(corrected), 0)
    assert summary.unchanged == 6 - 1 - len(corrected)  # c8: not answered, free either way
    assert summary.total_delta == sum(deltas.values())
    after = await balances(engine)
    for account in ("a1", "a2"):
        moved = sum(d for cid, d in deltas.items() if calls[cid].account == account)
        assert after[account] == before[account] - moved, account
    assert after["b1"] == before["b1"]  # calls rated under another plan are not touched
    for cid in IN_PERIOD:
        assert await charged(engine, cid) == (want[cid] if want[cid] is not None
                                              else charges[cid]), cid  # fmt: skip
    for cid in ("c5", "c6", "c7"):
        assert await charged(engine, cid) == charges[cid], cid
    column = await engine.pool.fetchval(
        "SELECT correction FROM calls WHERE tenant_id = $1 AND call_id = 'c1'", TENANT)
    assert column == deltas["c1"]  # settled into calls already
    assert await reconcile(engine.redis, engine.pool, 8, engine.settlement) == []

    entries = await engine.pool.fetchval("SELECT count(*) FROM ledger_entries")
    again = await run(engine, NEW, "march-fix")  # the same run again changes nothing
    other = await run(engine, NEW, "march-fix-2")  # nor another run of the same plan
    for s in (again, other):
        assert (s.corrected, s.total_delta, s.unchanged) == (0, 0, 6 - 1), s
    assert await balances(engine) == after
    assert await engine.pool.fetchval("SELECT count(*) FROM ledger_entries") == entries

    third = await run(engine, THIRD, "march-fix-3")  # relative to what is charged now
    uk = [cid for cid in IN_PERIOD if calls[cid].dst.startswith("44") and calls[cid].seconds]
    assert third.corrected == len(uk)
    for cid in IN_PERIOD:
        assert await charged(engine, cid) == (expected_cost(THIRD, calls[cid])
                                              or charges[cid]), cid  # fmt: skip
    assert await reconcile(engine.redis, engine.pool, 8, engine.settlement) == []


async def test_rerun_before_settlement_is_refused_by_the_idempotency_keys(engine: Engine) -> None:
    first = await run(engine, NEW, "r1")
    assert first.corrected > 0
    after = await balances(engine)
    # As if settlement had not yet moved r1's entries to Postgres: the ledger does not show
    # them, so the differences look open again; Redis still refuses each one.
    await engine.pool.execute(
        "DELETE FROM ledger_entries WHERE idem_key LIKE 'correction:rerate:r1:%'")
    again = await run(engine, NEW, "r1")
    assert (again.corrected, again.duplicates, again.total_delta) == (0, first.corrected, 0)
    assert await balances(engine) == after


async def test_one_rerate_per_tenant_at_a_time_and_bad_requests(engine: Engine) -> None:
    async with engine.pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended('rerate:' || $1, 0))",
                           TENANT)  # fmt: skip
        with pytest.raises(RerateError, match="another re-rate"):
            await run(engine, NEW, "busy")
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended('rerate:' || $1, 0))",
                           TENANT)  # fmt: skip
    bad: list[tuple[dict[str, object], str]] = [
        ({"tenant": "nobody"}, "does not exist"),
        ({"run_id": "has space"}, "run id"),
        ({"since": datetime(2026, 3, 1)}, "UTC offset"),
        ({"until": SINCE}, "empty period"),
        ({"plan": RatePlan("p", "EUR", plan(NEW).rates)}, "in EUR"),
    ]
    base: dict[str, object] = {"tenant": TENANT, "plan": plan(NEW), "since": SINCE,
                               "until": UNTIL, "run_id": "x"}  # fmt: skip
    before = await balances(engine)
    for change, match in bad:
        with pytest.raises(RerateError, match=match):
            await rerate(engine.store, engine.pool, engine.settlement,
                         **{**base, **change})  # type: ignore[arg-type]
    assert await balances(engine) == before
    assert (await run(engine, NEW, "after-lock")).corrected > 0  # the lock was released


async def test_settlement_backlog_is_drained_first(engine: Engine) -> None:
    """A CDR correction still in Redis when the re-rate starts is counted, not re-booked."""
    call = next(c for c in CALLS if c.call_id == "c1")
    fix = await engine.service.correct(TENANT, "a1", "c1", 300)
    assert fix.corrected and await engine.settlement.lag() > 0
    summary = await run(engine, NEW, "after-cdr")
    assert summary.failed == 0
    rate = Tariff(plan(NEW)).find(call.dst, datetime.fromtimestamp(call.start_ms / 1000, UTC),
                                  ZONE)  # fmt: skip
    assert rate is not None
    assert await charged(engine, "c1") == cost(rate, 300)


def cli(redis_url: str, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "CE_BUCKETS": "8"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "charging_server", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


async def test_cli_rerate(engine: Engine, redis_url: str, database_url: str,
                          tmp_path: Path) -> None:  # fmt: skip
    deck = tmp_path / "rates.csv"
    deck.write_text(NEW)
    args = ["rerate", "--tenant", TENANT, "--plan", "p", "--plan-file", str(deck),
            "--since", SINCE.isoformat(), "--until", UNTIL.isoformat(), "--run-id", "cli-1"]
    before = await balances(engine)
    done = await asyncio.to_thread(cli, redis_url, database_url, *args)
    assert done.returncode == 0, done.stderr
    assert "6 calls examined, 4 corrected" in done.stdout, done.stdout
    assert await balances(engine) != before
    moved = await balances(engine)
    again = await asyncio.to_thread(cli, redis_url, database_url, *args)
    assert again.returncode == 0 and "0 corrected" in again.stdout, again.stdout
    assert await balances(engine) == moved
    naive = [*args[:-4], "--until", "2026-04-01T00:00:00", "--run-id", "cli-2"]
    refused = await asyncio.to_thread(cli, redis_url, database_url, *naive)
    assert refused.returncode == 2 and "UTC offset" in refused.stderr, refused.stderr
    deck.write_text(NEW + "44x,0.1\n")
    broken = await asyncio.to_thread(cli, redis_url, database_url, *args)
    assert broken.returncode == 2 and "line 6" in broken.stderr, broken.stderr


def test_period_bounds_are_what_the_fixture_assumes() -> None:
    assert UNTIL.astimezone(UTC) == datetime(2026, 3, 31, 23, tzinfo=UTC)
    last = next(c for c in CALLS if c.call_id == "c9")
    assert last.start_ms == UNTIL.timestamp() * 1000 - 1  # the period's last millisecond
