"""API keys: the secret is in the creation response only."""

from __future__ import annotations

from fastapi import APIRouter, status

from backend.api import errors
from backend.api.deps import CoreDep, IdPath, PrincipalDep
from backend.api.schemas import ApiKeyCreateIn
from backend.domain.users import ApiKeyView, CreatedApiKey

router = APIRouter(tags=["api keys"])


@router.get("/api-keys", responses=errors.responses(401, 403, 422, 429))
async def list_keys(
    core: CoreDep, principal: PrincipalDep, all_users: bool = False
) -> list[ApiKeyView]:
    return await core.api_keys.list(principal, all_users=all_users)


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    responses=errors.responses(400, 401, 403, 413, 422, 429),
)
async def create_key(body: ApiKeyCreateIn, core: CoreDep, principal: PrincipalDep) -> CreatedApiKey:
    return await core.api_keys.create(
        principal, name=body.name, scopes=[scope.value for scope in body.scopes]
    )


@router.delete("/api-keys/{key_id}", responses=errors.responses(401, 403, 404, 422, 429))
async def revoke_key(key_id: IdPath, core: CoreDep, principal: PrincipalDep) -> ApiKeyView:
    return await core.api_keys.revoke(principal, key_id)
