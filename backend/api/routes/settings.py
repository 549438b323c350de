"""Settings: versioned writes, history, rollback, export and import."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from backend.api import errors
from backend.api.deps import CoreDep, PrincipalDep
from backend.api.schemas import RollbackIn, SettingWriteIn
from backend.domain.settings import SettingChange, SettingVersionView, SettingView

router = APIRouter(tags=["settings"])


@router.get("/settings", responses=errors.responses(401, 403, 429))
async def list_settings(core: CoreDep, principal: PrincipalDep) -> list[SettingView]:
    return await core.settings.list(principal)


# Declared before /settings/{key} so "export" is not taken for a key.
@router.get("/settings/export", responses=errors.responses(401, 403, 422, 429))
async def export_settings(
    core: CoreDep, principal: PrincipalDep, include_secrets: bool = False
) -> dict[str, Any]:
    return await core.settings.export(principal, include_secrets=include_secrets)


@router.post("/settings/import", responses=errors.responses(400, 401, 403, 409, 413, 422, 429))
async def import_settings(
    core: CoreDep,
    principal: PrincipalDep,
    document: dict[str, Any] = Body(...),  # noqa: B008 - FastAPI's way to take a free-form body
    dry_run: bool = False,
    reason: str = "import",
) -> list[SettingChange]:
    return await core.settings.import_(principal, document, reason=reason, dry_run=dry_run)


@router.get("/settings/{key}", responses=errors.responses(401, 403, 404, 422, 429))
async def get_setting(key: str, core: CoreDep, principal: PrincipalDep) -> SettingView:
    return await core.settings.get(principal, key)


@router.put("/settings/{key}", responses=errors.responses(400, 401, 403, 404, 409, 413, 422, 429))
async def write_setting(
    key: str, body: SettingWriteIn, core: CoreDep, principal: PrincipalDep
) -> SettingView:
    return await core.settings.write(
        principal, key, body.value, expected_version=body.expected_version, reason=body.reason
    )


@router.get("/settings/{key}/history", responses=errors.responses(401, 403, 404, 422, 429))
async def setting_history(
    key: str, core: CoreDep, principal: PrincipalDep
) -> list[SettingVersionView]:
    return await core.settings.history(principal, key)


@router.post(
    "/settings/{key}/rollback", responses=errors.responses(400, 401, 403, 404, 409, 413, 422, 429)
)
async def rollback_setting(
    key: str, body: RollbackIn, core: CoreDep, principal: PrincipalDep
) -> SettingView:
    return await core.settings.rollback(
        principal,
        key,
        version=body.version,
        reason=body.reason,
        expected_version=body.expected_version,
    )
