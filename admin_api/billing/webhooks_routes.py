"""Webhook endpoints of a tenant (the signing secret shown once), their delivery log and
manual redelivery."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from pydantic import Field, StringConstraints

from admin_api import pagination
from admin_api.audit import actor_of
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.context import AdminContext, Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import Body, Cursor, Limit, Out
from billing.secrets import Secrets, SecretsKeyError
from billing.webhooks import deliveries, endpoints
from billing.webhooks.endpoints import EVENT_TYPES, Endpoint
from charging_engine.audit import record_change

router = APIRouter(tags=["webhooks"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
ENDPOINTS = "/v1/tenants/{tenant_id}/webhook-endpoints"
ENDPOINT = ENDPOINTS + "/{endpoint_id}"
EndpointPath = Annotated[str, Path(pattern=r"^we_[0-9a-f]{20}$")]
DeliveryPath = Annotated[int, Path(ge=1, le=2**62)]
EventType = Literal[
    "invoice.finalized", "invoice.voided", "invoice.paid", "receipt.issued", "payment.recorded",
    "payment.reversed", "payment.refunded", "credit_note.issued", "dunning.step_entered",
    "dunning.cleared", "balance.expiring", "balance.expired", "account.inactivation_pending",
    "account.inactivated", "account.termination_pending", "account.terminated",
    "plan_change.requested", "plan_change.applied", "plan_change.rejected",
    "plan_change.cancelled", "collection.recorded",
]
Url = Annotated[str, StringConstraints(min_length=8, max_length=2000,
                                       pattern=r"^https?://[^\s\x00-\x1f]+$")]
Text = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
IdemKey = Annotated[str | None, Header(
    alias="Idempotency-Key", pattern=r"^[!-~]{1,128}$",
    description="A retry with the same key answers the endpoint made the first time")]
assert set(EventType.__args__) == EVENT_TYPES  # type: ignore[attr-defined]


class EndpointIn(Body):
    url: Url
    description: Text = ""
    event_types: list[EventType] = Field(default_factory=list, max_length=30,
                                         description="empty: every event")


class EndpointPatch(Body):
    url: Url | None = None
    description: Text | None = None
    event_types: list[EventType] | None = Field(default=None, max_length=30)
    enabled: bool | None = None


class EndpointOut(Out):
    endpoint_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str | None = Field(description="The signing secret (whsec_...): shown only in the"
                               " answer that created or rotated it; null on a retry")


class EndpointPage(Out):
    items: list[EndpointOut]
    next_cursor: str | None


class DeliveryOut(Out):
    delivery_id: int
    event_id: str = Field(description="the webhook-id header, the same on every retry")
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class AttemptOut(Out):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryDetail(DeliveryOut):
    attempts_log: list[AttemptOut]


class DeliveryPage(Out):
    items: list[DeliveryOut]
    next_cursor: str | None


def secrets_or_503() -> Secrets:
    """The secrets key, or 503 when the operator has not set it."""
    try:
        return Secrets()
    except SecretsKeyError as exc:
        raise ApiProblem(503, "secrets_key_missing", str(exc)) from None


def _out(e: Endpoint) -> EndpointOut:
    return EndpointOut(endpoint_id=e.endpoint_id, url=e.url, description=e.description,
                       event_types=list(e.event_types), enabled=e.enabled,
                       created_at=e.created_at, updated_at=e.updated_at)


def _delivery(r: Any) -> DeliveryOut:
    return DeliveryOut(**{k: r[k] for k in DeliveryOut.model_fields})


async def _audit(ctx: AdminContext, scope: Scope, action: str, ident: str, before: Any,
                 after: Any) -> None:
    async with ctx.pool.acquire() as conn:
        await record_change(conn, actor_of(scope.caller), scope.tenant_id, action,
                            f"webhook_endpoint:{ident}", before, after)


@router.post(ENDPOINTS, response_model=EndpointCreated, status_code=201,
             responses={200: {"model": EndpointCreated, "description": "Created by an earlier"
                              " request with this Idempotency-Key"},
                        **responses(401, 403, 404, 422, 503)},
             summary="Add an endpoint; its signing secret is shown once, in this answer")
async def create_endpoint(ctx: Ctx, scope: Admins, body: EndpointIn, response: Response,
                          idempotency_key: IdemKey = None) -> EndpointCreated:
    ep, secret = await endpoints.create(
        ctx.pool, secrets_or_503(), scope.tenant_id, body.url, body.description,
        tuple(body.event_types), idempotency_key,
    )
    if secret is None:
        response.status_code = 200
    else:
        await _audit(ctx, scope, "webhook_endpoint.create", ep.endpoint_id, None,
                     _out(ep).model_dump(mode="json"))
    return EndpointCreated(**_out(ep).model_dump(), secret=secret)


@router.get(ENDPOINTS, response_model=EndpointPage, responses=responses(401, 403, 404, 422),
            summary="Webhook endpoints")
async def list_endpoints(ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None
                         ) -> EndpointPage:
    after = pagination.decode(cursor, str)
    rows = await endpoints.page(ctx.pool, scope.tenant_id, after[0] if after else None,
                                limit + 1)
    items, more = pagination.page(rows, limit)
    return EndpointPage(items=[_out(e) for e in items],
                        next_cursor=pagination.encode(items[-1].endpoint_id) if more else None)


@router.get(ENDPOINT, response_model=EndpointOut, responses=responses(401, 403, 404, 422),
            summary="A webhook endpoint (never its secret)")
async def get_endpoint(ctx: Ctx, scope: Readers, endpoint_id: EndpointPath) -> EndpointOut:
    return _out(await endpoints.get(ctx.pool, scope.tenant_id, endpoint_id))


@router.patch(ENDPOINT, response_model=EndpointOut, responses=responses(401, 403, 404, 422),
              summary="Change an endpoint's URL, description, events or enabled flag")
async def update_endpoint(ctx: Ctx, scope: Admins, endpoint_id: EndpointPath,
                          body: EndpointPatch) -> EndpointOut:
    before = _out(await endpoints.get(ctx.pool, scope.tenant_id, endpoint_id))
    ep = await endpoints.update(
        ctx.pool, scope.tenant_id, endpoint_id, url=body.url, description=body.description,
        event_types=tuple(body.event_types) if body.event_types is not None else None,
        enabled=body.enabled,
    )
    await _audit(ctx, scope, "webhook_endpoint.update", endpoint_id,
                 before.model_dump(mode="json"), _out(ep).model_dump(mode="json"))
    return _out(ep)


@router.delete(ENDPOINT, status_code=204, response_class=Response,
               responses=responses(401, 403, 404, 422),
               summary="Remove an endpoint with its delivery log")
async def delete_endpoint(ctx: Ctx, scope: Admins, endpoint_id: EndpointPath) -> Response:
    before = _out(await endpoints.get(ctx.pool, scope.tenant_id, endpoint_id))
    await endpoints.delete(ctx.pool, scope.tenant_id, endpoint_id)
    await _audit(ctx, scope, "webhook_endpoint.delete", endpoint_id,
                 before.model_dump(mode="json"), None)
    return Response(status_code=204)


@router.post(ENDPOINT + "/rotate-secret", response_model=EndpointCreated,
             responses=responses(401, 403, 404, 422, 503),
             summary="Replace the signing secret; the new one is shown once, in this answer")
async def rotate_secret(ctx: Ctx, scope: Admins, endpoint_id: EndpointPath) -> EndpointCreated:
    ep, secret = await endpoints.rotate_secret(ctx.pool, secrets_or_503(), scope.tenant_id,
                                               endpoint_id)
    await _audit(ctx, scope, "webhook_endpoint.rotate_secret", endpoint_id, None, None)
    return EndpointCreated(**_out(ep).model_dump(), secret=secret)


@router.get(ENDPOINT + "/deliveries", response_model=DeliveryPage,
            responses=responses(401, 403, 404, 422),
            summary="An endpoint's deliveries, newest first")
async def list_deliveries(
    ctx: Ctx, scope: Readers, endpoint_id: EndpointPath, limit: Limit = 50,
    cursor: Cursor = None,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
) -> DeliveryPage:
    await endpoints.get(ctx.pool, scope.tenant_id, endpoint_id)
    before = pagination.decode(cursor, int)
    rows = await deliveries.page(ctx.pool, scope.tenant_id, endpoint_id,
                                 before[0] if before else None, limit + 1, status)
    items, more = pagination.page(rows, limit)
    return DeliveryPage(items=[_delivery(r) for r in items],
                        next_cursor=pagination.encode(items[-1]["delivery_id"]) if more
                        else None)


@router.get("/v1/tenants/{tenant_id}/webhook-deliveries/{delivery_id}",
            response_model=DeliveryDetail, responses=responses(401, 403, 404, 422),
            summary="A delivery with every attempt")
async def get_delivery(ctx: Ctx, scope: Readers, delivery_id: DeliveryPath) -> DeliveryDetail:
    row = await deliveries.one(ctx.pool, scope.tenant_id, delivery_id)
    tries = await deliveries.attempts(ctx.pool, scope.tenant_id, delivery_id)
    return DeliveryDetail(**_delivery(row).model_dump(), attempts_log=[
        AttemptOut(**{k: t[k] for k in AttemptOut.model_fields}) for t in tries])


@router.post("/v1/tenants/{tenant_id}/webhook-deliveries/{delivery_id}/redeliver",
             response_model=DeliveryOut, responses=responses(401, 403, 404, 422),
             summary="Send a delivery again (same webhook-id), delivered or failed alike")
async def redeliver(ctx: Ctx, scope: Admins, delivery_id: DeliveryPath) -> DeliveryOut:
    row = await deliveries.redeliver(ctx.pool, scope.tenant_id, delivery_id, ctx.now())
    await _audit(ctx, scope, "webhook_delivery.redeliver", str(delivery_id), None,
                 {"event_id": row["event_id"]})
    return _delivery(row)
