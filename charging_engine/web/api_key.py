"""API keys as both front ends accept them: ``Authorization: Bearer <key>`` or ``X-API-Key``.

``key_extractor`` builds the FastAPI dependency that answers the presented secret or a 401
problem; each front end then looks the secret up in its own key store and answers
``invalid_key`` when it is not one of its keys.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency's annotations at
# runtime, and they name the schemes local to ``key_extractor``.
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from charging_engine.web.problems import UNAUTHORIZED, ApiProblem

Extractor = Callable[..., Awaitable[str]]


def key_extractor(what: str) -> Extractor:
    """The dependency giving the request's secret; ``what`` names the key in OpenAPI
    (``"PBX API key"``, ``"admin API key"``)."""
    bearer = HTTPBearer(auto_error=False, description=f"`Authorization: Bearer <{what}>`")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description=what[:1].upper()
                          + what[1:])

    async def presented(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        api_key: Annotated[str | None, Security(header)],
    ) -> str:
        secret = credentials.credentials if credentials is not None else api_key
        if not secret:
            raise ApiProblem(
                401, UNAUTHORIZED, "an API key is required (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return secret

    return presented


def invalid_key(detail: str) -> ApiProblem:
    """The 401 for a secret that is not a valid key here (unknown, revoked, expired)."""
    return ApiProblem(
        401, UNAUTHORIZED, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )
