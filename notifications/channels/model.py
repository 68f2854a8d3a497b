"""What the dispatcher hands a channel, and what a channel may answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class SendFailed(RuntimeError):
    """The provider could not take the message now (connection, 4xx): try again later."""


class Undeliverable(RuntimeError):
    """The provider refused the message for good (a bad address, 5xx): do not retry."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    notification_id: int
    tenant_id: str
    recipient: str
    body: str  # SMS body, or the email's text part
    subject: str = ""
    html: str = ""
    attachments: tuple[tuple[str, str, bytes], ...] = field(default=())  # name, mime, bytes


class Channel(Protocol):
    async def send(self, message: Outgoing) -> str:
        """Send ``message``; -> the provider's id for it."""
        ...
