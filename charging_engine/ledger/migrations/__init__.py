"""Versioned SQL migrations: ``NNNN_name.sql`` files beside this module, applied in order.

Packages above the engine (billing, ...) keep their own ``NNNN_name.sql`` files in their own
``migrations`` package and pass it in ``packages``: their versions are recorded as
``<package>:NNNN`` (the engine's as plain ``NNNN``) and applied after the engine's, in the order
given, so the engine never needs to know them.

Every engine and loader may call ``migrate`` at start: a session advisory lock serialises them,
each file runs in its own transaction together with its ``schema_migrations`` row, so a failed
file leaves no half-applied schema and a re-run applies only what is missing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger("charging_engine.migrations")

LOCK_ID = 0x6365_6D69_6772  # "cemigr": any fixed bigint shared by every process
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
ENGINE: str = __name__

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str


def available(packages: Sequence[str] = (ENGINE,)) -> list[Migration]:
    """The packaged migrations, package by package, each sorted by version; a duplicate
    version is a packaging bug."""
    return [mig for package in packages for mig in _of_package(package)]


def _of_package(package: str) -> list[Migration]:
    prefix = "" if package == ENGINE else f"{package.split('.')[0]}:"
    found: dict[str, Migration] = {}
    for entry in resources.files(package).iterdir():
        m = _FILE_RE.match(entry.name)
        if m is None:
            continue
        version, name = prefix + m.group(1), m.group(2)
        if version in found:
            raise RuntimeError(f"two migrations with version {version}")
        found[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(dsn: str, packages: Sequence[str] = (ENGINE,)) -> list[str]:
    """Apply the missing migrations of ``packages`` to the database at ``dsn``; return their
    versions."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_ID)
        try:
            return await _apply_missing(conn, packages)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)
    finally:
        await conn.close()


async def _apply_missing(conn: asyncpg.Connection, packages: Sequence[str]) -> list[str]:
    await conn.execute(_CREATE_TABLE)
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    applied: list[str] = []
    for mig in available(packages):
        if mig.version in done:
            continue
        async with conn.transaction():
            await conn.execute(mig.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
                mig.version,
                mig.name,
            )
        log.info("applied migration %s_%s", mig.version, mig.name)
        applied.append(mig.version)
    return applied
