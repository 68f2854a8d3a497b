"""The email side of the notifications benchmark: a counting SMTP server (aiosmtpd) in a
process of its own, a pool of persistent sessions and a channel with no server, to set
``EmailChannel`` against; and the stdlib's ``EmailMessage`` that ``channels.mime`` replaced."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import threading
from email.message import EmailMessage
from email.utils import formatdate
from multiprocessing.connection import Connection
from typing import Any

import aiosmtplib

from notifications.channels.email import SmtpSettings, build, message_id
from notifications.channels.mime import address
from notifications.channels.model import Outgoing, SendFailed

__all__ = ["BuildOnly", "PooledEmail", "RemoteInbox", "stdlib_bytes"]

MESSAGE_ID = re.compile(rb"^Message-ID: *(\S+)", re.MULTILINE | re.IGNORECASE)


class Counter:
    """aiosmtpd handler: accepts everything; counts messages and the Message-IDs seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.ids: set[bytes] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        m = MESSAGE_ID.search(envelope.original_content)
        with self.lock:
            self.count += 1
            if m:
                self.ids.add(m.group(1))
        return "250 Message accepted"

    def take(self) -> tuple[int, int]:
        with self.lock:
            n, unique = self.count, len(self.ids)
            self.count, self.ids = 0, set()
        return n, unique


def _smtp_server(port: int, pipe: Connection) -> None:
    """The SMTP server's process: aiosmtpd (on uvloop) counting; ``take`` answers the counts."""
    import uvloop
    from aiosmtpd.controller import Controller

    inbox = Counter()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port, loop=uvloop.new_event_loop())
    smtp.start()
    pipe.send("ready")
    try:
        while pipe.recv() == "take":
            pipe.send(inbox.take())
    finally:
        smtp.stop()


class RemoteInbox:
    """The counting SMTP server in a process of its own (it does not share our GIL)."""

    def __init__(self, port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=_smtp_server, args=(port, child), daemon=True)

    def start(self) -> None:
        self.process.start()
        if not self.pipe.poll(30) or self.pipe.recv() != "ready":
            raise RuntimeError("the SMTP server process did not start")

    def take(self) -> tuple[int, int]:
        self.pipe.send("take")
        n, unique = self.pipe.recv()
        return int(n), int(unique)

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


class PooledEmail:
    """``EmailChannel``'s message over ``size`` persistent SMTP sessions (RSET between mails by
    aiosmtplib), a pool the size of the concurrency."""

    def __init__(self, settings: SmtpSettings, size: int) -> None:
        self.settings, self.size = settings, size
        self.free: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()

    async def open(self) -> None:
        s = self.settings
        for _ in range(self.size):
            smtp = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout_s,
                                   use_tls=False, start_tls=False)  # fmt: skip
            await smtp.connect()
            self.free.put_nowait(smtp)

    async def close(self) -> None:
        while not self.free.empty():
            smtp = self.free.get_nowait()
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    async def send(self, message: Outgoing) -> str:
        data = build(self.settings, message)
        smtp = await self.free.get()
        try:
            await smtp.sendmail(address(self.settings.sender)[1], [message.recipient], data)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise SendFailed(f"{type(e).__name__}: {e}") from None
        finally:
            self.free.put_nowait(smtp)
        return message_id(self.settings, message)


class BuildOnly:
    """No SMTP at all: the message's bytes built, then dropped (what the dispatcher, rendering
    and the message cost without a server)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, message: Outgoing) -> str:
        build(self.settings, message)
        return message_id(self.settings, message)


def stdlib_bytes(s: SmtpSettings, m: Outgoing) -> bytes:
    """The message as ``build`` made it with the stdlib before ``channels.mime``."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = s.sender, m.recipient, m.subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=False), message_id(s, m)
    msg.set_content(m.body)
    if m.html:
        msg.add_alternative(m.html, subtype="html")
    return msg.as_bytes()
