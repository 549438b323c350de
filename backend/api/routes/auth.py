"""Sign-in, token refresh, sign-out, and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from backend.api import errors
from backend.api.deps import CoreDep, PrincipalDep, SourceDep, get_request_id
from backend.api.schemas import LoginIn, RefreshIn
from backend.domain.users import MeView, TokenPair, me_view

router = APIRouter(tags=["auth"])


@router.post("/auth/login", responses=errors.responses(400, 401, 413, 422, 429))
async def login(body: LoginIn, core: CoreDep, source: SourceDep, request: Request) -> TokenPair:
    return await core.auth.login(
        body.username, body.password, source=source, correlation_id=get_request_id(request)
    )


@router.post("/auth/refresh", responses=errors.responses(400, 401, 413, 422))
async def refresh(body: RefreshIn, core: CoreDep, source: SourceDep) -> TokenPair:
    return await core.auth.refresh(body.refresh_token, source=source)


@router.post(
    "/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=errors.responses(401, 429)
)
async def logout(core: CoreDep, principal: PrincipalDep) -> None:
    await core.auth.logout(principal)


@router.get("/me", responses=errors.responses(401, 429))
async def me(principal: PrincipalDep) -> MeView:
    return me_view(principal)
