"""Email over SMTP (``aiosmtplib``): a text and an HTML part, attachments, the tenant's sender.

STARTTLS or implicit TLS as configured; the Message-ID names the notification
(``<n{id}.{tenant}@{domain}>``) so a receiver (or an operator) can tell a redelivery of the
same message from a new one. 4xx answers and connection trouble are ``SendFailed`` (the outbox
retries), 5xx refusals of the recipient ``Undeliverable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from notifications.channels.model import Outgoing, SendFailed, Undeliverable

__all__ = ["EmailChannel", "SmtpSettings", "build"]


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


def build(s: SmtpSettings, m: Outgoing) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = s.sender
    msg["To"] = m.recipient
    msg["Subject"] = m.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<n{m.notification_id}.{m.tenant_id}@{s.domain}>"
    msg.set_content(m.body)
    if m.html:
        msg.add_alternative(m.html, subtype="html")
    for name, mime, data in m.attachments:
        main, _, sub = mime.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub or "octet-stream", filename=name)
    return msg


class EmailChannel:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, message: Outgoing) -> str:
        s = self.settings
        msg = build(s, message)
        try:
            await aiosmtplib.send(
                msg, hostname=s.host, port=s.port, username=s.username, password=s.password,
                use_tls=s.security == "tls", start_tls=s.security == "starttls",
                timeout=s.timeout_s)  # fmt: skip
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            if codes and all(c >= 500 for c in codes):
                first = e.recipients[0]
                raise Undeliverable(f"refused: {first.code} {first.message}") from None
            raise SendFailed(str(e)) from None
        except aiosmtplib.SMTPResponseException as e:
            if e.code >= 500 and e.code != 554:
                raise Undeliverable(f"{e.code} {e.message}") from None
            raise SendFailed(f"{e.code} {e.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise SendFailed(f"{type(e).__name__}: {e}") from None
        return str(msg["Message-ID"])
