"""Typed dependencies: the core, the caller, the request's origin.

Every dependency is `async def`, even where nothing is awaited: FastAPI runs a
plain `def` dependency in its thread pool, a thread round trip per dependency
and request that costs more than the work itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.api.ratelimit import charge_request
from backend.api.schemas import MAX_ID
from backend.core import Core
from backend.domain.errors import Unauthenticated
from backend.domain.principal import Principal

_bearer = HTTPBearer(auto_error=False, description="An access token or an API key")


async def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def get_source(request: Request) -> str:
    return client_address(request)


def get_request_id(request: Request) -> str | None:
    """The correlation id `RequestContext` gave the request (a plain function, not a dependency)."""
    value: str | None = request.scope.get("state", {}).get("request_id")
    return value


IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A resource id in a path: positive and within the database's integer range."""

CoreDep = Annotated[Core, Depends(get_core)]
SourceDep = Annotated[str, Depends(get_source)]


async def get_principal(
    request: Request,
    core: CoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("sign in first: send 'Authorization: Bearer <token>'")
    principal = await core.auth.authenticate(credentials.credentials)
    await charge_request(request, core, principal)
    return principal.with_request(
        source=client_address(request), correlation_id=get_request_id(request)
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]
