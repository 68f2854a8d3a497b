"""Payment reminders on real Postgres: an open invoice is reminded the configured number of days
before its due date, once, on the account's channels; a paid one is not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from notifications.compose import Composer
from notifications.reminders import queue_reminders
from tests.billing import support
from tests.integration.fixtures import pool_fixture  # noqa: F401
from tests.notifications.test_relay import setup

DUE = date(2026, 6, 15)


async def invoice(pool: asyncpg.Pool, n: int, account: str, status: str = "finalized") -> None:
    await pool.execute(
        "INSERT INTO invoices (invoice_id, tenant_id, account_id, currency, status, number,"
        " number_seq, issued_on, due_on, subtotal, total, amount_due) VALUES ($1, 't1', $2,"
        " 'EUR', $3, $4, $5, $6, $7, 4200, 4200, 4200)", f"inv_r{n}", account, status,
        f"R-{n}", n, DUE - timedelta(days=14), DUE)  # fmt: skip


def at(days_before: int) -> datetime:
    return datetime(DUE.year, DUE.month, DUE.day, 9, tzinfo=UTC) - timedelta(days=days_before)


async def test_reminded_once_on_its_day(pool: asyncpg.Pool) -> None:
    await setup(pool)
    await pool.execute("INSERT INTO notification_settings (tenant_id, reminder_days) VALUES"
                       " ('t1', 3)")  # fmt: skip
    await invoice(pool, 1, "a1")
    await invoice(pool, 2, "a2", status="paid")
    assert await queue_reminders(pool, at(5)) == 0  # too early
    assert await queue_reminders(pool, at(3)) == 2  # a1: email and SMS
    assert await queue_reminders(pool, at(3)) == 0
    assert await queue_reminders(pool, at(1)) == 0  # reminded already
    row = await pool.fetchrow("SELECT * FROM notifications WHERE channel = 'sms'")
    assert row["event"] == "invoice.reminder" and row["recipient"] == "+4915100000011"
    text = (await Composer(pool)(row)).body
    assert "R-1" in text and "42" in text


async def test_no_settings_no_reminders(pool: asyncpg.Pool) -> None:
    await support.tenant(pool, "t9", "EUR")
    await setup(pool)
    await invoice(pool, 3, "a1")
    assert await queue_reminders(pool, at(1)) == 0
