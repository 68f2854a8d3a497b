"""The HTTP SMS gateway channel: its settings (saved through ``PUT .../notification-channels/
http_sms``; credentials write-only, stored encrypted) and the public URLs the gateway posts to.

``POST /v1/sms-gateway/{tenant_id}/inbound`` (a text from a phone, answered by the keywords
exactly as over SMPP) and ``.../status`` (a delivery status) take no API key: the tenant's
webhook secret signs them (``X-Signature``, see ``notifications.channels.http_sms``), and the
signature is checked before anything in the body is read. A text is only taken for the number
the tenant has as its inbound destination, and a status only for the tenant's own messages:
one tenant's gateway secret reaches no other tenant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, Protocol, TypeVar

import httpx
import orjson
from fastapi import APIRouter, Path, Request
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from admin_api.audit import record_change
from admin_api.auth import Scope
from admin_api.billing.webhooks_routes import secrets_or_503
from admin_api.context import AdminContext, Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import ID_PATTERN, Body, Out
from billing.catalog import lookups
from billing.secrets import SecretsKeyError
from notifications import receipts
from notifications.channels.http_sms import (
    DEFAULT_FIELDS,
    SIGNATURE_HEADER,
    PayloadInvalid,
    SignatureInvalid,
    verify_inbound,
    verify_status,
)
from notifications.inbound import normalise
from notifications.keywords import Keywords
from notifications.smpp import DeliverSm, MobileMessage
from notifications.smpp.codes import TAG_RECEIPTED_MESSAGE_ID

router = APIRouter(tags=["notifications"])
P = TypeVar("P")
P_co = TypeVar("P_co", covariant=True)


class Verifier(Protocol[P_co]):
    """``verify_inbound`` or ``verify_status``: the signed payload, or a ``WebhookRejected``."""

    def __call__(self, secret: str, header: str | None, body: bytes, *,
                 now: datetime) -> P_co: ...  # fmt: skip


INBOUND: Final = "/v1/sms-gateway/{tenant_id}/inbound"
STATUS: Final = "/v1/sms-gateway/{tenant_id}/status"
STATES: Final = {"delivered": "DELIVRD", "failed": "UNDELIV"}  # as receipts name them
RESERVED_HEADERS: Final = frozenset({"content-type", "content-length", "host", "accept",
                                     "idempotency-key", "transfer-encoding"})  # fmt: skip


def _web_url(value: str) -> str:
    """http(s), with a host and no credentials in it (settings are shown to readers)."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        raise ValueError("not a URL") from None
    if url.scheme not in ("http", "https") or not url.host or url.userinfo:
        raise ValueError("must be an http(s) URL with a host and without credentials")
    return value


Url = Annotated[str, StringConstraints(min_length=8, max_length=2000,
                                       pattern=r"^https?://[!-~]+$"), AfterValidator(_web_url)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=200,
                                         pattern=r"^[^\x00-\x1f\x7f]+$")]  # fmt: skip
