"""Inbound SMS keywords on real Postgres and Redis: BALANCE from an account's primary or
alternate number answers with that account's balance (prepaid: Redis; postpaid: the open
invoices), HELP and a tenant's aliases in another language, an unknown sender gets the
configured reply or none, a burst from one number gets at most ``replies_per_hour`` replies
(every text logged), a PDU with an identity is answered once however often it is delivered, and
a text through the SMSC simulator and the SMPP client arrives and is answered. And the pure
number and keyword rules, ``normalise`` under hypothesis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from billing.clock import MovableClock
from charging_engine.balance.store import BalanceStore
from notifications.compose import Composer
from notifications.inbound import allowed, keyword, normalise
from notifications.keywords import Keywords
from notifications.smpp import DeliverSm, MobileMessage, SmppClient, Smsc
from notifications.smpp.codes import TAG_RECEIPTED_MESSAGE_ID
from notifications.templates import format_micros, format_money
from tests.billing import support
from tests.integration.drive import BUCKETS
from tests.integration.fixtures import pool_fixture, redis_fixture  # noqa: F401

AT = datetime(2026, 6, 10, 9, tzinfo=UTC)
SHORTCODE = "4444"
BALANCES = {"a1": 12_500_000, "a2": 3_000_000}  # micros


class World:
    def __init__(self, pool: asyncpg.Pool, store: BalanceStore, clock: MovableClock) -> None:
        self.pool, self.store, self.clock = pool, store, clock
        self.keywords = Keywords(pool, store, now=clock.now)

    async def mo(self, source: str, text: str, destination: str = SHORTCODE,
                 ref: str | None = None) -> None:  # fmt: skip
        tlvs = () if ref is None else ((TAG_RECEIPTED_MESSAGE_ID, ref.encode() + b"\0"),)
        pdu = DeliverSm(source, destination, text.encode(), tlvs=tlvs)
        await self.keywords(MobileMessage(source, destination, text, pdu))

    async def replies(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM notifications ORDER BY notification_id"))

    async def text(self, row: asyncpg.Record) -> str:
        return (await Composer(self.pool)(row)).body


@pytest.fixture
async def world(pool: asyncpg.Pool, redis: aioredis.Redis) -> AsyncIterator[World]:
    await support.tenant(pool, "t1", "EUR")
    await pool.execute("UPDATE tenants SET name = 'Example Telecom' WHERE tenant_id = 't1'")
    store = BalanceStore(redis, BUCKETS)
    for a, n, kind in (("a1", 1, "prepaid"), ("a2", 2, "prepaid"), ("a3", 3, "postpaid")):
        await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency, kind) VALUES"
                           " ('t1', $1, 'EUR', $2)", a, kind)  # fmt: skip
        await pool.execute(
            "INSERT INTO account_details (tenant_id, account_id, name, primary_mobile,"
            " alternate_mobile) VALUES ('t1', $1, $2, $3, $4)", a, f"Customer {n}",
            f"+49151000000{n}1", f"+49151000000{n}2")  # fmt: skip
    for a, micros in BALANCES.items():
        await store.provision("t1", a, currency="EUR", credit_limit=0, status="active",
                              now_ms=1)  # fmt: skip
        await store.credit("t1", a, kind="topup", amount=micros, idem_key=f"open-{a}",
                           extra={}, now_ms=1)  # fmt: skip
    await pool.execute("INSERT INTO inbound_settings (tenant_id, destination, support_contact)"
                       " VALUES ('t1', $1, '+49 800 1234')", SHORTCODE)  # fmt: skip
    try:
        yield World(pool, store, MovableClock(AT))
    finally:
        await store.close()


async def invoice(pool: asyncpg.Pool, n: int, account: str, amount: int, due: date) -> None:
    await pool.execute(
        "INSERT INTO invoices (invoice_id, tenant_id, account_id, currency, status, number,"
        " number_seq, issued_on, due_on, subtotal, total, amount_due) VALUES ($1, 't1', $2,"
        " 'EUR', 'finalized', $3, $4, $5, $6, $7, $7, $7)", f"inv_k{n}", account, f"K-{n}", n,
        due - timedelta(days=14), due, amount)  # fmt: skip


async def test_balance_from_primary_and_alternate_numbers(world: World) -> None:
    await world.mo("+4915100000011", " balance ")
    await world.mo("4915100000022", "Balance\n")  # as an SMSC gives it: no "+"
    first, second = await world.replies()
    assert (first["event"], first["account_id"], first["recipient"], first["channel"]) == \
        ("sms.balance_reply", "a1", "+4915100000011", "sms")  # fmt: skip
    assert (second["account_id"], second["recipient"]) == ("a2", "4915100000022")
    assert format_micros(12_500_000, "EUR", "en_US") in await world.text(first)
    assert (await world.text(second)).startswith("Example Telecom: your balance is "
                                                 + format_micros(3_000_000, "EUR", "en_US"))
    log = await world.pool.fetch("SELECT id, number, keyword, account_id, outcome FROM"
                                 " inbound_messages ORDER BY id")  # fmt: skip
    assert [tuple(r)[1:] for r in log] == [("+4915100000011", "balance", "a1", "replied"),
                                           ("+4915100000022", "balance", "a2", "replied")]
    assert [r["source_event"] for r in (first, second)] == [f"inbound:{r['id']}" for r in log]


async def test_postpaid_answers_with_the_amount_due_and_oldest_due_date(world: World) -> None:
    await invoice(world.pool, 1, "a3", 4200, date(2026, 6, 15))
    await invoice(world.pool, 2, "a3", 1000, date(2026, 6, 1))
    await world.mo("+49 151 0000 0031", "BALANCE")
    (row,) = await world.replies()
    text = await world.text(row)
    assert row["account_id"] == "a3" and row["recipient"] == "+49 151 0000 0031"
    assert f"amount due: {format_money(5200, 'EUR', 'en_US')}" in text
    assert "Jun 1, 2026" in text, text


async def test_unknown_number_gets_the_configured_reply_or_none(world: World) -> None:
    await world.mo("+4917000000000", "BALANCE")
    assert await world.replies() == []
    await world.pool.execute("UPDATE inbound_settings SET unknown_reply = 'not a customer?"
                             " call 0800 123'")  # fmt: skip
    await world.mo("+4917000000000", "BALANCE")
    (row,) = await world.replies()
    assert (row["event"], row["recipient"]) == ("sms.help", "+4917000000000")
    assert "not a customer? call 0800 123" in await world.text(row)
    await world.mo("+4915100000011", "BALANCE", destination="5555")  # no tenant's number
    outcomes = await world.pool.fetch("SELECT tenant_id, account_id, outcome FROM"
                                      " inbound_messages ORDER BY id")  # fmt: skip
    assert [tuple(r) for r in outcomes] == [("t1", None, "no_reply"), ("t1", None, "replied"),
                                            (None, None, "no_reply")]  # fmt: skip


async def test_a_burst_from_one_number_is_rate_limited(world: World) -> None:
    await asyncio.gather(*(world.mo("+4915100000011", "BALANCE") for _ in range(100)))
    assert len(await world.replies()) == 10
    counts = dict(await world.pool.fetch("SELECT outcome, count(*) FROM inbound_messages"
                                         " GROUP BY outcome"))  # fmt: skip
    assert counts == {"replied": 10, "rate_limited": 90}
    await world.mo("+4915100000021", "BALANCE")  # another number is not limited
    assert len(await world.replies()) == 11
    world.clock.advance(timedelta(minutes=61))
    await world.mo("4915100000011", "BALANCE")  # an hour later (in another format)
    assert len(await world.replies()) == 12


async def test_aliases_in_another_language_and_help(world: World) -> None:
    await world.pool.execute("INSERT INTO inbound_keywords (tenant_id, keyword, meaning,"
                             " language) VALUES ('t1', 'SALDO', 'balance', 'de'),"
                             " ('t1', 'HILFE', 'help', 'de')")  # fmt: skip
    await world.mo("+4915100000011", "HELP")
    await world.mo("+4915100000011", "BAL ANCE")  # no keyword: told how to ask
    en_help, unknown = await world.replies()
    assert (en_help["event"], en_help["language"]) == ("sms.help", "en")
    assert await world.text(en_help) == ("Example Telecom: text BALANCE for your balance. Help:"
                                          " +49 800 1234")  # fmt: skip
    assert unknown["event"] == "sms.help"
    await world.pool.execute("INSERT INTO notification_settings (tenant_id, language, locale)"
                             " VALUES ('t1', 'de', 'de_DE')")  # fmt: skip
    await world.mo("+4915100000011", " saldo\n")
    await world.mo("+4915100000011", "Hilfe")
    *_, de_balance, de_help = await world.replies()
    assert (de_balance["event"], de_balance["language"]) == ("sms.balance_reply", "de")
    amount = format_micros(12_500_000, "EUR", "de_DE").replace("\xa0", " ")  # SMS: a space
    assert f"Ihr Guthaben: {amount}." in await world.text(de_balance)
    assert "Senden Sie SALDO" in await world.text(de_help)


async def test_a_pdu_delivered_again_is_answered_once(world: World) -> None:
    for _ in range(3):
        await world.mo("+4915100000011", "BALANCE", ref="mo-77")
    assert len(await world.replies()) == 1
    assert await world.pool.fetchval("SELECT count(*) FROM inbound_messages") == 1


async def test_through_the_smsc_simulator(world: World) -> None:
    async with Smsc({"acme": "s3cret"}) as smsc:
        client = SmppClient("127.0.0.1", smsc.port, "acme", "s3cret", response_timeout_s=2,
                            reconnect_min_s=0.05, reconnect_max_s=0.2,
                            on_deliver=world.keywords)  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        try:
            await asyncio.wait_for(client.bound.wait(), 10)
            assert await smsc.mo("+4915100000021", SHORTCODE, "balance") == [0]
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    (row,) = await world.replies()
    assert (row["account_id"], row["recipient"]) == ("a2", "4915100000021")
    assert format_micros(3_000_000, "EUR", "en_US") in await world.text(row)


def test_keywords_and_the_rate_rule() -> None:
    assert keyword(" balance ") == keyword("Balance\n") == ("balance", "en")
    assert keyword("BAL ANCE") is None and keyword("") is None and keyword("balances") is None
    assert keyword("help") == ("help", "en")
    assert keyword("Saldo", {"SALDO": ("balance", "de")}) == ("balance", "de")
    assert allowed(9, 10) and not allowed(10, 10) and not allowed(0, 0)


def test_normalise_examples() -> None:
    assert normalise("+49 (151) 0000-0001") == "+4915100000001"
    assert normalise("004915100000001") == normalise("4915100000001") == "+4915100000001"
    assert normalise("4444") == "4444" and normalise("0151 2345") == "01512345"
    assert normalise("ACME") is None and normalise("+") is None and normalise("") is None
    assert normalise("+1234567890123456") is None  # more than E.164's 15 digits


@given(st.text(alphabet="+0123456789 -()x", max_size=20))
def test_normalise_is_idempotent(raw: str) -> None:
    once = normalise(raw)
    assert once is None or normalise(once) == once


@given(st.integers(1, 9), st.text(alphabet="0123456789", min_size=7, max_size=14),
       st.lists(st.sampled_from([" ", "-"]), max_size=3))  # fmt: skip
def test_formats_of_one_number_agree(first: int, rest: str, seps: list[str]) -> None:
    digits = f"{first}{rest}"
    spaced = digits[:2] + "".join(seps) + digits[2:]
    formats = ["+" + digits, "00" + digits, digits, "+" + spaced, f"(+{digits[:2]}) {digits[2:]}"]
    assert {normalise(f) for f in formats} == {"+" + digits}
