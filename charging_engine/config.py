"""Settings from the environment (``CE_*``; ``REDIS_URL``/``DATABASE_URL`` as usual).

Without ``REDIS_URL``/``DATABASE_URL`` the CLI starts private servers (see ``devservers``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from charging_engine.sessions.policy import ExpiryPolicy, SessionPolicy


def _consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CE_", extra="ignore")

    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "CE_REDIS_URL"))
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "CE_DATABASE_URL")
    )
    data_dir: Path = Path(".var")

    buckets: int = Field(64, ge=1, le=16384, description="fixed at deployment creation")
    realtime_host: str = "127.0.0.1"
    realtime_port: int = Field(8080, ge=0, le=65535)
    admin_host: str = "127.0.0.1"
    admin_port: int | None = Field(
        8081, ge=0, le=65535, description='CE_ADMIN_PORT=off (or ""): no admin API'
    )
    asterisk_config: Path | None = Field(
        None, description="TOML file of Asterisk PBXs (AMI/FastAGI); None: no connector"
    )

    slice_seconds: int = Field(300, ge=1)
    ring_allowance_s: int = Field(120, ge=1)
    ttl_margin_s: int = Field(60, ge=0)
    max_call_seconds: int = Field(4 * 3600, ge=60, le=7 * 86400)
    expiry_policy: ExpiryPolicy = ExpiryPolicy.CHARGE_GRANTED
    idem_ttl_s: int = Field(7 * 86400, ge=3600)

    sweep_interval_s: float = Field(1.0, gt=0)
    catalog_refresh_s: float = Field(1.0, gt=0)
    settle_batch: int = Field(2000, ge=1)
    settle_shards: int = Field(3, ge=1, le=64)
    reclaim_idle_ms: int = Field(30_000, ge=100)
    consumer_name: str = Field(default_factory=_consumer)
    pg_pool_size: int = Field(8, ge=1)

    @field_validator("admin_port", mode="before")
    @classmethod
    def _admin_off(cls, value: object) -> object:
        """``off``, ``none`` or empty: no admin API."""
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value

    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(
            slice_seconds=self.slice_seconds,
            ring_allowance_s=self.ring_allowance_s,
            ttl_margin_s=self.ttl_margin_s,
            max_call_seconds=self.max_call_seconds,
            expiry=self.expiry_policy,
        )