Secret = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[ -~]+$")]
WebhookSecret = Annotated[str, StringConstraints(min_length=16, max_length=200,
                                                 pattern=r"^[!-~]+$")]  # fmt: skip
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\[\]-]{1,64}$")]
Placeholder = Literal["{to}", "{from}", "{text}", "{reference}"]
IdPath = Annotated[str, StringConstraints(
    pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,9}$")]
TenantId = Annotated[str, Path(pattern=ID_PATTERN, description="Tenant id")]
CREDENTIAL: Final = {"basic": "password", "bearer": "token", "header": "header_value"}


def _default_fields() -> dict[str, Placeholder]:
    return {"to": "{to}", "from": "{from}", "text": "{text}"}


assert _default_fields() == DEFAULT_FIELDS


class HttpSmsIn(Body):
    """A generic HTTP SMS gateway (``PUT .../notification-channels/http_sms``)."""

    url: Url = Field(description="Where each message is sent")
    method: Literal["POST", "PUT"] = "POST"
    auth: Literal["none", "basic", "bearer", "header"] = "none"
    username: Short | None = Field(None, description="basic: the user name")
    password: Secret | None = Field(None, description="basic: stored encrypted, never returned")
    token: Secret | None = Field(None, description="bearer: stored encrypted, never returned")
    header_name: HeaderName | None = Field(None, description="header: its name")
    header_value: Secret | None = Field(None, description="header: stored encrypted, never"
                                        " returned")  # fmt: skip
    body_format: Literal["json", "form"] = "json"
    fields: dict[FieldName, Placeholder] = Field(
        default_factory=_default_fields, min_length=1, max_length=20,
        description="The request's fields: name -> {to}, {from}, {text} or {reference} (the"
        " notification id, also sent as Idempotency-Key)")  # fmt: skip
    sender: Short | None = Field(None, description="{from}: the sender id or number")
    id_path: IdPath = Field("id", description="Where the provider's message id is in its JSON"
                            " answer, dot-separated (e.g. messages.0.id)")  # fmt: skip
    timeout_seconds: int = Field(10, ge=1, le=60)
    webhook_secret: WebhookSecret | None = Field(
        None, description="Signs the gateway's webhooks (X-Signature); stored encrypted, never"
        " returned; kept when omitted")  # fmt: skip
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> HttpSmsIn:
        given = {n for n in CREDENTIAL.values() if getattr(self, n) is not None}
        if given - {CREDENTIAL.get(self.auth)}:
            raise ValueError(f"auth {self.auth} takes no {', '.join(sorted(given))}")
        if (self.auth == "basic") != (self.username is not None):
            raise ValueError("a username goes with auth basic, and only there")
        if (self.auth == "header") != (self.header_name is not None):
            raise ValueError("a header_name goes with auth header, and only there")
        if self.header_name is not None and self.header_name.lower() in RESERVED_HEADERS:
            raise ValueError(f"{self.header_name} is set by the channel itself")
        if "{from}" in self.fields.values() and self.sender is None:
            raise ValueError("the fields use {from}: set sender")
        return self

    def credential(self) -> str | None:
        name = CREDENTIAL.get(self.auth)
        return None if name is None else getattr(self, name)


SAVE_SQL: Final = """
INSERT INTO notification_channels (tenant_id, channel, settings, secret_enc, inbound_secret_enc,
                                   enabled, updated_at)
VALUES ($1, 'http_sms', $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, channel) DO UPDATE SET settings = excluded.settings,
    secret_enc = CASE WHEN $7 THEN excluded.secret_enc ELSE notification_channels.secret_enc END,
    inbound_secret_enc = COALESCE(excluded.inbound_secret_enc,
                                  notification_channels.inbound_secret_enc),
    enabled = excluded.enabled, updated_at = excluded.updated_at
"""


async def save_http_sms(ctx: AdminContext, scope: Scope, body: HttpSmsIn) -> None:
    """Store the gateway: a credential omitted is kept while the auth stays the same (else it
    is needed); auth none drops it."""
    credential, hook = body.credential(), body.webhook_secret
    secrets = secrets_or_503() if credential or hook else None
    settings = body.model_dump(exclude={"password", "token", "header_value", "webhook_secret",
                                        "enabled"}, exclude_none=True)  # fmt: skip
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lookups.tenant(conn, scope.tenant_id)
        old = await conn.fetchrow(
            "SELECT settings->>'auth' AS auth, secret_enc IS NOT NULL AS has_secret FROM"
            " notification_channels WHERE tenant_id = $1 AND channel = 'http_sms' FOR UPDATE",
            scope.tenant_id)  # fmt: skip
        keep = old is not None and old["auth"] == body.auth and old["has_secret"]
        if body.auth != "none" and credential is None and not keep:
            raise ApiProblem(422, "invalid_request",
                             f"auth {body.auth} needs its {CREDENTIAL[body.auth]}")
        replace = body.auth == "none" or credential is not None
        await conn.execute(
            SAVE_SQL, scope.tenant_id, orjson.dumps(settings).decode(),
            secrets.encrypt(credential) if secrets and credential else None,
            secrets.encrypt(hook) if secrets and hook else None, body.enabled, ctx.now(),
            replace)  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "notifications.channel",
                            "notification-channel:http_sms", None,
                            settings | {"webhook_secret_set": hook is not None})  # fmt: skip


class SmsGatewayReceived(Out):
    received: bool
    outcome: str = Field(description="inbound: logged; status: recorded or ignored (not a"
                         " message of this tenant's)")  # fmt: skip


def _payload_doc(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The body's documentation (it is read by hand: after the signature, not before)."""
    schema = {"type": "object", "properties": props, "required": required}
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema}}}}  # fmt: skip


