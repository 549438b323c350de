"""User accounts: who may sign in, with which role."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from backend.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from backend.domain.events import Topic
from backend.domain.permissions import Permission, Role
from backend.domain.principal import Principal
from backend.domain.users import (
    UserView,
    check_display_name,
    check_password,
    check_role,
    check_username,
)
from backend.services.auth import principal_cache
from backend.services.context import ServiceContext, UnitOfWork, unit_of_work
from backend.storage import users as store
from backend.storage.models import User


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        disabled=user.disabled,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


class UsersService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def list(self, principal: Principal) -> list[UserView]:
        principal.require(Permission.USERS_READ)
        async with self._ctx.db.reader() as session:
            return [user_view(user) for user in await store.all_users(session)]

    async def get(self, principal: Principal, user_id: int) -> UserView:
        # A signed-in user may always read their own record; an API key may not
        # (it holds only its scopes, even for its owner's account).
        if principal.user_id != user_id or principal.kind != "user":
            principal.require(Permission.USERS_READ)
        async with self._ctx.db.reader() as session:
            user = await store.by_id(session, user_id)
        if user is None:
            raise NotFound(f"there is no user {user_id}", details={"user_id": user_id})
        return user_view(user)

    async def needs_first_admin(self) -> bool:
        """True on a fresh installation, before anyone can sign in."""
        async with self._ctx.db.reader() as session:
            return await store.count(session) == 0

    async def create_first_admin(
        self, *, username: str, password: str, display_name: str = "", source: str = "local"
    ) -> UserView:
        """Create the first account without a principal; refused once any user exists."""
        actor = Principal.system("setup").with_request(source=source, correlation_id=None)
        return await self._create(
            actor, username, password, Role.ADMIN.value, display_name, first=True
        )

    async def create(
        self,
        principal: Principal,
        *,
        username: str,
        password: str,
        role: str,
        display_name: str = "",
    ) -> UserView:
        principal.require(Permission.USERS_WRITE)
        return await self._create(principal, username, password, role, display_name, first=False)

    async def _create(
        self,
        principal: Principal,
        username: str,
        password: str,
        role: str,
        display_name: str,
        *,
        first: bool,
    ) -> UserView:
        name = check_username(username)
        check_password(password)
        checked_role = check_role(role)
        shown = check_display_name(display_name)
        password_hash = await self._ctx.keys.hash_password(password)
        now = self._ctx.clock()
        try:
            async with unit_of_work(self._ctx) as uow:
                if first and await store.count(uow.session) > 0:
                    raise Conflict("the first administrator already exists; sign in instead")
                if await store.by_username(uow.session, name) is not None:
                    raise self._taken(name)
                user = await store.add(
                    uow.session,
                    User(
                        username=name,
                        display_name=shown,
                        password_hash=password_hash,
                        role=checked_role.value,
                        disabled=False,
                        created_at=now,
                        updated_at=now,
                    ),
                )
                await uow.audit(
                    principal,
                    "users.create",
                    name,
                    {"role": checked_role.value, "user_id": user.id},
                )
                view = user_view(user)
                uow.publish(Topic.USERS, {"action": "created", "user": view.model_dump()})
        except IntegrityError:
            raise self._taken(name) from None
        return view

    async def update(
        self,
        principal: Principal,
        user_id: int,
        *,
        role: str | None = None,
        display_name: str | None = None,
        disabled: bool | None = None,
    ) -> UserView:
        principal.require(Permission.USERS_WRITE)
        checked_role = check_role(role) if role is not None else None
        shown = check_display_name(display_name) if display_name is not None else None
        if principal.user_id == user_id and (disabled or (checked_role not in (None, Role.ADMIN))):
            raise Conflict("you cannot disable or demote your own account")
        async with unit_of_work(self._ctx) as uow:
            user = await self._load(uow, user_id)
            changes: dict[str, object] = {}
            if checked_role is not None and checked_role.value != user.role:
                changes["role"] = [user.role, checked_role.value]
                user.role = checked_role.value
            if shown is not None and shown != user.display_name:
                changes["display_name"] = [user.display_name, shown]
                user.display_name = shown
            if disabled is not None and disabled != user.disabled:
                changes["disabled"] = [user.disabled, disabled]
                user.disabled = disabled
                if disabled:
                    await store.revoke_user_tokens(uow.session, user.id, self._ctx.clock())
            if not changes:
                return user_view(user)
            user.updated_at = self._ctx.clock()
            await uow.session.flush()
            await self._keep_an_admin(uow)
            await uow.audit(
                principal, "users.update", user.username, {"user_id": user.id, "changes": changes}
            )
            view = user_view(user)
            uow.publish(Topic.USERS, {"action": "updated", "user": view.model_dump()})
        self._forget_credentials(user_id)
        return view

    async def delete(self, principal: Principal, user_id: int) -> None:
        principal.require(Permission.USERS_WRITE)
        if principal.user_id == user_id:
            raise Conflict("you cannot delete your own account")
        async with unit_of_work(self._ctx) as uow:
            user = await self._load(uow, user_id)
            username = user.username
            await store.delete(uow.session, user)
            await self._keep_an_admin(uow)
            await uow.audit(principal, "users.delete", username, {"user_id": user_id})
            uow.publish(Topic.USERS, {"action": "deleted", "user_id": user_id})
        self._forget_credentials(user_id)

    async def change_own_password(self, principal: Principal, *, current: str, new: str) -> None:
        """Needs the current password, so a session left open cannot take the account over."""
        if principal.kind != "user" or principal.user_id is None:
            raise Forbidden("only a signed-in user can change their own password")
        check_password(new)
        new_hash = await self._ctx.keys.hash_password(new)
        async with unit_of_work(self._ctx) as uow:
            user = await self._load(uow, principal.user_id)
            if not await self._ctx.keys.verify_password(user.password_hash, current):
                raise InvalidInput(
                    "the current password is not correct", details={"field": "current"}
                )
            user.password_hash = new_hash
            user.updated_at = self._ctx.clock()
            # Other sessions end; the one that changed the password stays signed in.
            await store.revoke_user_tokens(
                uow.session, user.id, self._ctx.clock(), keep_family=principal.session_id
            )
            await uow.audit(principal, "users.change_password", user.username, {"user_id": user.id})
        self._forget_credentials(principal.user_id)

    async def reset_password(self, principal: Principal, user_id: int, *, new: str) -> None:
        principal.require(Permission.USERS_WRITE)
        check_password(new)
        new_hash = await self._ctx.keys.hash_password(new)
        async with unit_of_work(self._ctx) as uow:
            user = await self._load(uow, user_id)
            user.password_hash = new_hash
            user.updated_at = self._ctx.clock()
            await store.revoke_user_tokens(uow.session, user.id, self._ctx.clock())
            await uow.audit(principal, "users.reset_password", user.username, {"user_id": user.id})
        self._forget_credentials(user_id)

    def _forget_credentials(self, user_id: int) -> None:
        """After a committed change to an account: this process re-checks its credentials.

        Every instance's principal cache also empties on the change's event,
        but that listener runs a moment later; dropping the account's entries
        here means the very next request through this process already sees
        a disabled, demoted, deleted or re-passworded account as it now is.
        """
        principal_cache(self._ctx).forget_user(user_id)

    async def _load(self, uow: UnitOfWork, user_id: int) -> User:
        user = await store.by_id(uow.session, user_id)
        if user is None:
            raise NotFound(f"there is no user {user_id}", details={"user_id": user_id})
        return user

    async def _keep_an_admin(self, uow: UnitOfWork) -> None:
        if await store.count_active_admins(uow.session) == 0:
            raise Conflict("at least one enabled administrator must remain")

    @staticmethod
    def _taken(name: str) -> Conflict:
        return Conflict(f"the username {name!r} is taken", details={"field": "username"})
