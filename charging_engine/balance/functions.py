"""Loading the charging function library into Redis (FUNCTION LOAD REPLACE is idempotent)."""

from __future__ import annotations

from importlib import resources
from typing import Any

LIBRARY = "charging_v1"


def library_source() -> str:
    return resources.files("charging_engine.balance").joinpath("lua/charging.lua").read_text()


async def load_functions(redis: Any) -> None:
    """Install or replace the library; safe to call from every engine process at start."""
    await redis.execute_command("FUNCTION", "LOAD", "REPLACE", library_source())


def is_missing_function(exc: BaseException) -> bool:
    """A Redis error meaning the library is absent (flushed or a new server): reload and retry."""
    return "Function not found" in str(exc) or "function not found" in str(exc).lower()
