"""The audit log, newest first, keyset paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api import errors
from backend.api.deps import CoreDep, PrincipalDep
from backend.api.schemas import MAX_ID
from backend.domain.audit import AuditPage, AuditVerification

router = APIRouter(tags=["audit"])


@router.get("/audit", responses=errors.responses(401, 403, 422, 429))
async def list_audit(
    core: CoreDep,
    principal: PrincipalDep,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    until: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    text: Annotated[str | None, Query(max_length=200)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
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


@router.get("/audit/verify", responses=errors.responses(401, 403, 429))
async def verify_audit(core: CoreDep, principal: PrincipalDep) -> AuditVerification:
    """Walk the hash chain, as `quarterdeck audit verify` does; `ok` false names the
    first entry that was edited or whose predecessor was deleted."""
    return await core.audit.verify(principal)
