"""A tenant's gateway credentials: stored encrypted (``billing.secrets``), never read back out
through the API; ``gateway_for`` builds the adapter from them."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from billing.catalog.lookups import Conn
from billing.errors import BillingNotFound, InvalidBillingInput
from billing.gateways.stripe_gateway import NAME as STRIPE
from billing.gateways.stripe_gateway import StripeGateway
from billing.secrets import Secrets

__all__ = ["GATEWAYS", "configure", "configured", "gateway_for"]

GATEWAYS: Final = (STRIPE,)


async def configure(conn: Conn, secrets: Secrets, tenant_id: str, gateway: str, *,
                    api_key: str, webhook_secret: str, base_url: str | None,
                    at: datetime) -> None:  # fmt: skip
    if gateway not in GATEWAYS:
        raise InvalidBillingInput(f"gateway must be one of {', '.join(GATEWAYS)}")
    await conn.execute(
        "INSERT INTO gateway_accounts (tenant_id, gateway, api_key_enc, webhook_secret_enc,"
        " base_url, updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, gateway)"
        " DO UPDATE SET api_key_enc = excluded.api_key_enc, webhook_secret_enc ="
        " excluded.webhook_secret_enc, base_url = excluded.base_url, updated_at ="
        " excluded.updated_at", tenant_id, gateway, secrets.encrypt(api_key),
        secrets.encrypt(webhook_secret), base_url, at,
    )  # fmt: skip


async def configured(conn: Conn, tenant_id: str, gateway: str) -> tuple[str | None, datetime]:
    """(base URL, last updated) of a configured gateway, or ``BillingNotFound``."""
    r = await conn.fetchrow("SELECT base_url, updated_at FROM gateway_accounts WHERE"
                            " tenant_id = $1 AND gateway = $2", tenant_id, gateway)  # fmt: skip
    if r is None:
        raise BillingNotFound("gateway", gateway)
    return r["base_url"], r["updated_at"]


async def gateway_for(conn: Conn, secrets: Secrets, tenant_id: str, gateway: str
                      ) -> StripeGateway:  # fmt: skip
    r = await conn.fetchrow("SELECT * FROM gateway_accounts WHERE tenant_id = $1"
                            " AND gateway = $2", tenant_id, gateway)  # fmt: skip
    if r is None:
        raise BillingNotFound("gateway", gateway)
    return StripeGateway(secrets.decrypt(r["api_key_enc"]),
                         secrets.decrypt(r["webhook_secret_enc"]), base_url=r["base_url"])
