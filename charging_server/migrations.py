"""Every package's migrations, in dependency order: the engine's, then the back office's.

The assembly point is the one place that knows all the packages, so ``migrate`` here is what the
CLI, ``serve``, the demo and the test fixtures apply.
"""

from __future__ import annotations

from typing import Final

from charging_engine.ledger import migrations

PACKAGES: Final = (migrations.ENGINE, "billing.migrations", "notifications.migrations")


async def migrate(dsn: str) -> list[str]:
    """Apply what is missing of every package; return the versions applied."""
    return await migrations.migrate(dsn, PACKAGES)
