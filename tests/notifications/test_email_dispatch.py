"""The dispatcher sending email to a real SMTP server (aiosmtpd on loopback), on real Postgres:
every message once (two dispatchers at once), an outage retried with backoff on a movable
clock, a refused recipient dead at once, a message given up after the configured time."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import asyncpg
import orjson
import pytest
from aiosmtpd.controller import Controller

from billing.clock import MovableClock
from notifications.channels.email import EmailChannel, SmtpSettings
from notifications.channels.model import Outgoing
from notifications.dispatcher import Dispatcher, Retry
from tests.billing import support
from tests.integration.fixtures import pool_fixture  # noqa: F401

AT = datetime(2026, 6, 1, 9, tzinfo=UTC)


class Inbox:
    """aiosmtpd handler: keeps what it accepted; refuses recipients at bad.example."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:  # fmt: skip
        if address.endswith("@bad.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    c = Controller(inbox, hostname="127.0.0.1", port=port)
    c.start()
    try:
        yield inbox, port
    finally:
        c.stop()


async def render(r: asyncpg.Record) -> Outgoing:
    ctx = orjson.loads(r["context"])
    return Outgoing(r["notification_id"], r["tenant_id"], r["recipient"],
                    body=f"Invoice {ctx['n']} is ready", subject=f"Invoice {ctx['n']}",
                    html=f"<p>Invoice <b>{ctx['n']}</b></p>")  # fmt: skip


async def queue(pool: asyncpg.Pool, n: int, recipient: str = "c{i}@example.com") -> None:
    await support.tenant(pool, "t1", "EUR")
    await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency) VALUES"
                       " ('t1', 'a1', 'EUR')")  # fmt: skip
    for i in range(n):
        await pool.execute(
            "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
            " recipient, language, context, next_attempt_at, created_at) VALUES ('t1', 'a1',"
            " $1, 'invoice.ready', 'email', $2, 'en', $3, $4, $4)", f"ev{i}",
            recipient.format(i=i), orjson.dumps({"n": f"INV-{i}"}).decode(), AT)


def channel(port: int) -> EmailChannel:
    return EmailChannel(SmtpSettings("127.0.0.1", port, "Acme Billing <billing@acme.example>",
                                     security="none", timeout_s=5))  # fmt: skip


async def test_two_dispatchers_send_every_message_once(pool: asyncpg.Pool,
                                                       smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    await queue(pool, 60)
    clock = MovableClock(AT)
    a, b = (Dispatcher(pool, {"email": channel(port)}, render, now=clock.now, batch=7)
            for _ in range(2))  # fmt: skip
    sent = 0
    while await pool.fetchval("SELECT count(*) FROM notifications WHERE status <> 'sent'"):
        sent += sum(await asyncio.gather(a.run_once(), b.run_once()))
    assert sent == 60
    ids = [m["Message-ID"] for m in inbox.messages]
    assert len(ids) == 60 == len(set(ids))
    first = next(m for m in inbox.messages if m["To"] == "c0@example.com")
    assert first["Subject"] == "Invoice INV-0" and first.is_multipart()
    parts = [p.get_content_type() for p in first.walk() if not p.is_multipart()]
    assert parts == ["text/plain", "text/html"]
    refs = await pool.fetch("SELECT provider_ref FROM notifications")
    assert {r["provider_ref"] for r in refs} == set(ids)


async def test_an_outage_is_retried_and_a_refusal_is_dead(pool: asyncpg.Pool) -> None:
    await queue(pool, 1)
    await pool.execute(
        "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
        " recipient, language, context, next_attempt_at, created_at) VALUES ('t1', 'a1',"
        " 'evx', 'invoice.ready', 'email', 'x@bad.example', 'en', $1, $2, $2)",
        orjson.dumps({"n": "INV-X"}).decode(), AT)  # fmt: skip
    inbox, port = Inbox(), free_port()
    clock = MovableClock(AT)
    retry = Retry(first=timedelta(seconds=30), give_up=timedelta(hours=1))
    d = Dispatcher(pool, {"email": channel(port)}, render, now=clock.now, retry=retry)
    assert await d.run_once() == 0  # nobody listens on the port
    r = await pool.fetchrow("SELECT * FROM notifications WHERE source_event = 'ev0'")
    assert r["status"] == "pending" and r["attempts"] == 1 and "SendFailed" in r["last_error"]
    assert timedelta(seconds=30) <= r["next_attempt_at"] - AT <= timedelta(seconds=36)
    assert await d.run_once() == 0  # not due yet: nothing claimed
    c = Controller(inbox, hostname="127.0.0.1", port=port)
    c.start()
    try:
        clock.set(AT + timedelta(seconds=40))
        assert await d.drain() == 1
        assert [m["To"] for m in inbox.messages] == ["c0@example.com"]
        bad = await pool.fetchrow("SELECT * FROM notifications WHERE source_event = 'evx'")
        assert bad["status"] == "dead" and "550" in bad["last_error"]
    finally:
        c.stop()


async def test_given_up_after_the_configured_time(pool: asyncpg.Pool) -> None:
    await queue(pool, 1)
    clock = MovableClock(AT)
    d = Dispatcher(pool, {"email": channel(free_port())}, render, now=clock.now,
                   retry=Retry(first=timedelta(minutes=10), give_up=timedelta(minutes=30)))
    for minutes in (0, 13, 40):  # backoff 10 then 20 min, each up to a fifth more of jitter
        clock.set(AT + timedelta(minutes=minutes))
        await d.run_once()
    r = await pool.fetchrow("SELECT status, attempts FROM notifications")
    assert (r["status"], r["attempts"]) == ("dead", 3)
