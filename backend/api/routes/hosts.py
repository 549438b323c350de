"""Hosts and their up/down status."""

from __future__ import annotations

from fastapi import APIRouter, status

from backend.api.deps import CoreDep, PrincipalDep
from backend.domain.monitoring import HostView

router = APIRouter(tags=["hosts"])


@router.get("/hosts")
async def list_hosts(core: CoreDep, principal: PrincipalDep) -> list[HostView]:
    return list(await core.hosts.list(principal))


@router.delete("/hosts/{host_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_host(host_id: int, core: CoreDep, principal: PrincipalDep) -> None:
    await core.hosts.delete(principal, host_id)
