"""Notification routes: the tenant's settings, channels (SMTP and SMPP accounts, an HTTP SMS
gateway (``sms_gateway_routes``); passwords write-only, stored encrypted), templates
(validated on save: an unknown variable or a reach for Python's internals is a 422), previews
with sample data, and the outbox (search, resend)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import Field, StringConstraints, model_validator

from admin_api.audit import record_change
from admin_api.auth import ADMINS, READERS, Scope, allow
from admin_api.billing.webhooks_routes import secrets_or_503
from admin_api.context import Ctx
from admin_api.problems import ApiProblem, responses
from admin_api.schemas import ID_PATTERN, Body, Out
from admin_api.sms_gateway_routes import HttpSmsIn, save_http_sms
from billing.catalog import lookups
from notifications.templates import EVENTS, TemplateInvalid, preview, validate

router = APIRouter(tags=["notifications"])

Readers = Annotated[Scope, Depends(allow(READERS))]
Admins = Annotated[Scope, Depends(allow(ADMINS))]
T = "/v1/tenants/{tenant_id}"
Kind = Literal["smtp", "smpp", "http_sms"]
ChannelName = Literal["sms", "email"]
Part = Literal["body", "subject", "text", "html"]
Language = Annotated[str, Path(pattern=r"^[a-z]{2}(_[A-Z]{2})?$")]
EventName = Annotated[str, Path(pattern=r"^[a-z_]{1,40}\.[a-z_]{1,40}$")]
Host = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]{1,253}$")]
Short = Annotated[str, StringConstraints(min_length=1, max_length=200,
                                         pattern=r"^[^\x00-\x1f\x7f]+$")]  # fmt: skip
LocalTime = Annotated[time, Field(strict=False)]  # "21:00" from JSON
Status = Literal["pending", "sending", "sent", "delivered", "failed", "dead"]


class SettingsIn(Body):
    sms_alternate: bool = False
    language: str = Field("en", pattern=r"^[a-z]{2}(_[A-Z]{2})?$")
    locale: str = Field("en_US", pattern=r"^[a-z]{2}(_[A-Z]{2})?$")
    reminder_days: int = Field(3, ge=0, le=60)
    quiet_start: LocalTime | None = Field(None, description="No SMS from this local time (the"
                                     " tenant's timezone; with quiet_end; may wrap midnight)")
    quiet_end: LocalTime | None = Field(None, description="... until this local time")
    sms_per_minute: int | None = Field(None, ge=1, le=1_000_000,
                                       description="The most SMS sent per minute; none: no limit")

    @model_validator(mode="after")
    def _quiet_hours(self) -> SettingsIn:
        start, end = self.quiet_start, self.quiet_end
        if (start is None) != (end is None):
            raise ValueError("quiet_start and quiet_end go together")
        if start is not None and end is not None:
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError("quiet hours are local times in the tenant's timezone"
                                 " (no offset)")  # fmt: skip
            if start == end:
                raise ValueError("quiet_start and quiet_end must differ")
        return self


class SettingsOut(SettingsIn, Out):
    updated_at: datetime


class ChannelIn(Body):
    host: Host
    port: int = Field(ge=1, le=65535)
    sender: Short | None = Field(None, description="SMTP: the From address")
    source: Short | None = Field(None, description="SMPP: the source address (sender id)")
    system_id: Short | None = Field(None, description="SMPP: the bind's system_id")
    username: Short | None = None
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="Stored encrypted, never returned")
    security: Literal["starttls", "tls", "none"] = "starttls"
    enabled: bool = True


class ChannelOut(Out):
    channel: Kind
    settings: dict[str, Any]
    password_set: bool
    webhook_secret_set: bool = Field(False, description="http_sms: its webhooks can be verified")
    enabled: bool
    updated_at: datetime


class TemplateIn(Body):
    source: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class TemplateOut(Out):
    event: str
    channel: ChannelName
    part: Part
    language: str
    source: str
    updated_at: datetime


class TemplatePage(Out):
    items: list[TemplateOut]


class PreviewIn(Body):
    event: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}\.[a-z_]{1,40}$")]
    channel: ChannelName
    part: Part
    source: Annotated[str, StringConstraints(max_length=20_000)] | None = Field(
        None, description="Omitted: the catalogue's default")


class PreviewOut(Out):
    text: str
    fell_back: bool
    error: str | None


class NotificationOut(Out):
    notification_id: int
    account_id: str
    event: str
    channel: ChannelName
    recipient: str
    status: Status
    attempts: int
    provider_ref: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class NotificationPage(Out):
    items: list[NotificationOut]


def _event(name: str) -> None:
    if name not in EVENTS:
        raise ApiProblem(404, "not_found", f"no notification event {name!r}")


@router.put(T + "/notification-settings", response_model=SettingsOut,
            responses=responses(401, 403, 404, 422), summary="Set the tenant's notification"
            " settings (alternate numbers, language and locale, reminder days, SMS quiet"
            " hours and rate limit)")
async def put_settings(ctx: Ctx, scope: Admins, body: SettingsIn) -> SettingsOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lookups.tenant(conn, scope.tenant_id)
        r = await conn.fetchrow(
            "INSERT INTO notification_settings (tenant_id, sms_alternate, language, locale,"
            " reminder_days, quiet_start, quiet_end, sms_per_minute, updated_at) VALUES ($1,"
            " $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id) DO UPDATE SET"
            " sms_alternate = excluded.sms_alternate, language = excluded.language, locale ="
            " excluded.locale, reminder_days = excluded.reminder_days, quiet_start ="
            " excluded.quiet_start, quiet_end = excluded.quiet_end, sms_per_minute ="
            " excluded.sms_per_minute, updated_at = excluded.updated_at RETURNING *",
            scope.tenant_id, body.sms_alternate, body.language, body.locale,
            body.reminder_days, body.quiet_start, body.quiet_end, body.sms_per_minute,
            ctx.now())  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "notifications.settings",
                            "notification-settings", None,
                            body.model_dump(mode="json"))  # fmt: skip
    return SettingsOut.of(r)


@router.get(T + "/notification-settings", response_model=SettingsOut,
            responses=responses(401, 403, 404, 422), summary="The notification settings")
async def get_settings(ctx: Ctx, scope: Readers) -> SettingsOut:
    r = await ctx.pool.fetchrow("SELECT * FROM notification_settings WHERE tenant_id = $1",
                                scope.tenant_id)  # fmt: skip
    if r is None:
        raise ApiProblem(404, "not_found", "no notification settings are set")
    return SettingsOut.of(r)


@router.put(T + "/notification-channels/{channel}", response_model=ChannelOut,
            responses=responses(401, 403, 404, 422, 503),
            summary="Set the tenant's SMTP or SMPP account or HTTP SMS gateway (credentials"
            " are never returned)")
async def put_channel(ctx: Ctx, scope: Admins, channel: Kind,
                      body: ChannelIn | HttpSmsIn) -> ChannelOut:  # fmt: skip
    if (channel == "http_sms") != isinstance(body, HttpSmsIn):
        raise ApiProblem(422, "invalid_request", "http_sms takes url, auth, fields...; smtp"
                         " and smpp take host, port...")  # fmt: skip
    if isinstance(body, HttpSmsIn):
        await save_http_sms(ctx, scope, body)
        return await get_channel(ctx, scope, channel)
    need = ("sender",) if channel == "smtp" else ("system_id", "source")
    missing = [n for n in need if not getattr(body, n)]
    if missing:
        raise ApiProblem(422, "invalid_request", f"{channel} needs {', '.join(missing)}")
    if channel == "smpp" and (len(body.password or "") > 8 or len(body.system_id or "") > 15):
        raise ApiProblem(422, "invalid_request", "SMPP 3.4: a password has at most 8"
                         " characters, a system_id at most 15")  # fmt: skip
    secret = secrets_or_503().encrypt(body.password) if body.password else None
    settings = body.model_dump(exclude={"password", "enabled"}, exclude_none=True)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lookups.tenant(conn, scope.tenant_id)
        await conn.execute(
            "INSERT INTO notification_channels (tenant_id, channel, settings, secret_enc,"
            " enabled, updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id,"
            " channel) DO UPDATE SET settings = excluded.settings, secret_enc ="
            " COALESCE(excluded.secret_enc, notification_channels.secret_enc), enabled ="
            " excluded.enabled, updated_at = excluded.updated_at", scope.tenant_id, channel,
            orjson.dumps(settings).decode(), secret, body.enabled, ctx.now())  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "notifications.channel",
                            f"notification-channel:{channel}", None, settings)  # fmt: skip
    return await get_channel(ctx, scope, channel)


@router.get(T + "/notification-channels/{channel}", response_model=ChannelOut,
            responses=responses(401, 403, 404, 422),
            summary="The tenant's SMTP or SMPP account or HTTP SMS gateway (without credentials)")
async def get_channel(ctx: Ctx, scope: Readers, channel: Kind) -> ChannelOut:
    r = await ctx.pool.fetchrow("SELECT * FROM notification_channels WHERE tenant_id = $1"
                                " AND channel = $2", scope.tenant_id, channel)  # fmt: skip
    if r is None:
        raise ApiProblem(404, "not_found", f"no {channel} channel is configured")
    return ChannelOut(channel=channel, settings=orjson.loads(r["settings"]),
                      password_set=r["secret_enc"] is not None, enabled=r["enabled"],
                      webhook_secret_set=r["inbound_secret_enc"] is not None,
                      updated_at=r["updated_at"])  # fmt: skip


TEMPLATE = T + "/notification-templates/{event}/{channel}/{part}/{language}"


@router.put(TEMPLATE, response_model=TemplateOut, responses=responses(401, 403, 404, 422),
            summary="Set a template (validated: unknown variables and internals refused)")
async def put_template(ctx: Ctx, scope: Admins, event: EventName, channel: ChannelName,
                       part: Part, language: Language, body: TemplateIn) -> TemplateOut:
    _event(event)
    try:
        validate(event, channel, part, body.source)
    except TemplateInvalid as e:
        raise ApiProblem(422, "invalid_template", str(e)[:500]) from None
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lookups.tenant(conn, scope.tenant_id)
        r = await conn.fetchrow(
            "INSERT INTO notification_templates (tenant_id, event, channel, part, language,"
            " source, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id,"
            " event, channel, part, language) DO UPDATE SET source = excluded.source,"
            " updated_at = excluded.updated_at RETURNING *", scope.tenant_id, event, channel,
            part, language, body.source, ctx.now())  # fmt: skip
        await record_change(conn, scope.caller, scope.tenant_id, "notifications.template",
                            f"template:{event}/{channel}/{part}/{language}", None,
                            {"source": body.source})  # fmt: skip
    return TemplateOut.of(r)


@router.delete(TEMPLATE, status_code=204, response_class=Response,
               responses=responses(401, 403, 404, 422),
               summary="Remove a template: the catalogue's default applies again")
async def delete_template(ctx: Ctx, scope: Admins, event: EventName, channel: ChannelName,
                          part: Part, language: Language) -> Response:  # fmt: skip
    done = await ctx.pool.execute(
        "DELETE FROM notification_templates WHERE tenant_id = $1 AND event = $2 AND channel ="
        " $3 AND part = $4 AND language = $5", scope.tenant_id, event, channel, part, language)
    if done.endswith(" 0"):
        raise ApiProblem(404, "not_found", "no such template")
    return Response(status_code=204)


@router.get(T + "/notification-templates", response_model=TemplatePage,
            responses=responses(401, 403, 404, 422), summary="The tenant's own templates")
async def list_templates(ctx: Ctx, scope: Readers) -> TemplatePage:
    rows = await ctx.pool.fetch("SELECT * FROM notification_templates WHERE tenant_id = $1"
                                " ORDER BY event, channel, part, language", scope.tenant_id)
    return TemplatePage(items=[TemplateOut.of(r)
                               for r in rows])  # fmt: skip


@router.post(T + "/notification-templates/preview", response_model=PreviewOut,
             responses=responses(401, 403, 404, 422),
             summary="Render a template (or the default) with the event's sample data")
async def preview_template(ctx: Ctx, scope: Readers, body: PreviewIn) -> PreviewOut:
    _event(body.event)
    tenant = await lookups.tenant(ctx.pool, scope.tenant_id)
    if body.source is not None:
        try:
            validate(body.event, body.channel, body.part, body.source)
        except TemplateInvalid as e:
            raise ApiProblem(422, "invalid_template", str(e)[:500]) from None
    locale = await ctx.pool.fetchval("SELECT locale FROM notification_settings WHERE"
                                     " tenant_id = $1", scope.tenant_id) or "en_US"
    if body.part not in (("body",) if body.channel == "sms" else ("subject", "text", "html")):
        raise ApiProblem(422, "invalid_request", f"{body.channel} has no {body.part} part")
    r = preview(body.event, body.channel, body.part, body.source, locale=locale,
                currency=tenant.currency)  # fmt: skip
    return PreviewOut(text=r.text, fell_back=r.fell_back, error=r.error)


@router.get(T + "/notifications", response_model=NotificationPage,
            responses=responses(401, 403, 404, 422),
            summary="The outbox, newest first (at most 200): search by status and account")
async def outbox(ctx: Ctx, scope: Readers, status: Annotated[Status | None, Query()] = None,
                 account_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None
                 ) -> NotificationPage:  # fmt: skip
    rows = await ctx.pool.fetch(
        "SELECT * FROM notifications WHERE tenant_id = $1 AND ($2::text IS NULL OR status ="
        " $2) AND ($3::text IS NULL OR account_id = $3) ORDER BY notification_id DESC"
        " LIMIT 200", scope.tenant_id, status, account_id)  # fmt: skip
    return NotificationPage(items=[NotificationOut(**{k: r[k] for k in
                                                      NotificationOut.model_fields})
                                   for r in rows])  # fmt: skip


@router.post(T + "/notifications/{notification_id}/resend", response_model=NotificationOut,
             responses=responses(401, 403, 404, 409, 422),
             summary="Send a dead or failed message again, now")
async def resend(ctx: Ctx, scope: Admins,
                 notification_id: Annotated[int, Path(ge=1, le=2**62)]) -> NotificationOut:
    r = await ctx.pool.fetchrow(
        "UPDATE notifications SET status = 'pending', next_attempt_at = $3, created_at = $3,"
        " last_error = NULL WHERE tenant_id = $1 AND notification_id = $2 AND status IN"
        " ('dead', 'failed') RETURNING *", scope.tenant_id, notification_id, ctx.now())
    if r is None:
        exists = await ctx.pool.fetchval("SELECT status FROM notifications WHERE tenant_id ="
                                         " $1 AND notification_id = $2", scope.tenant_id,
                                         notification_id)  # fmt: skip
        if exists is None:
            raise ApiProblem(404, "not_found", f"notification {notification_id} not found")
        raise ApiProblem(409, "not_resendable", f"notification {notification_id} is {exists}")
    return NotificationOut.of(r)
