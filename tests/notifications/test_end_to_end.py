"""A billing event to the customer's inbox and phone: an invoice finalized (its event written in
billing's transaction) is relayed into an email and an SMS, rendered from the catalogue's
defaults in the account's language and the tenant's locale, sent to a real SMTP server and the
SMSC simulator, each once; a tenant's own template replaces the default."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from billing.clock import MovableClock
from billing.webhooks.outbox import enqueue
from notifications.channels.sms import SmsChannel
from notifications.compose import Composer
from notifications.dispatcher import Dispatcher
from notifications.relay import Relay
from notifications.smpp import SmppClient, Smsc
from notifications.templates import validate
from tests.billing import support
from tests.integration.fixtures import pool_fixture  # noqa: F401
from tests.notifications.test_email_dispatch import Inbox, channel, free_port

AT = datetime(2026, 6, 1, 9, tzinfo=UTC)


async def test_invoice_ready_by_email_and_sms(pool: asyncpg.Pool) -> None:
    from aiosmtpd.controller import Controller

    await support.tenant(pool, "t1", "EUR")
    await pool.execute("UPDATE tenants SET name = 'Globex' WHERE tenant_id = 't1'")
    await pool.execute("INSERT INTO notification_settings (tenant_id, locale) VALUES"
                       " ('t1', 'de_DE')")  # fmt: skip
    await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency) VALUES"
                       " ('t1', 'a1', 'EUR'), ('t1', 'a2', 'EUR')")  # fmt: skip
    await pool.execute(
        "INSERT INTO account_details (tenant_id, account_id, name, primary_mobile, email)"
        " VALUES ('t1', 'a1', 'Anna', '+4915100000001', 'anna@example.com'),"
        " ('t1', 'a2', 'Ben', '+4915100000002', NULL)")  # fmt: skip
    body = "Rechnung {{ invoice_number }}: {{ amount_due|money }} bis {{ due_date|date }}."
    validate("invoice.ready", "sms", "body", body)
    await pool.execute("INSERT INTO notification_templates (tenant_id, event, channel, part,"
                       " language, source) VALUES ('t1', 'invoice.ready', 'sms', 'body', 'en',"
                       " $1)", body)  # fmt: skip
    for acct, n in (("a1", 1), ("a2", 2)):
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "t1", "invoice.finalized", {"invoice": {
                "id": f"inv_{n}", "kind": "invoice", "number": f"GLX-{n}", "account_id": acct,
                "currency": "EUR", "amount_due": 4250, "due_on": "2026-06-15"}},
                dedup_key=f"invoice.finalized:inv_{n}", at=AT)  # fmt: skip
    clock = MovableClock(AT)
    assert await Relay(pool, now=clock.now).run_once() == 3  # Ben has no email address
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        async with Smsc({"globex": "pw"}) as smsc:
            client = SmppClient("127.0.0.1", smsc.port, "globex", "pw", response_timeout_s=2)
            stop = asyncio.Event()
            task = asyncio.create_task(client.run(stop))
            await asyncio.wait_for(client.bound.wait(), 10)
            d = Dispatcher(pool, {"email": channel(port), "sms": SmsChannel(client, "Globex")},
                           Composer(pool), now=clock.now)  # fmt: skip
            assert await d.drain() == 3
            stop.set()
            await asyncio.wait_for(task, 10)
            texts = sorted(m.text for m in smsc.messages)
    finally:
        smtp.stop()
    assert texts == ["Rechnung GLX-1: 42,50 € bis 15.06.2026.",
                     "Rechnung GLX-2: 42,50 € bis 15.06.2026."]  # the tenant's own template
    (mail,) = inbox.messages
    assert mail["To"] == "anna@example.com" and "GLX-1" in mail["Subject"]
    part = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    text = part.get_payload(decode=True).decode()
    assert "42,50" in text and "Anna" in text
