"""Email over SMTP (``aiosmtplib``): a text and an HTML part, attachments, the tenant's sender.

Sessions are kept open and reused. STARTTLS or implicit TLS as configured; the Message-ID names
the notification (``<n{id}.{tenant}@{domain}>``) so a receiver (or an operator) can tell a
redelivery of the same message from a new one. 4xx answers and connection trouble are
``SendFailed`` (the outbox retries), 5xx refusals of the recipient ``Undeliverable``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.utils import formatdate

import aiosmtplib

from notifications.channels.mime import address, message_bytes
from notifications.channels.model import Outgoing, SendFailed, Undeliverable

__all__ = ["EmailChannel", "SmtpSettings", "build", "message_id"]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    sender: str  # "Acme Billing <billing@acme.example>"
    username: str | None = None
    password: str | None = None
    security: str = "starttls"  # starttls | tls | none
    timeout_s: float = 20.0
    domain: str = "notifications.invalid"  # the Message-ID's right-hand side


def build(s: SmtpSettings, m: Outgoing) -> bytes:
    """The message's bytes (``mime``); ``ValueError`` for an address that is none."""
    return message_bytes(
        sender=s.sender, recipient=m.recipient, subject=m.subject,
        message_id=message_id(s, m), date=formatdate(localtime=False), text=m.body,
        html=m.html, attachments=m.attachments)  # fmt: skip


def message_id(s: SmtpSettings, m: Outgoing) -> str:
    return f"<n{m.notification_id}.{m.tenant_id}@{s.domain}>"


class EmailChannel:
    """Up to ``sessions`` SMTP sessions kept open and reused (a provider counts connections,
    and a handshake per message costs more than the message); a session that fails is dropped
    and the next message opens a new one."""

    def __init__(self, settings: SmtpSettings, *, sessions: int = 8) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        self._gate = asyncio.Semaphore(max(1, sessions))

    async def _session(self) -> aiosmtplib.SMTP:
        while self._idle:
            smtp = self._idle.pop()
            if smtp.is_connected:
                return smtp
        s = self.settings
        smtp = aiosmtplib.SMTP(hostname=s.host, port=s.port, use_tls=s.security == "tls",
                               start_tls=s.security == "starttls", timeout=s.timeout_s)
        await smtp.connect()
        if s.username and s.password:
            await smtp.login(s.username, s.password)
        return smtp

    async def send(self, message: Outgoing) -> str:
        try:
            _, envelope_from = address(self.settings.sender)
        except ValueError as e:  # the tenant's configuration: retried once it is mended
            raise SendFailed(f"the channel's sender: {e}") from None
        try:
            _, envelope_to = address(message.recipient)
            data = build(self.settings, message)
        except ValueError as e:
            raise Undeliverable(str(e)) from None
        async with self._gate:
            smtp: aiosmtplib.SMTP | None = None
            try:
                smtp = await self._session()
                await smtp.sendmail(envelope_from, [envelope_to], data)
            except aiosmtplib.SMTPRecipientsRefused as e:
                await self._reset(smtp)  # the session is fine: only the recipient was refused
                codes = [r.code for r in e.recipients]
                if codes and all(c >= 500 for c in codes):
                    first = e.recipients[0]
                    raise Undeliverable(f"refused: {first.code} {first.message}") from None
                raise SendFailed(str(e)) from None
            except aiosmtplib.SMTPResponseException as e:
                _drop(smtp)
                if e.code >= 500 and e.code != 554:
                    raise Undeliverable(f"{e.code} {e.message}") from None
                raise SendFailed(f"{e.code} {e.message}") from None
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
                _drop(smtp)
                raise SendFailed(f"{type(e).__name__}: {e}") from None
            self._keep(smtp)
        return message_id(self.settings, message)

    async def _reset(self, smtp: aiosmtplib.SMTP | None) -> None:
        if smtp is None:
            return
        try:
            await smtp.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            _drop(smtp)
            return
        self._keep(smtp)

    def _keep(self, smtp: aiosmtplib.SMTP | None) -> None:
        if smtp is not None and smtp.is_connected:
            self._idle.append(smtp)

    async def aclose(self) -> None:
        """Say goodbye on every open session."""
        while self._idle:
            smtp = self._idle.pop()
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


def _drop(smtp: aiosmtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()
