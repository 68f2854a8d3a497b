"""Who is calling: the PBX key decides the tenant (no tenant appears in URLs or bodies, so a PBX
cannot reach another tenant's accounts by naming them); POST bodies must be JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from charging_engine.realtime import problems
from charging_engine.realtime.problems import ApiProblem
from charging_engine.sessions.service import ChargingService
from charging_engine.web.api_key import invalid_key, key_extractor
from charging_engine.web.body_guard import is_json

presented_key = key_extractor("PBX API key")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: the service it runs against and the key's tenant."""

    service: ChargingService
    tenant_id: str


async def authenticated(
    request: Request, secret: Annotated[str, Depends(presented_key)]
) -> Caller:
    """Resolve the API key to its tenant (401 otherwise); POST bodies must be JSON (415)."""
    service: ChargingService = request.app.state.service  # read per request: swappable
    key = service.catalog.pbx_key(secret)
    if key is None or service.catalog.tenant(key.tenant_id) is None:
        raise invalid_key("the API key is not valid")
    if request.method == "POST" and not is_json(request.headers.get("content-type")):
        raise ApiProblem(
            415, problems.UNSUPPORTED_MEDIA_TYPE, "the body must be sent as application/json"
        )
    return Caller(service, key.tenant_id)


Authenticated = Annotated[Caller, Depends(authenticated)]


def currency_of(caller: Caller, account: str) -> str | None:
    acc = caller.service.catalog.account(caller.tenant_id, account)
    return acc.currency if acc is not None else None
