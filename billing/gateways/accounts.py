"""A tenant's gateway credentials: stored encrypted (``billing.secrets``), never read back out
through the API; ``gateway_for`` builds the adapter from them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from billing.catalog.lookups import Conn
from billing.errors import BillingNotFound, InvalidBillingInput
from billing.gateways import ccavenue_gateway, paypal_gateway, stripe_gateway
from billing.gateways.model import Credentials, Gateway
from billing.secrets import Secrets

__all__ = ["GATEWAYS", "NEEDS_ACCOUNT", "configure", "configured", "gateway_for"]


def _stripe(c: Credentials) -> Gateway:
    return stripe_gateway.StripeGateway(c.api_key, c.webhook_secret, base_url=c.base_url)


ADAPTERS: Final[dict[str, Callable[[Credentials], Gateway]]] = {
    stripe_gateway.NAME: _stripe,
    paypal_gateway.NAME: paypal_gateway.PayPalGateway,
    ccavenue_gateway.NAME: ccavenue_gateway.CCAvenueGateway,
}
GATEWAYS: Final = tuple(ADAPTERS)
NEEDS_ACCOUNT: Final = frozenset({paypal_gateway.NAME, ccavenue_gateway.NAME})


async def configure(conn: Conn, secrets: Secrets, tenant_id: str, gateway: str, *,
                    api_key: str, webhook_secret: str, account_ref: str | None,
                    base_url: str | None, at: datetime) -> None:  # fmt: skip
    if gateway not in GATEWAYS:
        raise InvalidBillingInput(f"gateway must be one of {', '.join(GATEWAYS)}")
    if gateway in NEEDS_ACCOUNT and not account_ref:
        raise InvalidBillingInput(f"{gateway} needs account_ref (its client or merchant id)")
    await conn.execute(
        "INSERT INTO gateway_accounts (tenant_id, gateway, api_key_enc, webhook_secret_enc,"
        " account_ref, base_url, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (tenant_id, gateway) DO UPDATE SET api_key_enc = excluded.api_key_enc,"
        " webhook_secret_enc = excluded.webhook_secret_enc, account_ref ="
        " excluded.account_ref, base_url = excluded.base_url, updated_at = excluded.updated_at",
        tenant_id, gateway, secrets.encrypt(api_key), secrets.encrypt(webhook_secret),
        account_ref, base_url, at,
    )  # fmt: skip


async def configured(conn: Conn, tenant_id: str, gateway: str
                     ) -> tuple[str | None, str | None, datetime]:  # fmt: skip
    """(account ref, base URL, last updated) of a configured gateway, or ``BillingNotFound``."""
    r = await conn.fetchrow("SELECT account_ref, base_url, updated_at FROM gateway_accounts"
                            " WHERE tenant_id = $1 AND gateway = $2",
                            tenant_id, gateway)  # fmt: skip
    if r is None:
        raise BillingNotFound("gateway", gateway)
    return r["account_ref"], r["base_url"], r["updated_at"]


async def gateway_for(conn: Conn, secrets: Secrets, tenant_id: str, gateway: str) -> Gateway:
    r = await conn.fetchrow("SELECT * FROM gateway_accounts WHERE tenant_id = $1"
                            " AND gateway = $2", tenant_id, gateway)  # fmt: skip
    if r is None or gateway not in ADAPTERS:
        raise BillingNotFound("gateway", gateway)
    return ADAPTERS[gateway](Credentials(
        secrets.decrypt(r["api_key_enc"]), secrets.decrypt(r["webhook_secret_enc"]),
        account_id=r["account_ref"], base_url=r["base_url"]))  # fmt: skip
