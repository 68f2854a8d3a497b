"""A message's text from its outbox row: the tenant's template for the event, channel and the
account's language (else the catalogue's default), rendered in the sandbox with the row's data,
in the tenant's locale and the account's currency. Rendering never raises at send time (a
template that fails falls back to the default, and the row's error says so)."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import orjson

from notifications.channels.model import Outgoing
from notifications.templates import Channel, get_event, parts_of, pick_language, render

__all__ = ["Composer"]


class Composer:
    """``ttl_s``: how long a tenant's locale and templates are reused (an edit shows within it)."""

    def __init__(self, pool: asyncpg.Pool, *, ttl_s: float = 5.0) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str, str], tuple[float, str, list[Any]]] = {}

    async def _tenant(self, tenant: str, event: str, channel: str) -> tuple[str, list[Any]]:
        key = (tenant, event, channel)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1], hit[2]
        locale = await self.pool.fetchval(
            "SELECT locale FROM notification_settings WHERE tenant_id = $1", tenant) or "en_US"
        own = list(await self.pool.fetch(
            "SELECT language, part, source FROM notification_templates WHERE tenant_id = $1"
            " AND event = $2 AND channel = $3", tenant, event, channel))  # fmt: skip
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), locale, own)
        return locale, own

    async def __call__(self, row: asyncpg.Record) -> Outgoing:
        tenant, event, channel = row["tenant_id"], row["event"], Channel(row["channel"])
        context: dict[str, Any] = orjson.loads(row["context"])
        locale, own = await self._tenant(tenant, event, channel.value)
        languages = {r["language"] for r in own}
        sources: dict[str, str | None] = {}
        if languages:
            lang = pick_language(languages, row["language"])
            sources = {r["part"]: r["source"] for r in own if r["language"] == lang}
        else:
            lang = pick_language(get_event(event).languages(channel), row["language"])
        currency = str(context.get("currency") or "")
        texts = {part: render(event, channel, part, sources.get(part), context, locale=locale,
                              currency=currency).text for part in parts_of(channel)}  # fmt: skip
        if channel is Channel.SMS:
            return Outgoing(row["notification_id"], tenant, row["recipient"], body=texts["body"])
        return Outgoing(row["notification_id"], tenant, row["recipient"], body=texts["text"],
                        subject=texts["subject"], html=texts["html"])  # fmt: skip
