"""Suspension and restoration messages from the account status history, on real Postgres: each
change told once (restarts and two processes included), by the ladder with its overdue amount
and by hand without; a change committed late is still told; changes that make no message
cannot hold up the ones after them; history from before the deployment is not news."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg

from notifications.compose import Composer
from notifications.rules import intents, status_event
from notifications.status_messages import StatusMessages
from tests.integration.fixtures import pool_fixture  # noqa: F401
from tests.notifications.test_relay import AT, setup

STATUSES = [None, "active", "outgoing_suspended", "suspended", "inactive", "terminated"]


def test_which_changes_are_news() -> None:
    bars = {None: 0, "active": 0, "outgoing_suspended": 1, "suspended": 2}
    for before, after in itertools.product(STATUSES, STATUSES[1:]):
        got = status_event(before, after)
        if after == "active" and before in ("outgoing_suspended", "suspended", "inactive"):
            assert got == "account.restored", (before, after)
        elif after in ("outgoing_suspended", "suspended") and before in bars \
                and bars[after] > bars[before]:  # fmt: skip
            assert got == "account.suspended", (before, after)
        else:
            assert got is None, (before, after)


def test_a_ladder_step_that_suspends_is_told_once_by_the_status_change() -> None:
    data = {"account_id": "a", "step": "s", "overdue_amount": 5}
    assert [i.event for i in intents("dunning.step_entered", data, AT)] == ["dunning.step"]
    assert intents("dunning.step_entered", {**data, "status": "suspended"}, AT) == []
    assert intents("dunning.cleared", {"account_id": "a"}, AT) == []  # the change tells it


async def change(conn: asyncpg.Pool | asyncpg.Connection, account: str, before: str | None,
                 after: str, by: str = "key_ops") -> int:  # fmt: skip
    n: int = await conn.fetchval(
        "INSERT INTO account_status_history (tenant_id, account_id, from_status, to_status,"
        " reason, changed_by) VALUES ('t1', $1, $2, $3, 'test', $4) RETURNING id", account,
        before, after, by)  # fmt: skip
    return n


async def told(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    return [(r["account_id"], r["event"], r["channel"]) for r in await pool.fetch(
        "SELECT account_id, event, channel FROM notifications ORDER BY notification_id")]


async def test_each_change_is_told_once(pool: asyncpg.Pool) -> None:
    await setup(pool)
    await pool.execute(
        "INSERT INTO dunning_entries (tenant_id, account_id, episode, step, step_name,"
        " entered_at, overdue_amount) VALUES ('t1', 'a2', 1, 2, 'suspend', $1, 4200)", AT)
    await change(pool, "a1", "active", "suspended")  # by hand
    await change(pool, "a2", "active", "suspended", by="dunning")  # by the ladder
    await change(pool, "a1", "suspended", "active")
    await change(pool, "a2", "suspended", "inactive")  # not this message's news
    a, b = StatusMessages(pool), StatusMessages(pool)
    assert sum(await asyncio.gather(a.run_once(AT), b.run_once(AT))) == 6  # sms + email each
    assert await a.run_once(AT) == 0
    assert await StatusMessages(pool).run_once(AT) == 0  # a restarted process: nothing twice
    assert sorted(set(await told(pool))) == sorted(
        (acc, ev, ch) for acc, ev in [("a1", "account.suspended"), ("a2", "account.suspended"),
                                      ("a1", "account.restored")]
        for ch in ("sms", "email"))  # fmt: skip
    compose = Composer(pool)
    sms = {r["account_id"] + r["event"]: (await compose(r)).body for r in await pool.fetch(
        "SELECT * FROM notifications WHERE channel = 'sms'")}  # fmt: skip
    assert "contact us" in sms["a1account.suspended"]
    assert "42.00" in sms["a2account.suspended"] and "contact" not in sms["a2account.suspended"]
    assert "active again" in sms["a1account.restored"]


async def test_late_commits_and_silent_rows(pool: asyncpg.Pool) -> None:
    await setup(pool)
    await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency) VALUES"
                       " ('t1', 'quiet', 'EUR')")  # no contacts: its changes make no message
    for _ in range(300):
        await change(pool, "quiet", "active", "suspended")
        await change(pool, "quiet", "suspended", "active")
    statuses = StatusMessages(pool)
    async with pool.acquire() as late:
        tx = late.transaction()
        await tx.start()
        await change(late, "a2", "active", "suspended")  # its id is taken, not yet committed
        await change(pool, "a1", "active", "suspended")
        while not await statuses.run_once(AT, limit=500):  # 600 silent rows first
            pass
        assert {acc for acc, _, _ in await told(pool)} == {"a1"}
        await tx.commit()
    assert await statuses.run_once(AT) == 2
    assert {acc for acc, _, _ in await told(pool)} == {"a1", "a2"}
    left = await pool.fetchval("SELECT count(*) FROM notification_examined")
    assert left <= 1_000 + 1  # claims below the margin are gone


async def test_history_from_before_the_deployment_is_not_news(pool: asyncpg.Pool) -> None:
    await setup(pool)
    old = await change(pool, "a1", "active", "suspended")
    await pool.execute("UPDATE notification_scans SET last_id = $1 + 1000 WHERE source ="
                       " 'status'", old)  # as 0006_scans.sql does over an existing history
    assert await StatusMessages(pool).run_once(AT) == 0
    await change(pool, "a1", "suspended", "active")
    assert await StatusMessages(pool).run_once(AT) == 2
    assert {ev for _, ev, _ in await told(pool)} == {"account.restored"}
