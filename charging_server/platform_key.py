"""``charging-engine create-platform-key``: the operator's first admin key, audited as the CLI.

A CLI task, not a key-repository one: it composes the key repository and the engine's audit
writer, which both stay unaware of each other's callers.
"""

from __future__ import annotations

import asyncpg

from admin_api.keys import Role, create_key
from charging_engine.audit import Actor, record_change

CLI: Actor = Actor("cli", Role.PLATFORM.value)


async def create_platform_key(dsn: str, name: str) -> tuple[str, str]:
    """-> (key id, secret); the key and its audit row commit together."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            key, secret = await create_key(conn, None, Role.PLATFORM, name, "cli")
            await record_change(
                conn, CLI, None, "platform_key.create", f"key:{key.key_id}", None,
                {"key_id": key.key_id, "name": name},
            )
    finally:
        await conn.close()
    return key.key_id, secret
