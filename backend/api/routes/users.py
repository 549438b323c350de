"""Users."""

from __future__ import annotations

from fastapi import APIRouter, status

from backend.api import errors
from backend.api.deps import CoreDep, IdPath, PrincipalDep
from backend.api.schemas import PasswordIn, UserCreateIn, UserPatchIn
from backend.domain.errors import InvalidInput
from backend.domain.users import UserView

router = APIRouter(tags=["users"])


@router.get("/users", responses=errors.responses(401, 403, 429))
async def list_users(core: CoreDep, principal: PrincipalDep) -> list[UserView]:
    return await core.users.list(principal)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    responses=errors.responses(400, 401, 403, 409, 413, 422, 429),
)
async def create_user(body: UserCreateIn, core: CoreDep, principal: PrincipalDep) -> UserView:
    return await core.users.create(
        principal,
        username=body.username,
        password=body.password,
        role=body.role.value,
        display_name=body.display_name,
    )


@router.get("/users/{user_id}", responses=errors.responses(401, 403, 404, 422, 429))
async def get_user(user_id: IdPath, core: CoreDep, principal: PrincipalDep) -> UserView:
    return await core.users.get(principal, user_id)


@router.patch(
    "/users/{user_id}", responses=errors.responses(400, 401, 403, 404, 409, 413, 422, 429)
)
async def update_user(
    user_id: IdPath, body: UserPatchIn, core: CoreDep, principal: PrincipalDep
) -> UserView:
    return await core.users.update(
        principal,
        user_id,
        role=body.role.value if body.role is not None else None,
        display_name=body.display_name,
        disabled=body.disabled,
    )


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors.responses(401, 403, 404, 409, 422, 429),
)
async def delete_user(user_id: IdPath, core: CoreDep, principal: PrincipalDep) -> None:
    await core.users.delete(principal, user_id)


@router.post(
    "/users/{user_id}/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors.responses(400, 401, 403, 404, 413, 422, 429),
)
async def set_password(
    user_id: IdPath, body: PasswordIn, core: CoreDep, principal: PrincipalDep
) -> None:
    if user_id == principal.user_id and principal.kind == "user":
        if body.current_password is None:
            raise InvalidInput(
                "changing your own password needs the current one",
                details={"field": "current_password"},
            )
        await core.users.change_own_password(
            principal, current=body.current_password, new=body.new_password
        )
        return
    await core.users.reset_password(principal, user_id, new=body.new_password)
