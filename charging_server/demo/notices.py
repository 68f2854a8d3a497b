"""The demo's notifications: what erin, frank and grace were told while the demo ran.

Every billing event of the demo (invoices finalized, payments, ladder steps, money about to
expire, an inactivation coming) was queued for the notifications relay in its own transaction;
now the relay turns them into messages for the accounts with contact details, and the
dispatcher sends them by email to a local SMTP server (aiosmtpd) and by SMS to the local SMSC
simulator (SMPP 3.4 over TCP), each once; the SMSC's delivery receipts mark them delivered."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from billing.clock import MovableClock
from charging_engine.bootstrap import Engine
from charging_server.demo.field import play_field
from charging_server.demo.show import title
from notifications.channels.email import EmailChannel, SmtpSettings
from notifications.channels.sms import DeliveryReceipts, SmsChannel
from notifications.compose import Composer
from notifications.dispatcher import Dispatcher
from notifications.keywords import Keywords
from notifications.relay import Relay
from notifications.smpp import Delivery, SmppClient, Smsc

TENANT = "acme"
CONTACTS = (  # account, name, mobile, email
    ("erin", "Erin Example", "+12125550142", "erin@example.com"),
    ("frank", "Frank Example", "+12125550143", None),
    ("grace", "Grace Example", "+12125550144", "grace@example.com"),
)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 Message accepted"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def play_notices(engine: Engine, clock: MovableClock) -> None:
    title("notifications: what the customers were told (email to a local SMTP server, SMS to"
          " a local SMSC)")
    pool = engine.pool
    for account, name, mobile, email in CONTACTS:
        await pool.execute(
            "INSERT INTO account_details (tenant_id, account_id, name, primary_mobile, email)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, account_id) DO UPDATE SET"
            " name = excluded.name, primary_mobile = excluded.primary_mobile, email ="
            " excluded.email", TENANT, account, name, mobile, email)  # fmt: skip
    relay = Relay(pool, now=clock.now)
    made = 0
    while moved := await relay.run_once():
        made += moved
    inbox, port = _Inbox(), _port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        async with Smsc({"acme": "demopass"}) as smsc:
            receipts = DeliveryReceipts(pool, now=clock.now)
            keywords = Keywords(pool, engine.store, now=clock.now)

            async def on_deliver(d: Delivery) -> None:  # as the channel registry chains them
                await receipts(d)
                await keywords(d)

            client = SmppClient("127.0.0.1", smsc.port, "acme", "demopass",
                                on_deliver=on_deliver)  # fmt: skip
            stop = asyncio.Event()
            task = asyncio.create_task(client.run(stop))
            await asyncio.wait_for(client.bound.wait(), 10)
            mail = EmailChannel(SmtpSettings("127.0.0.1", port, "Acme Telecom"
                                             " <billing@acme.example>", security="none"))
            dispatcher = Dispatcher(pool, {"email": mail, "sms": SmsChannel(client, "ACME")},
                                    Composer(pool), now=clock.now)  # fmt: skip
            sent = await dispatcher.drain()
            for _ in range(200):  # the receipts come back over the same session
                if await pool.fetchval("SELECT count(*) FROM notifications WHERE channel ="
                                       " 'sms' AND status = 'sent'") == 0:  # fmt: skip
                    break
                await asyncio.sleep(0.01)
            await _report(pool, inbox, made, sent, len(smsc.messages))

            async def send() -> int:
                while await relay.run_once():
                    pass
                return await dispatcher.drain()

            await play_field(engine, clock, smsc, send)
            await mail.aclose()
            stop.set()
            await asyncio.wait_for(task, 10)
    finally:
        smtp.stop()


async def _report(pool: Any, inbox: _Inbox, made: int, sent: int, sms_count: int) -> None:
    kinds = Counter(r["event"] for r in await pool.fetch(
        "SELECT event FROM notifications WHERE tenant_id = $1", TENANT))  # fmt: skip
    print(f"  the relay made {made} messages from the demo's events:"
          f" {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}")
    delivered = await pool.fetchval("SELECT count(*) FROM notifications WHERE status ="
                                    " 'delivered'")  # fmt: skip
    print(f"  sent {sent}: {len(inbox.messages)} emails received by the SMTP server,"
          f" {sms_count} SMS by the SMSC ({delivered} confirmed by delivery receipts)")
    subjects = sorted({str(m["Subject"]) for m in inbox.messages if m["To"] ==
                       "erin@example.com"})  # fmt: skip
    print(f"  erin's email subjects: {'; '.join(subjects)}")
    rows = await pool.fetchval("SELECT count(*) FROM notifications WHERE channel = 'sms'")
    print(f"  {rows} SMS in the outbox, {sms_count} at the SMSC: none lost, none twice")
