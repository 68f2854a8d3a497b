"""Low-balance and exhausted alerts, as the alert feed stores them, become messages once, on the
lines the account chose (not the auto top-up's own line)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from notifications.balance_alerts import BalanceAlerts
from notifications.compose import Composer
from tests.integration.fixtures import pool_fixture  # noqa: F401
from tests.notifications.test_relay import setup

AT = datetime(2026, 6, 1, 9, tzinfo=UTC)


async def alert(pool: asyncpg.Pool, n: int, kind: str, threshold: int | None) -> None:
    await pool.execute(
        "INSERT INTO alerts (tenant_id, account_id, kind, balance, threshold, raised_at, bucket,"
        " stream_id) VALUES ('t1', 'a1', $1, 4200000, $2, $3, 0, $4)", kind, threshold, AT,
        f"{n}-0")  # fmt: skip


async def test_alerts_become_messages_once(pool: asyncpg.Pool) -> None:
    await setup(pool)
    await pool.execute("UPDATE account_details SET low_balance_thresholds = '{5000000}'"
                       " WHERE account_id = 'a1'")  # fmt: skip
    await alert(pool, 1, "low_balance", 5_000_000)
    await alert(pool, 2, "low_balance", 3_000_000)  # the auto top-up's line: not the customer's
    await alert(pool, 3, "exhausted", 0)
    alerts = BalanceAlerts(pool)
    assert await alerts.run_once(AT) == 4
    assert await alerts.run_once(AT) == 0
    assert await BalanceAlerts(pool).run_once(AT) == 0  # a restarted process: nothing twice
    rows = await pool.fetch("SELECT * FROM notifications ORDER BY notification_id")
    assert sorted({r["event"] for r in rows}) == ["balance.exhausted", "balance.low"]
    sms = next(r for r in rows if r["event"] == "balance.low" and r["channel"] == "sms")
    assert "4.20" in (await Composer(pool)(sms)).body