_S = {"type": "string", "minLength": 1, "maxLength": 2000}
INBOUND_DOC: Final = _payload_doc({"from": _S, "to": _S, "text": {"type": "string"},
                                   "message_id": _S}, ["from", "to", "text", "message_id"])
STATUS_DOC: Final = _payload_doc({"message_id": _S, "status": {
    "type": "string", "enum": ["delivered", "failed"]}}, ["message_id", "status"])
SIGNED: Final = (f"Signed with the tenant's webhook secret: `{SIGNATURE_HEADER}:"
                 " t=<unix>,v1=<hex HMAC-SHA256 of t + '.' + body>`; no API key.")  # fmt: skip


async def _verified(ctx: AdminContext, request: Request, tenant_id: str,
                       verify: Verifier[P]) -> P:  # fmt: skip
    """The webhook's payload, once its signature has been checked with the tenant's webhook
    secret (404 without one; 503 without the key to decrypt it; 401 unsigned; 422 signed but
    not the shape)."""
    enc = await ctx.pool.fetchval(
        "SELECT inbound_secret_enc FROM notification_channels WHERE tenant_id = $1 AND"
        " channel = 'http_sms'", tenant_id)  # fmt: skip
    if enc is None:
        raise ApiProblem(404, "not_found", "no such SMS gateway endpoint")
    try:
        secret = secrets_or_503().decrypt(enc)
    except SecretsKeyError as e:
        raise ApiProblem(503, "secrets_key_missing", str(e)) from None
    body = await request.body()
    try:
        return verify(secret, request.headers.get(SIGNATURE_HEADER), body, now=ctx.now())
    except SignatureInvalid as e:
        raise ApiProblem(401, "unverified", str(e)) from None
    except PayloadInvalid as e:
        raise ApiProblem(422, "invalid_request", str(e)) from None


@router.post(INBOUND, response_model=SmsGatewayReceived, openapi_extra=INBOUND_DOC,
             responses=responses(401, 404, 413, 415, 422, 503),
             summary="A text from a phone, posted by the tenant's HTTP SMS gateway",
             description=SIGNED + " Answered by the keywords (BALANCE, HELP) as over SMPP; a"
             " redelivered message_id is logged and answered once.")  # fmt: skip
async def inbound(ctx: Ctx, request: Request, tenant_id: TenantId) -> SmsGatewayReceived:
    text = await _verified(ctx, request, tenant_id, verify_inbound)
    own = await ctx.pool.fetchval("SELECT destination FROM inbound_settings WHERE tenant_id ="
                                  " $1", tenant_id)  # fmt: skip
    if own is None or (normalise(text.destination) or text.destination) != own:
        raise ApiProblem(422, "unknown_destination",
                         "the number texted is not this tenant's inbound destination")
    pdu = DeliverSm(text.source, text.destination, text.text.encode(),
                    tlvs=((TAG_RECEIPTED_MESSAGE_ID, text.message_id.encode() + b"\0"),))
    await Keywords(ctx.pool, ctx.store, now=ctx.now)(
        MobileMessage(text.source, text.destination, text.text, pdu))
    return SmsGatewayReceived(received=True, outcome="logged")


@router.post(STATUS, response_model=SmsGatewayReceived, openapi_extra=STATUS_DOC,
             responses=responses(401, 404, 413, 415, 422, 503),
             summary="A delivery status, posted by the tenant's HTTP SMS gateway",
             description=SIGNED + " message_id is the id the gateway answered the send with"
             " (several, comma-separated, for a message in parts).")  # fmt: skip
async def status(ctx: Ctx, request: Request, tenant_id: TenantId) -> SmsGatewayReceived:
    report = await _verified(ctx, request, tenant_id, verify_status)
    ids = [p for p in report.message_id.split(",") if p]
    # A part already sent by another tenant is not this gateway's to settle.
    foreign = await ctx.pool.fetchval(
        "SELECT count(*) FROM notification_parts p JOIN notifications n USING"
        " (notification_id) WHERE p.channel = 'sms' AND p.provider_id = ANY($1::text[]) AND"
        " n.tenant_id <> $2", ids, tenant_id)  # fmt: skip
    if foreign or not ids:
        return SmsGatewayReceived(received=True, outcome="ignored")
    for part in ids:
        await receipts.record(ctx.pool, "sms", part, STATES[report.status], ctx.now())
    return SmsGatewayReceived(received=True, outcome="recorded")
