"""The audit log, newest first, keyset paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import CoreDep, PrincipalDep
from backend.domain.audit import AuditPage

router = APIRouter(tags=["audit"])


@router.get("/audit")
async def list_audit(
    core: CoreDep,
    principal: PrincipalDep,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: float | None = None,
    until: float | None = None,
    text: Annotated[str | None, Query(max_length=200)] = None,
    before_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    return await core.audit.list(
        principal,
        actor=actor,
        action=action,
        since=since,
        until=until,
        text=text,
        before_id=before_id,
        limit=limit,
    )
