"""A tenant's billing settings: read (defaults until first set), replaced whole, or patched."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends

from admin_api.audit import record_change
from admin_api.auth import BILLING_ADMINS, BILLING_READERS, Scope, allow
from admin_api.billing.catalog_views import dump, given, settings_out
from admin_api.billing.schemas import SettingsIn, SettingsOut, SettingsPatch
from admin_api.context import Ctx
from admin_api.problems import responses
from billing.catalog import settings
from billing.catalog.settings import BillingSettings

router = APIRouter(tags=["billing catalogue"])

Readers = Annotated[Scope, Depends(allow(BILLING_READERS))]
Admins = Annotated[Scope, Depends(allow(BILLING_ADMINS))]
SETTINGS = "/v1/tenants/{tenant_id}/billing-settings"
WRITE = responses(401, 403, 404, 413, 422)  # a long template can pass the body limit


def _values(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}


async def _saved(
    scope: Scope, before: BillingSettings, after: BillingSettings, conn: asyncpg.Connection
) -> SettingsOut:
    out = settings_out(after)
    if before != after:
        await record_change(conn, scope.caller, scope.tenant_id, "billing_settings.update",
                            "billing_settings", dump(settings_out(before)), dump(out))
    return out


@router.get(SETTINGS, response_model=SettingsOut, responses=responses(401, 403, 404, 422),
            summary="Invoice numbering, finalization, taxes and presentation")
async def get_settings(ctx: Ctx, scope: Readers) -> SettingsOut:
    return settings_out(await settings.get(ctx.pool, scope.tenant_id))


@router.put(SETTINGS, response_model=SettingsOut, responses=WRITE,
            summary="Replace the billing settings (a field left out takes its default)")
async def put_settings(ctx: Ctx, scope: Admins, body: SettingsIn) -> SettingsOut:
    new = BillingSettings(**_values(body.model_dump()))
    async with ctx.pool.acquire() as conn, conn.transaction():
        before, after = await settings.put(conn, scope.tenant_id, new)
        return await _saved(scope, before, after, conn)


@router.patch(SETTINGS, response_model=SettingsOut, responses=WRITE,
              summary="Change some billing settings")
async def patch_settings(ctx: Ctx, scope: Admins, body: SettingsPatch) -> SettingsOut:
    changes = _values(given(body, nullable={"default_bcd", "template_source"}))
    async with ctx.pool.acquire() as conn, conn.transaction():
        before, after = await settings.patch(conn, scope.tenant_id, changes)
        return await _saved(scope, before, after, conn)
