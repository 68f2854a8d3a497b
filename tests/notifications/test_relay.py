"""The relay from the billing event log to the notification outbox, on real Postgres: each
committed event becomes its messages once (a rolled-back one never), addressed from the
account's contacts, the tenant's alternate-number setting and the account's opt-outs; two
relays at once share the queue and write every message exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from billing.webhooks.outbox import enqueue
from notifications.relay import Relay
from notifications.rules import intents
from tests.billing import support
from tests.integration.fixtures import pool_fixture  # noqa: F401

AT = datetime(2026, 6, 1, 9, tzinfo=UTC)


async def setup(pool: asyncpg.Pool) -> None:
    await support.tenant(pool, "t1", "EUR")
    for a, n in (("a1", 1), ("a2", 2)):
        await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency) VALUES"
                           " ('t1', $1, 'EUR')", a)  # fmt: skip
        await pool.execute(
            "INSERT INTO account_details (tenant_id, account_id, name, primary_mobile,"
            " alternate_mobile, email) VALUES ('t1', $1, $2, $3, $4, $5)", a, f"Customer {n}",
            f"+49151000000{n}1", f"+49151000000{n}2", f"c{n}@example.com")  # fmt: skip


def invoice(account: str, n: int, due: int = 4200) -> dict[str, Any]:
    return {"invoice": {"id": f"inv_{n}", "kind": "invoice", "number": f"INV-{n}",
                        "account_id": account, "currency": "EUR", "amount_due": due,
                        "due_on": "2026-06-15"}}  # fmt: skip


async def emit(pool: asyncpg.Pool, kind: str, data: dict[str, Any], key: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, "t1", kind, data, dedup_key=key, at=AT)


async def rows(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    return [(r["event"], r["channel"], r["recipient"]) for r in await pool.fetch(
        "SELECT event, channel, recipient FROM notifications ORDER BY notification_id")]


async def test_each_event_becomes_its_messages_once(pool: asyncpg.Pool) -> None:
    await setup(pool)
    relay = Relay(pool, now=lambda: AT)
    await emit(pool, "invoice.finalized", invoice("a1", 1), "e1")
    with pytest.raises(RuntimeError):  # a change rolled back takes its event with it
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "t1", "invoice.finalized", invoice("a2", 9), "e9", at=AT)
            raise RuntimeError("rolled back")
    assert await relay.run_once() == 2
    assert await rows(pool) == [("invoice.ready", "email", "c1@example.com"),
                                ("invoice.ready", "sms", "+4915100000011")]  # fmt: skip
    assert await relay.run_once() == 0
    ctx = await pool.fetchval("SELECT context FROM notifications LIMIT 1")
    assert '"amount_due":4200' in ctx.replace(" ", "") and '"invoice_number":"INV-1"' in \
        ctx.replace(" ", "")  # fmt: skip
    assert await pool.fetchval("SELECT count(*) FROM event_consumer_queue") == 0


async def test_alternate_numbers_and_opt_outs(pool: asyncpg.Pool) -> None:
    await setup(pool)
    relay = Relay(pool, now=lambda: AT)
    await pool.execute("INSERT INTO notification_settings (tenant_id, sms_alternate) VALUES"
                       " ('t1', true)")  # fmt: skip
    await pool.execute("INSERT INTO notification_optouts (tenant_id, account_id, event, channel)"
                       " VALUES ('t1', 'a2', 'payment.succeeded', 'sms')")  # fmt: skip
    await emit(pool, "invoice.finalized", invoice("a1", 2), "e2")
    await emit(pool, "payment.recorded", {"payment": {"account_id": "a2", "amount": 500,
                                                      "currency": "EUR", "method": "cash"}},
               "p1")  # fmt: skip
    await emit(pool, "invoice.finalized", invoice("a1", 3, due=0), "e3")  # nothing to pay
    assert await relay.run_once() == 4
    assert sorted(await rows(pool)) == [
        ("invoice.ready", "email", "c1@example.com"),
        ("invoice.ready", "sms", "+4915100000011"), ("invoice.ready", "sms", "+4915100000012"),
        ("payment.succeeded", "email", "c2@example.com")]  # fmt: skip


async def test_two_relays_at_once_write_every_message_once(pool: asyncpg.Pool) -> None:
    await setup(pool)
    for n in range(40):
        await emit(pool, "invoice.finalized", invoice("a1" if n % 2 else "a2", 100 + n), f"x{n}")
    a, b = Relay(pool, now=lambda: AT), Relay(pool, now=lambda: AT)
    made = 0
    while True:
        got = await asyncio.gather(a.run_once(limit=7), b.run_once(limit=7))
        made += sum(got)
        if not any(got) and not await pool.fetchval("SELECT count(*) FROM event_consumer_queue"):
            break
    assert made == 80 == len(await rows(pool))
    assert await pool.fetchval("SELECT count(DISTINCT (source_event, channel)) FROM"
                               " notifications") == 80  # fmt: skip


def test_rules_ignore_events_nobody_is_told_about() -> None:
    assert intents("invoice.voided", {}, AT) == []
    assert intents("invoice.finalized", {"invoice": {"kind": "receipt"}}, AT) == []
    assert intents("dunning.step_entered", {}, AT) == []  # malformed: nothing, no exception
    (i,) = intents("balance.expiring", {"account_id": "a", "amount": 7,
                                        "valid_until": "2026-06-08T00:00:00+00:00"}, AT)
    assert (i.event, i.context["expiring_micros"]) == ("balance.expiring", 7)
    (s,) = intents("dunning.step_entered", {"account_id": "a", "step": "reminder",
                                            "overdue_amount": 900,
                                            "oldest_due_on": "2026-05-20"}, AT)
    assert s.context["days_overdue"] == 12


def test_every_rule_gives_its_template_every_variable() -> None:
    """What a rule puts in the context is exactly what the template event declares."""
    from notifications.rules import RULES
    from notifications.templates import COMMON_VARIABLES, get_event

    samples = {
        "invoice.finalized": {"invoice": {"kind": "invoice", "account_id": "a", "number": "N",
                                          "amount_due": 5, "due_on": "2026-06-15"}},
        "receipt.issued": {"invoice": {"account_id": "a", "total": 5}},
        "payment.recorded": {"payment": {"account_id": "a", "amount": 5,
                                         "received_on": "2026-06-01"}},
        "dunning.step_entered": {"account_id": "a", "step": "s", "overdue_amount": 5},
        "balance.expiring": {"account_id": "a", "amount": 5, "valid_until": "2026-06-08"},
        "account.inactivation_pending": {"account_id": "a", "due_on": "2026-07-01"},
        "collection.recorded": {"collection": {"account_id": "a", "amount": 5, "method": "cash",
                                               "agent_name": "Ann", "receipt_number": "CR-1",
                                               "received_on": "2026-06-01"}},
    }  # fmt: skip
    assert set(samples) == set(RULES)
    for kind, data in samples.items():
        (i,) = intents(kind, data, AT)
        declared = set(get_event(i.event).variables) - set(COMMON_VARIABLES)
        assert set(i.context) == declared, kind
