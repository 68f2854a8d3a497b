"""A message's text from its outbox row: the tenant's template for the event, channel and the
account's language (else the catalogue's default), rendered in the sandbox with the row's data,
in the tenant's locale and the account's currency. Rendering never raises at send time (a
template that fails falls back to the default, and the row's error says so)."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from notifications.channels.model import Outgoing
from notifications.templates import Channel, get_event, parts_of, pick_language, render

__all__ = ["Composer"]


class Composer:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def __call__(self, row: asyncpg.Record) -> Outgoing:
        tenant, event, channel = row["tenant_id"], row["event"], Channel(row["channel"])
        context: dict[str, Any] = orjson.loads(row["context"])
        locale = await self.pool.fetchval(
            "SELECT locale FROM notification_settings WHERE tenant_id = $1", tenant) or "en_US"
        own = await self.pool.fetch(
            "SELECT language, part, source FROM notification_templates WHERE tenant_id = $1"
            " AND event = $2 AND channel = $3", tenant, event, channel.value)  # fmt: skip
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
