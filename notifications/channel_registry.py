"""Each tenant's channels, built from its configuration (Postgres adapter): an SMTP sender, and
an SMPP session kept bound while the registry runs (one client per tenant, started on first
use, stopped on close), or an HTTP SMS gateway when no SMPP account is enabled. A channel
whose configuration changed is rebuilt; a disabled or missing one is None (the dispatcher
retries the message later, so nothing is lost by configuring late).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from billing.secrets import Secrets
from notifications.channels.email import EmailChannel, SmtpSettings
from notifications.channels.http_sms import HttpSmsChannel, HttpSmsSettings
from notifications.channels.model import Channel
from notifications.channels.sms import DeliveryReceipts, SmsChannel
from notifications.smpp import Delivery, OnDeliver, SmppClient

__all__ = ["ChannelRegistry"]

# The outbox's channel -> the configured accounts it may use, the first enabled one wins.
KINDS = {"email": ("smtp",), "sms": ("smpp", "http_sms")}


@dataclass
class _Built:
    updated_at: datetime
    channel: Channel
    client: SmppClient | None = None
    stop: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None
    kind: str = ""  # the account it was built from: smtp, smpp or http_sms


class ChannelRegistry:
    def __init__(self, pool: asyncpg.Pool, secrets: Secrets | None, *, now: Any,
                 inbound: OnDeliver | None = None) -> None:  # fmt: skip
        """``inbound``: what mobile-originated texts go to (the keywords), besides receipts."""
        self.pool, self.secrets, self.now, self.inbound = pool, secrets, now, inbound
        self._receipts = DeliveryReceipts(pool, now=now)
        self._built: dict[tuple[str, str], _Built] = {}

    async def channel(self, tenant_id: str, name: str) -> Channel | None:
        kinds = KINDS.get(name)
        if kinds is None:
            return None
        r = await self.pool.fetchrow(
            "SELECT channel, settings, secret_enc, enabled, updated_at FROM notification_channels"
            " WHERE tenant_id = $1 AND channel = ANY($2::text[]) AND enabled"
            " ORDER BY array_position($2::text[], channel) LIMIT 1", tenant_id,
            list(kinds))  # fmt: skip
        key = (tenant_id, name)
        built = self._built.get(key)
        if r is None:
            await self._drop(key)
            return None
        kind = r["channel"]
        if built is not None and (built.kind, built.updated_at) == (kind, r["updated_at"]):
            return built.channel
        await self._drop(key)
        if r["secret_enc"] is not None and self.secrets is None and kind == "http_sms":
            return None  # its credential waits for CE_SECRETS_KEY (sent without, it is a 401)
        password = (self.secrets.decrypt(r["secret_enc"])
                    if r["secret_enc"] is not None and self.secrets else None)  # fmt: skip
        s = orjson.loads(r["settings"])
        if kind == "http_sms":
            built = _Built(r["updated_at"], HttpSmsChannel(HttpSmsSettings.from_stored(
                s, password)))  # fmt: skip
        elif kind == "smtp":
            built = _Built(r["updated_at"], EmailChannel(SmtpSettings(
                s["host"], int(s["port"]), s["sender"], username=s.get("username"),
                password=password, security=s.get("security", "starttls"))))  # fmt: skip
        else:
            client = SmppClient(s["host"], int(s["port"]), s["system_id"], password or "",
                                on_deliver=self._on_deliver, name=f"{tenant_id}-smsc")
            stop = asyncio.Event()
            built = _Built(r["updated_at"], SmsChannel(client, s.get("source", "")), client,
                           stop, asyncio.create_task(client.run(stop)))  # fmt: skip
        built.kind = kind
        self._built[key] = built
        return built.channel

    async def _on_deliver(self, d: Delivery) -> None:
        """Receipts update the messages; texts from phones go to the keywords."""
        await self._receipts(d)
        if self.inbound is not None:
            await self.inbound(d)

    async def _drop(self, key: tuple[str, str]) -> None:
        built = self._built.pop(key, None)
        if built is not None and isinstance(built.channel, EmailChannel | HttpSmsChannel):
            await built.channel.aclose()
        if built is not None and built.stop is not None and built.task is not None:
            built.stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(built.task, 10)

    async def close(self) -> None:
        for key in list(self._built):
            await self._drop(key)
