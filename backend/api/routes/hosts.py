"""Hosts and their up/down status."""

from __future__ import annotations

from fastapi import APIRouter, status

from backend.api import errors
from backend.api.deps import CoreDep, IdPath, PrincipalDep
from backend.domain.monitoring import HostView

router = APIRouter(tags=["hosts"])


@router.get("/hosts", responses=errors.responses(401, 403, 429))
async def list_hosts(core: CoreDep, principal: PrincipalDep) -> list[HostView]:
    return list(await core.hosts.list(principal))


@router.delete(
    "/hosts/{host_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors.responses(401, 403, 404, 422, 429),
)
async def delete_host(host_id: IdPath, core: CoreDep, principal: PrincipalDep) -> None:
    await core.hosts.delete(principal, host_id)
