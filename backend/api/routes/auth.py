"""Sign-in, token refresh, sign-out, and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from backend.api.deps import CoreDep, PrincipalDep, SourceDep, get_request_id
from backend.api.schemas import LoginIn, RefreshIn
from backend.domain.users import MeView, TokenPair

router = APIRouter(tags=["auth"])


@router.post("/auth/login")
async def login(body: LoginIn, core: CoreDep, source: SourceDep, request: Request) -> TokenPair:
    return await core.auth.login(
        body.username, body.password, source=source, correlation_id=get_request_id(request)
    )


@router.post("/auth/refresh")
async def refresh(body: RefreshIn, core: CoreDep, source: SourceDep) -> TokenPair:
    return await core.auth.refresh(body.refresh_token, source=source)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(core: CoreDep, principal: PrincipalDep) -> None:
    await core.auth.logout(principal)


@router.get("/me")
async def me(principal: PrincipalDep) -> MeView:
    return MeView(
        id=principal.user_id,
        username=principal.name,
        role=principal.role,
        permissions=sorted(permission.value for permission in principal.permissions),
        kind=principal.kind,
    )
