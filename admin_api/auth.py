"""Who is calling, and for which tenant: every route depends on ``allow(...)``.

Order matters: 401 (no valid key), then 404 (the path names a tenant the key does not belong
to: answered exactly like a tenant that does not exist), then 403 (the role may not do this in
its own tenant). A foreign tenant's resources are therefore never confirmed to exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request

from admin_api.context import AdminContext, get_context
from admin_api.keys import Caller, Role, authenticate
from admin_api.problems import forbidden, not_found
from admin_api.schemas import TenantPath
from charging_engine.web.api_key import invalid_key, key_extractor

presented_key = key_extractor("admin API key")

ALL: Final = frozenset(Role) - {Role.PBX}
ADMINS: Final = frozenset({Role.PLATFORM, Role.TENANT_ADMIN})
READERS: Final = frozenset({Role.PLATFORM, Role.TENANT_ADMIN, Role.OPS})
ACCOUNT_READERS: Final = READERS | {Role.AGENT}
COLLECTORS: Final = ADMINS | {Role.AGENT}
# Billing (bill plans, charges, invoices): finance works there and nowhere else.
BILLING_ADMINS: Final = ADMINS | {Role.FINANCE}
BILLING_READERS: Final = READERS | {Role.FINANCE}


async def caller(
    request: Request,
    secret: Annotated[str, Depends(presented_key)],
    ctx: Annotated[AdminContext, Depends(get_context)],
) -> Caller:
    """The key behind the request, or 401."""
    found = await authenticate(ctx.pool, secret)
    if found is None:
        raise invalid_key("the API key is not valid for the admin API")
    request.state.caller = found
    return found


Authenticated = Annotated[Caller, Depends(caller)]


@dataclass(frozen=True, slots=True)
class Scope:
    """An authenticated caller acting on one tenant it may see."""

    caller: Caller
    tenant_id: str


def allow(roles: frozenset[Role]) -> Callable[..., Awaitable[Scope]]:
    """Dependency: the path's tenant, visible to the caller (else 404), for these roles (403)."""

    async def scoped(
        tenant_id: TenantPath,
        who: Authenticated,
        ctx: Annotated[AdminContext, Depends(get_context)],
    ) -> Scope:
        if who.tenant_id is None:
            if await ctx.pool.fetchval(
                "SELECT 1 FROM tenants WHERE tenant_id = $1", tenant_id
            ) is None:
                raise not_found(f"tenant {tenant_id!r}")
        elif who.tenant_id != tenant_id:
            raise not_found(f"tenant {tenant_id!r}")
        if who.role not in roles:
            raise forbidden(f"role {who.role.value} may not do this")
        return Scope(who, tenant_id)

    return scoped


def platform_only(who: Authenticated) -> Caller:
    if who.role is not Role.PLATFORM:
        raise forbidden("only a platform key may do this")
    return who


Platform = Annotated[Caller, Depends(platform_only)]
