"""Notifications: messages rendered, and delivered per second to a local SMTP server and SMSC.

A private Postgres; one tenant and N outbox rows per channel (``invoice.ready``, the context as
``notifications.rules`` and the relay build it), inserted set-based. Timed, in one run:

* rendering alone: ``Composer`` over the rows (the tenant's locale and templates read per row,
  as the dispatcher does), 16 at a time: msgs/s per channel;
* email: the ``Dispatcher`` draining the N email rows through ``EmailChannel`` into an
  aiosmtpd server in its own process (as a real relay is), each message counted (and its
  Message-ID seen once) at the server. ``EmailChannel`` reuses up to 8 SMTP sessions; the same
  drain is also measured with this benchmark's own pool of as many sessions as the
  concurrency; and the message's bytes alone: ``channels.mime`` against the stdlib's
  ``EmailMessage`` (what ``build`` was before);
* SMS: the ``Dispatcher`` draining the N sms rows through ``SmsChannel`` and one bound
  ``SmppClient`` (window 50) into the ``Smsc`` simulator in the same loop, receipts recorded
  as in production (``DeliveryReceipts``); messages counted at the SMSC, and the time until
  every row is ``delivered``.

Each setting (dispatcher batch and concurrency) drains the same rows again after a reset.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from benchmarks.smtp_sink import BuildOnly, PooledEmail, RemoteInbox, stdlib_bytes
from charging_engine.devservers import PostgresServer, ensure_binaries
from charging_server.migrations import migrate
from notifications.channels.email import EmailChannel, SmtpSettings, build
from notifications.channels.model import Channel, Outgoing
from notifications.channels.sms import DeliveryReceipts, SmsChannel
from notifications.compose import Composer
from notifications.dispatcher import Dispatcher
from notifications.smpp import SmppClient, Smsc

AT = datetime(2026, 6, 1, 9, tzinfo=UTC)
SMS_AT = AT + timedelta(days=1)  # the sms rows fall due after the email ones
WINDOW = 50
EMAIL_SETTINGS = ((100, 16), (500, 32), (500, 64))  # dispatcher (batch, concurrency)
POOLED_SETTINGS = ((500, 16), (500, 32))  # (batch, concurrency = SMTP sessions)
SMS_SETTINGS = ((100, 16), (500, 50), (500, 100))


@dataclass(frozen=True)
class Trial:
    variant: str
    batch: int
    concurrency: int
    seconds: float
    received: int  # counted at the server


@dataclass(frozen=True)
class Figures:
    messages: int
    render_email_s: float
    render_sms_s: float
    email: list[Trial] = field(default_factory=list)
    sms: list[Trial] = field(default_factory=list)
    sms_parts: int = 0  # SMPP parts per message (the SMSC's count / messages)
    delivered_s: float = 0.0  # the best SMS trial: until every row is 'delivered'
    mime_ms: float = 0.0  # channels.mime: one rendered message's bytes
    stdlib_mime_ms: float = 0.0  # the same with email.message.EmailMessage, flattened


async def seed(dsn: str, messages: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO tenants (tenant_id, currency, name) VALUES"
                           " ('bench', 'USD', 'Acme Telecom')")  # fmt: skip
        await conn.execute("INSERT INTO notification_settings (tenant_id, locale) VALUES"
                           " ('bench', 'en_US')")  # fmt: skip
        # the relay's context: the contacts' part, then rules._invoice's (None where it is)
        await conn.execute(
            "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
            " recipient, language, context, next_attempt_at, created_at)"
            " SELECT 'bench', 'a' || i, 'evt_' || i, 'invoice.ready', c.ch,"
            " CASE c.ch WHEN 'email' THEN 'customer' || i || '@example.com'"
            " ELSE '+1555' || lpad(i::text, 7, '0') END, 'en',"
            " jsonb_build_object('customer_name', 'Customer ' || i, 'account_id', 'a' || i,"
            " 'tenant_name', 'Acme Telecom', 'currency', 'USD',"
            " 'invoice_number', 'INV-' || lpad(i::text, 7, '0'), 'amount_due', 1000 + i % 9000,"
            " 'due_date', '2026-06-15', 'collection_date', NULL::text, 'invoice_url',"
            " NULL::text), c.at, c.at"
            " FROM generate_series(1, $1) i CROSS JOIN (VALUES ('email', $2::timestamptz),"
            " ('sms', $3::timestamptz)) c(ch, at)", messages, AT, SMS_AT)  # fmt: skip
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _reset(pool: asyncpg.Pool, channel: str) -> None:
    await pool.execute(
        "UPDATE notifications SET status = 'pending', attempts = 0, lease_until = NULL,"
        " provider_ref = NULL, last_error = NULL, sent_at = NULL, delivered_at = NULL"
        " WHERE channel = $1", channel)  # fmt: skip
    await pool.execute("DELETE FROM notification_parts WHERE channel = $1", channel)
    await pool.execute("VACUUM ANALYZE notifications")
    await pool.execute("VACUUM ANALYZE notification_parts")


async def _count(pool: asyncpg.Pool, channel: str, status: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM notifications WHERE channel = $1"
                                 " AND status = $2", channel, status)  # fmt: skip
    return n


async def _render(pool: asyncpg.Pool, channel: str) -> tuple[float, list[Outgoing]]:
    rows = await pool.fetch("SELECT * FROM notifications WHERE channel = $1", channel)
    compose = Composer(pool)
    gate = asyncio.Semaphore(16)

    async def one(r: asyncpg.Record) -> Outgoing:
        async with gate:
            return await compose(r)

    t0 = time.perf_counter()
    out = await asyncio.gather(*(one(r) for r in rows))
    t = time.perf_counter() - t0
    assert all(o.body for o in out)
    return t, out


def _mime_ms(out: list[Outgoing]) -> tuple[float, float]:
    """What a message's bytes cost alone: (``build``, the stdlib's ``EmailMessage``) in ms."""
    s = SmtpSettings("127.0.0.1", 25, "Acme Billing <billing@acme.example>")
    some = out[:1000]
    times = []
    for make in (build, stdlib_bytes):
        t0 = time.perf_counter()
        for m in some:
            make(s, m)
        times.append((time.perf_counter() - t0) * 1000 / len(some))
    return times[0], times[1]


async def _drain(pool: asyncpg.Pool, channel: str, ch: Channel, at: datetime, batch: int,
                 concurrency: int) -> tuple[float, int]:  # fmt: skip
    d = Dispatcher(pool, {channel: ch}, Composer(pool), now=lambda: at, batch=batch,
                   concurrency=concurrency)  # fmt: skip
    t0 = time.perf_counter()
    sent = await d.drain()
    return time.perf_counter() - t0, sent


async def _email(pool: asyncpg.Pool, port: int, inbox: RemoteInbox, n: int) -> list[Trial]:
    settings = SmtpSettings("127.0.0.1", port, "Acme Billing <billing@acme.example>",
                            security="none", timeout_s=20)  # fmt: skip
    trials: list[Trial] = []

    def record(variant: str, batch: int, conc: int, s: float, sent: int) -> None:
        got, unique = inbox.take()
        assert sent == n == got == unique, (variant, sent, got, unique)
        trials.append(Trial(variant, batch, conc, s, got))

    await _reset(pool, "email")
    s, sent = await _drain(pool, "email", BuildOnly(settings), AT, 500, 16)
    assert sent == n, sent
    trials.append(Trial("no server (build only)", 500, 16, s, sent))
    for batch, conc in EMAIL_SETTINGS:
        await _reset(pool, "email")
        s, sent = await _drain(pool, "email", EmailChannel(settings), AT, batch, conc)
        record("EmailChannel (8 sessions)", batch, conc, s, sent)
    for batch, conc in POOLED_SETTINGS:
        await _reset(pool, "email")
        pooled = PooledEmail(settings, conc)
        await pooled.open()
        try:
            s, sent = await _drain(pool, "email", pooled, AT, batch, conc)
        finally:
            await pooled.close()
        record("persistent sessions", batch, conc, s, sent)
    return trials


async def _sms(pool: asyncpg.Pool, n: int) -> tuple[list[Trial], int, float]:
    trials: list[Trial] = []
    parts = 0
    delivered_s: dict[tuple[int, int], float] = {}
    async with Smsc({"acme": "pw"}) as smsc:
        client = SmppClient("127.0.0.1", smsc.port, "acme", "pw", window=WINDOW,
                            response_timeout_s=20,
                            on_deliver=DeliveryReceipts(pool, now=lambda: SMS_AT))  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        try:
            await asyncio.wait_for(client.bound.wait(), 10)
            for batch, conc in SMS_SETTINGS:
                await _reset(pool, "sms")
                before, parts_before = len(smsc.messages), len(smsc.parts)
                t0 = time.perf_counter()
                s, sent = await _drain(pool, "sms", SmsChannel(client, "Acme"), SMS_AT, batch,
                                       conc)  # fmt: skip
                got = len(smsc.messages) - before
                assert sent == n == got, (sent, got)
                parts = len(smsc.parts) - parts_before
                while await _count(pool, "sms", "delivered") < n:  # the receipts' backlog
                    await asyncio.sleep(0.02)
                    assert time.perf_counter() - t0 < 300, "receipts did not all arrive"
                delivered_s[batch, conc] = time.perf_counter() - t0
                trials.append(Trial(f"SMPP window {WINDOW}", batch, conc, s, got))
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    best = min(trials, key=lambda t: t.seconds)
    return trials, parts // n, delivered_s[best.batch, best.concurrency]


async def _measure(dsn: str, port: int, inbox: RemoteInbox, n: int) -> Figures:
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=40)
    try:
        render_email, mails = await _render(pool, "email")
        render_sms, _ = await _render(pool, "sms")
        mime_ms, stdlib_ms = _mime_ms(mails)
        email = await _email(pool, port, inbox, n)
        sms, parts, delivered = await _sms(pool, n)
        return Figures(n, render_email, render_sms, email, sms, parts, delivered, mime_ms,
                       stdlib_ms)  # fmt: skip
    finally:
        await pool.close()


def run(messages: int = 5_000) -> Figures:
    import socket

    import uvloop

    _, pg_bin = ensure_binaries()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    smtp = inbox = RemoteInbox(port)
    with tempfile.TemporaryDirectory(prefix="ce-notifications-") as tmp:
        pg = PostgresServer(Path(tmp) / "pg", bin_dir=pg_bin)
        pg.start()
        smtp.start()
        try:
            dsn = pg.create_database("notifications")
            uvloop.run(migrate(dsn))
            uvloop.run(seed(dsn, messages))
            return uvloop.run(_measure(dsn, port, inbox, messages))
        finally:
            smtp.stop()
            pg.stop()


def _rows(trials: list[Trial]) -> list[str]:
    return [f"  {t.variant:<24} batch {t.batch:>4}, concurrency {t.concurrency:>3}:"
            f" {t.received / t.seconds:7,.0f} msgs/s ({t.received:,} in {t.seconds:.2f} s)"
            for t in trials]  # fmt: skip


def report(f: Figures) -> str:
    n = f.messages
    best_email = max((t for t in f.email if t.variant != "no server (build only)"),
                     key=lambda t: t.received / t.seconds)
    per_msg = [t for t in f.email if t.variant == "EmailChannel (8 sessions)"]
    best_per_msg = max(per_msg, key=lambda t: t.received / t.seconds)
    best_sms = max(f.sms, key=lambda t: t.received / t.seconds)
    return "\n".join([
        f"## notifications: {n:,} invoice.ready messages per channel (target >= 1,000/s each)",
        "machine: 2 vCPU, shared; Postgres, the dispatcher, aiosmtpd (its own process) and the"
        " SMSC simulator all on it",
        f"render only (Composer, 16 at a time): email {n / f.render_email_s:,.0f} msgs/s,"
        f" sms {n / f.render_sms_s:,.0f} msgs/s",
        "email, dispatcher -> EmailChannel -> aiosmtpd (every message counted at the server):",
        *_rows(f.email),
        f"  best: {best_email.received / best_email.seconds:,.0f} msgs/s ({best_email.variant});"
        f" EmailChannel as shipped (8 reused SMTP sessions)"
        f" {best_per_msg.received / best_per_msg.seconds:,.0f} msgs/s",
        f"  (a message's bytes alone: channels.mime {f.mime_ms:.3f} ms, the stdlib's"
        f" EmailMessage {f.stdlib_mime_ms:.3f} ms: {f.stdlib_mime_ms / f.mime_ms:.1f}x)",
        f"sms, dispatcher -> SmsChannel -> SmppClient (window {WINDOW}) -> Smsc"
        f" ({f.sms_parts} SMPP part(s) a message, receipts recorded):",
        *_rows(f.sms),
        f"  best: {best_sms.received / best_sms.seconds:,.0f} msgs/s sent;"
        f" every row delivered (receipts in) after {f.delivered_s:.2f} s"
        f" ({n / f.delivered_s:,.0f} msgs/s end to end)",
    ])  # fmt: skip


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.notifications")
    p.add_argument("--messages", type=int, default=5_000)
    args = p.parse_args()
    print(report(run(args.messages)))


if __name__ == "__main__":
    main()
