"""Payment gateway routes: a tenant's credentials (write-only), pay links for invoices, and the
per-tenant webhook URL each gateway posts to (verified by that gateway's own scheme before
anything is trusted; no API key there)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field, StringConstraints

from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.catalog_views import minor_in
from admin_api.billing.dunning_routes import reevaluate
from admin_api.billing.invoices_routes import INVOICE, InvoicePath
from admin_api.billing.schemas import MoneyIn
from admin_api.billing.webhooks_routes import secrets_or_503
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import ID_PATTERN, AccountPath, Body, Out
from billing.amounts import format_minor
from billing.catalog import lookups
from billing.errors import BillingNotFound
from billing.gateways import accounts as gateway_accounts
from billing.gateways.inbox import receive, resolve
from billing.gateways.model import GatewayRejected
from charging_engine.accounts import record

router = APIRouter(tags=["receivables"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
GatewayName = Literal["stripe", "paypal", "ccavenue"]
GATEWAY = "/v1/tenants/{tenant_id}/gateways/{gateway}"
WEBHOOK = "/v1/gateway-webhooks/{gateway}/{tenant_id}"
ACCOUNT_LINK = "/v1/tenants/{tenant_id}/accounts/{account_id}/pay-link"
Secret = Annotated[str, StringConstraints(min_length=8, max_length=500, pattern=r"^[!-~]+$")]
WebUrl = Annotated[str, StringConstraints(min_length=8, max_length=2000,
                                          pattern=r"^https?://[^\s\x00-\x1f]+$")]  # fmt: skip
MAX_EVENT_BYTES = 512 * 1024


class GatewayIn(Body):
    api_key: Secret = Field(description="Stored encrypted, never returned. Stripe: the secret"
                            " key; PayPal: the client secret; CCAvenue: the access code")
    webhook_secret: Secret = Field(description="Stored encrypted, never returned. Stripe: the"
                                   " endpoint's signing secret (whsec_...); PayPal: the webhook"
                                   " id; CCAvenue: the working key")  # fmt: skip
    account_ref: Annotated[str, StringConstraints(min_length=1, max_length=200,
                                                  pattern=r"^[!-~]+$")] | None = Field(
        None, description="PayPal: the client id; CCAvenue: the merchant id (required for"
        " both); not a secret")  # fmt: skip
    base_url: WebUrl | None = Field(None, description="The API's address; default: the"
                                    " gateway's own (set for a test stand-in)")  # fmt: skip


class GatewayOut(Out):
    gateway: GatewayName
    configured: bool
    account_ref: str | None
    base_url: str | None
    updated_at: datetime
    webhook_path: str


class PayLinkIn(Body):
    gateway: GatewayName = "stripe"
    success_url: WebUrl
    cancel_url: WebUrl


class TopupLinkIn(PayLinkIn):
    amount: MoneyIn = Field(description="What the customer tops up, in the account currency")


class PayLinkOut(Out):
    url: str
    reference: str
    amount: str
    currency: str


class ReceivedOut(Out):
    received: bool
    outcome: str


@router.put(GATEWAY, response_model=GatewayOut, responses=responses(401, 403, 404, 422, 503),
            summary="Set the tenant's credentials for a gateway (never returned)")
async def put_gateway(ctx: Ctx, scope: Admins, gateway: GatewayName, body: GatewayIn
                      ) -> GatewayOut:  # fmt: skip
    secrets = secrets_or_503()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lookups.tenant(conn, scope.tenant_id)
        await gateway_accounts.configure(
            conn, secrets, scope.tenant_id, gateway, api_key=body.api_key,
            webhook_secret=body.webhook_secret, account_ref=body.account_ref,
            base_url=body.base_url, at=ctx.now())  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "gateway.configure",
                            f"gateway:{gateway}", None, {"base_url": body.base_url,
                            "account_ref": body.account_ref})  # fmt: skip
        ref, base, at = await gateway_accounts.configured(conn, scope.tenant_id, gateway)
    return GatewayOut(gateway=gateway, configured=True, account_ref=ref, base_url=base,
                      updated_at=at,
                      webhook_path=WEBHOOK.format(gateway=gateway, tenant_id=scope.tenant_id))


@router.get(GATEWAY, response_model=GatewayOut, responses=responses(401, 403, 404, 422),
            summary="Whether a gateway is configured (its secrets are never shown)")
async def get_gateway(ctx: Ctx, scope: Readers, gateway: GatewayName) -> GatewayOut:
    ref, base, at = await gateway_accounts.configured(ctx.pool, scope.tenant_id, gateway)
    return GatewayOut(gateway=gateway, configured=True, account_ref=ref, base_url=base,
                      updated_at=at,
                      webhook_path=WEBHOOK.format(gateway=gateway, tenant_id=scope.tenant_id))


async def _link(ctx: Ctx, tenant_id: str, body: PayLinkIn, *, account_id: str,
                invoice_id: str | None, amount: int, cur: str, description: str,
                key: str) -> PayLinkOut:  # fmt: skip
    """Ask the gateway for a pay link and record it (the webhook resolves its events to it)."""
    secrets = secrets_or_503()
    meta = {"tenant_id": tenant_id, "account_id": account_id}
    if invoice_id is not None:
        meta["invoice_id"] = invoice_id
    async with ctx.pool.acquire() as conn:
        gw = await gateway_accounts.gateway_for(conn, secrets, tenant_id, body.gateway)
        try:
            link = await gw.pay_link(amount=amount, currency=cur, description=description,
                                     metadata=meta, success_url=body.success_url,
                                     cancel_url=body.cancel_url,
                                     idempotency_key=hashlib.sha256(key.encode()).hexdigest())
        except Exception as e:  # the gateway's API failed: nothing was made
            raise ApiProblem(502, "gateway_error", f"{body.gateway} refused: {e}"[:300]) from None
        finally:
            await gw.aclose()
        await conn.execute(
            "INSERT INTO pay_links (tenant_id, gateway, reference, invoice_id, account_id,"
            " amount, currency, url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING", tenant_id, body.gateway, link.reference, invoice_id,
            account_id, amount, cur, link.url)  # fmt: skip
    return PayLinkOut(url=link.url, reference=link.reference, amount=format_minor(amount, cur),
                      currency=cur)  # fmt: skip


@router.post(INVOICE + "/pay-link", response_model=PayLinkOut,
             responses=responses(401, 403, 404, 409, 422, 502, 503),
             summary="A pay link for what the invoice still owes")
async def pay_link(ctx: Ctx, scope: Admins, invoice_id: InvoicePath, body: PayLinkIn
                   ) -> PayLinkOut:  # fmt: skip
    secrets_or_503()
    inv = await ctx.pool.fetchrow("SELECT * FROM invoice_open WHERE tenant_id = $1"
                                  " AND invoice_id = $2", scope.tenant_id, invoice_id)  # fmt: skip
    if inv is None:
        raise ApiProblem(404, "not_found", f"open invoice {invoice_id!r} not found")
    if inv["open"] <= 0:
        raise ApiProblem(409, "nothing_owed", f"invoice {invoice_id} owes nothing")
    return await _link(ctx, scope.tenant_id, body, account_id=inv["account_id"],
                       invoice_id=invoice_id, amount=inv["open"], cur=inv["currency"].strip(),
                       description=f"Invoice {invoice_id}",
                       key=f"{scope.tenant_id}:{invoice_id}:{inv['open']}")  # fmt: skip


@router.post(ACCOUNT_LINK, response_model=PayLinkOut,
             responses=responses(401, 403, 404, 409, 422, 502, 503),
             summary="A pay link for a prepaid top-up of the given amount")
async def topup_link(ctx: Ctx, scope: Admins, account_id: AccountPath, body: TopupLinkIn
                     ) -> PayLinkOut:  # fmt: skip
    secrets_or_503()
    acct = await record.require(ctx.pool, scope.tenant_id, account_id)
    cur = acct.currency
    if acct.kind.value != "prepaid":
        raise ApiProblem(409, "not_prepaid", f"account {account_id} is postpaid: pay its"
                         " invoices instead")  # fmt: skip
    amount = minor_in(body.amount, cur, "amount")
    if amount <= 0:
        raise ApiProblem(422, "invalid_request", "amount must be above zero")
    return await _link(ctx, scope.tenant_id, body, account_id=account_id, invoice_id=None,
                       amount=amount, cur=cur, description=f"Top-up of account {account_id}",
                       key=f"{scope.tenant_id}:{account_id}:{amount}:{ctx.now().date()}")


@router.post(WEBHOOK, response_model=ReceivedOut, responses=responses(400, 404, 413, 422, 503),
             summary="Where the gateway posts its events (verified by its own signature)")
async def gateway_webhook(
    ctx: Ctx, request: Request, gateway: GatewayName,
    tenant_id: Annotated[str, Path(pattern=ID_PATTERN)],
) -> ReceivedOut:  # fmt: skip
    payload = await request.body()
    if len(payload) > MAX_EVENT_BYTES:
        raise ApiProblem(413, "too_large", "the event is too large")
    async with ctx.pool.acquire() as conn:
        try:
            await gateway_accounts.configured(conn, tenant_id, gateway)
        except BillingNotFound:
            raise ApiProblem(404, "not_found", "no such gateway endpoint") from None
        gw = await gateway_accounts.gateway_for(conn, secrets_or_503(), tenant_id, gateway)
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                event = await gw.verify(payload, headers)
            except GatewayRejected as e:
                raise ApiProblem(400, "unverified", str(e)) from None
            event = await resolve(conn, tenant_id, event)
            outcome = await receive(conn, tenant_id, event, at=ctx.now(), money=ctx.money)
            paid = event if outcome == "payment" else None
            try:  # the gateway's next step (PayPal: capture the order), idempotent there
                step = await gw.follow_up(event)
            except Exception as e:  # the event is stored: the gateway's redelivery tries again
                raise ApiProblem(502, "gateway_error", f"{gateway}: {e}"[:300]) from None
            if step is not None:
                step = await resolve(conn, tenant_id, step)
                if await receive(conn, tenant_id, step, at=ctx.now(),
                                 money=ctx.money) == "payment":  # fmt: skip
                    outcome, paid = "payment", step
        finally:
            await gw.aclose()
    if paid is not None and paid.metadata.get("account_id"):
        await reevaluate(ctx, tenant_id, paid.metadata["account_id"])
    return ReceivedOut(received=True, outcome=outcome)
