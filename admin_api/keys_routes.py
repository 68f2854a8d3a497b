"""Key routes: who am I; create, list, rotate and revoke keys of a tenant or of the platform.

A secret is in the response that creates it (create, rotate) and nowhere else, ever.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi import Body as BodyParam
from pydantic import Field

from admin_api import keys, pagination
from admin_api.audit import record_change
from admin_api.auth import ADMINS, Authenticated, Platform, Scope, allow
from admin_api.context import AdminContext, Ctx
from admin_api.keys import Caller, KeyRecord, Role
from admin_api.problems import conflict, not_found, responses
from admin_api.schemas import Body, Cursor, KeyPath, Limit, Name, Out, Page

router = APIRouter(tags=["keys"])

MAX_GRACE_S = 30 * 86_400
Admins = Annotated[Scope, Depends(allow(ADMINS))]
TenantRole = Literal["tenant_admin", "ops", "agent", "pbx", "finance"]


class KeyCreate(Body):
    role: TenantRole
    name: Name = ""


class PlatformKeyCreate(Body):
    name: Name = ""


class Rotation(Body):
    grace_seconds: int = Field(
        0, ge=0, le=MAX_GRACE_S,
        description="How long the old secret keeps working (0: revoked at once)",
    )


class KeyOut(Out):
    key_id: str
    tenant_id: str | None
    role: str
    name: str
    state: Literal["active", "expiring", "expired", "revoked"]
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_from: str | None


class KeyCreated(KeyOut):
    secret: str = Field(description="Shown once: store it now, it cannot be read again")


class KeyPage(Page):
    items: list[KeyOut]


class MeOut(Out):
    key_id: str
    role: str
    tenant_id: str | None


def _out(key: KeyRecord) -> KeyOut:
    return KeyOut(**keys.view(key, datetime.now(UTC)))


def _created(key: KeyRecord, secret: str) -> KeyCreated:
    return KeyCreated(**keys.view(key, datetime.now(UTC)), secret=secret)


@router.get("/v1/me", response_model=MeOut, responses=responses(401),
            summary="The key this request uses")
async def me(who: Authenticated) -> MeOut:
    return MeOut(key_id=who.key_id, role=who.role.value, tenant_id=who.tenant_id)


async def _create(
    ctx: AdminContext, who: Caller, tenant_id: str | None, role: Role, name: str
) -> KeyCreated:
    async with ctx.pool.acquire() as conn, conn.transaction():
        key, secret = await keys.create_key(conn, tenant_id, role, name, who.key_id)
        await record_change(conn, who, tenant_id, "key.create", f"key:{key.key_id}", None,
                            {"role": role.value, "name": name})
    if role is Role.PBX:
        await ctx.refresher.refresh()
    return _created(key, secret)


async def _listing(
    ctx: AdminContext, tenant_id: str | None, limit: int, cursor: str | None
) -> KeyPage:
    after = pagination.decode(cursor, str)
    rows = await keys.list_keys(ctx.pool, tenant_id, after[0] if after else None, limit + 1)
    items, more = pagination.page(rows, limit)
    return KeyPage(items=[_out(k) for k in items],
                   next_cursor=pagination.encode(items[-1].key_id) if more else None)


async def _rotate(
    ctx: AdminContext, who: Caller, tenant_id: str | None, key_id: str, grace_s: int
) -> KeyCreated:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await keys.get_key(conn, tenant_id, key_id)
        if old is None:
            raise not_found(f"key {key_id!r}")
        state = old.state(datetime.now(UTC))
        if state in ("revoked", "expired"):
            raise conflict("key_inactive", f"key {key_id!r} is {state}: create a new one")
        new, secret = await keys.create_key(
            conn, tenant_id, old.role, old.name, who.key_id, rotated_from=old.key_id
        )
        ended = (await keys.revoke(conn, old) if grace_s == 0
                 else await keys.end_after(conn, old, timedelta(seconds=grace_s)))
        await record_change(
            conn, who, tenant_id, "key.rotate", f"key:{key_id}",
            {"state": state, "expires_at": old.expires_at},
            {"state": ended.state(datetime.now(UTC)), "expires_at": ended.expires_at,
             "revoked_at": ended.revoked_at, "replaced_by": new.key_id},
        )
    if old.role is Role.PBX:
        await ctx.refresher.refresh()
    return _created(new, secret)


async def _revoke(
    ctx: AdminContext, who: Caller, tenant_id: str | None, key_id: str
) -> KeyOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        old = await keys.get_key(conn, tenant_id, key_id)
        if old is None:
            raise not_found(f"key {key_id!r}")
        key = await keys.revoke(conn, old)
        if old.revoked_at is None:
            await record_change(conn, who, tenant_id, "key.revoke", f"key:{key_id}",
                                {"revoked_at": None}, {"revoked_at": key.revoked_at})
    if key.role is Role.PBX:
        await ctx.refresher.refresh()
    return _out(key)


TENANT_KEYS = "/v1/tenants/{tenant_id}/keys"
RotationBody = Annotated[Rotation | None, BodyParam()]


@router.post(TENANT_KEYS, response_model=KeyCreated, status_code=201,
             responses=responses(401, 403, 404, 422), summary="Create a key of the tenant")
async def create_key(ctx: Ctx, scope: Admins, body: KeyCreate) -> KeyCreated:
    return await _create(ctx, scope.caller, scope.tenant_id, Role(body.role), body.name)


@router.get(TENANT_KEYS, response_model=KeyPage, responses=responses(401, 403, 404, 422),
            summary="The tenant's keys (secrets are never shown)")
async def list_keys(
    ctx: Ctx, scope: Admins, limit: Limit = 50, cursor: Cursor = None
) -> KeyPage:
    return await _listing(ctx, scope.tenant_id, limit, cursor)


@router.get(TENANT_KEYS + "/{key_id}", response_model=KeyOut,
            responses=responses(401, 403, 404, 422), summary="One key of the tenant")
async def get_key(ctx: Ctx, scope: Admins, key_id: KeyPath) -> KeyOut:
    key = await keys.get_key(ctx.pool, scope.tenant_id, key_id)
    if key is None:
        raise not_found(f"key {key_id!r}")
    return _out(key)


@router.post(TENANT_KEYS + "/{key_id}/rotate", response_model=KeyCreated, status_code=201,
             responses=responses(401, 403, 404, 409, 422),
             summary="Issue a new secret; the old one works for grace_seconds, then never")
async def rotate_key(
    ctx: Ctx, scope: Admins, key_id: KeyPath, body: RotationBody = None
) -> KeyCreated:
    grace = body.grace_seconds if body is not None else 0
    return await _rotate(ctx, scope.caller, scope.tenant_id, key_id, grace)


@router.post(TENANT_KEYS + "/{key_id}/revoke", response_model=KeyOut,
             responses=responses(401, 403, 404, 422), summary="Revoke a key now (idempotent)")
async def revoke_key(ctx: Ctx, scope: Admins, key_id: KeyPath) -> KeyOut:
    return await _revoke(ctx, scope.caller, scope.tenant_id, key_id)


PLATFORM_KEYS = "/v1/platform/keys"


@router.post(PLATFORM_KEYS, response_model=KeyCreated, status_code=201,
             responses=responses(401, 403, 422), summary="Create another platform key")
async def create_platform_key(ctx: Ctx, who: Platform, body: PlatformKeyCreate) -> KeyCreated:
    return await _create(ctx, who, None, Role.PLATFORM, body.name)


@router.get(PLATFORM_KEYS, response_model=KeyPage, responses=responses(401, 403, 422),
            summary="Platform keys")
async def list_platform_keys(
    ctx: Ctx, who: Platform, limit: Limit = 50, cursor: Cursor = None
) -> KeyPage:
    return await _listing(ctx, None, limit, cursor)


@router.post(PLATFORM_KEYS + "/{key_id}/rotate", response_model=KeyCreated, status_code=201,
             responses=responses(401, 403, 404, 409, 422), summary="Rotate a platform key")
async def rotate_platform_key(
    ctx: Ctx, who: Platform, key_id: KeyPath, body: RotationBody = None
) -> KeyCreated:
    grace = body.grace_seconds if body is not None else 0
    return await _rotate(ctx, who, None, key_id, grace)


@router.post(PLATFORM_KEYS + "/{key_id}/revoke", response_model=KeyOut,
             responses=responses(401, 403, 404, 422), summary="Revoke a platform key")
async def revoke_platform_key(ctx: Ctx, who: Platform, key_id: KeyPath) -> KeyOut:
    return await _revoke(ctx, who, None, key_id)
