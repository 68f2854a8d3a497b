"""A dispatcher in its own OS process, for tests/notifications/test_dispatcher_crash.py.

Real clock, real lease, its own asyncpg pool, an ``EmailChannel`` to the test's SMTP server and
an ``SmsChannel`` bound to the test's SMSC (as ``--system-id``). It prints ``ready`` once bound
and waits for a line on stdin before it claims anything (so that two workers start draining at
the same moment), then sends until no row is pending or leased, and prints ``sent <n>``.

    python -m tests.notifications.dispatch_worker --dsn URL --smtp-port P --smpp-port P \
        --system-id w1 [--lease-s 2] [--batch 25]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import timedelta

import asyncpg
import orjson
import uvloop

from billing.clock import SystemClock
from notifications.channels.email import EmailChannel, SmtpSettings
from notifications.channels.model import Outgoing
from notifications.channels.sms import DeliveryReceipts, SmsChannel
from notifications.dispatcher import Dispatcher, Retry
from notifications.smpp import SmppClient

PASSWORD = "s3cret"
IDLE_S = 0.05  # nothing claimable (rows leased by a dead worker): look again this soon
LEFT_SQL = "SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending')"


async def render(r: asyncpg.Record) -> Outgoing:
    """The context's text, with the notification id in the SMS text (the SMSC's only way to
    tell one message from another); the email's Message-ID carries it already."""
    ctx = orjson.loads(r["context"])
    nid = r["notification_id"]
    if r["channel"] == "sms":
        return Outgoing(nid, r["tenant_id"], r["recipient"], body=f"{ctx['text']} [n{nid}]")
    return Outgoing(nid, r["tenant_id"], r["recipient"], body=ctx["text"], subject=ctx["text"])


async def main(args: argparse.Namespace) -> int:
    clock = SystemClock()
    pool = await asyncpg.create_pool(args.dsn, min_size=2, max_size=8)
    # Long timeouts: a message the test's server holds must stay in flight until the SIGKILL,
    # not turn into a retry.
    mail = EmailChannel(SmtpSettings("127.0.0.1", args.smtp_port, "Acme <billing@acme.example>",
                                     security="none", timeout_s=60))  # fmt: skip
    client = SmppClient("127.0.0.1", args.smpp_port, args.system_id, PASSWORD,
                        response_timeout_s=60, reconnect_min_s=0.05, reconnect_max_s=0.2,
                        on_deliver=DeliveryReceipts(pool, now=clock.now))  # fmt: skip
    stop = asyncio.Event()
    session = asyncio.create_task(client.run(stop))
    sent = 0
    try:
        await asyncio.wait_for(client.bound.wait(), 10)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go"
        d = Dispatcher(pool, {"email": mail, "sms": SmsChannel(client, "ACME")}, render,
                       now=clock.now, retry=Retry(lease=timedelta(seconds=args.lease_s)),
                       batch=args.batch)  # fmt: skip
        while await pool.fetchval(LEFT_SQL):
            n = await d.run_once()
            sent += n
            if not n:
                await asyncio.sleep(IDLE_S)  # a dispatcher's idle pass, as in serve
        print(f"sent {sent}", flush=True)
        return 0
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session, 10)
        await mail.aclose()
        await pool.close()


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dispatch_worker")
    p.add_argument("--dsn", required=True)
    p.add_argument("--smtp-port", type=int, required=True)
    p.add_argument("--smpp-port", type=int, required=True)
    p.add_argument("--system-id", default="w1")
    p.add_argument("--lease-s", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=25)
    return p.parse_args(argv)


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sys.exit(runner.run(main(parse(sys.argv[1:]))))
