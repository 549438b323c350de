"""API keys for agents and automation: scoped, shown once, revocable."""

from __future__ import annotations

import json

from backend.domain.errors import InvalidInput, NotFound, Unauthenticated
from backend.domain.permissions import API_KEY_SCOPES, ROLE_PERMISSIONS, Permission, Role
from backend.domain.principal import Principal
from backend.domain.users import ApiKeyView, CreatedApiKey
from backend.services.auth import principal_cache
from backend.services.context import ServiceContext, unit_of_work
from backend.services.crypto import new_api_key, same, split_api_key, token_hash
from backend.storage import users as store
from backend.storage.models import ApiKey

TOUCH_INTERVAL = 60.0
"""Record a key's last use at most this often, so authenticating stays a read."""
MAX_NAME = 100


def key_view(key: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        id=key.id,
        user_id=key.user_id,
        name=key.name,
        prefix=key.prefix,
        scopes=json.loads(key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


def _check_scopes(principal: Principal, scopes: list[str]) -> list[str]:
    if not scopes:
        raise InvalidInput("an API key needs at least one scope", details={"field": "scopes"})
    valid = {permission.value for permission in API_KEY_SCOPES}
    unknown = sorted(set(scopes) - valid)
    if unknown:
        raise InvalidInput(f"unknown scopes: {', '.join(unknown)}", details={"field": "scopes"})
    beyond = sorted(set(scopes) - {permission.value for permission in principal.permissions})
    if beyond:
        raise InvalidInput(
            f"a key cannot hold more than its owner: {', '.join(beyond)}",
            details={"field": "scopes"},
        )
    return sorted(set(scopes))


class ApiKeysService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def create(self, principal: Principal, *, name: str, scopes: list[str]) -> CreatedApiKey:
        principal.require(Permission.API_KEYS_OWN)
        if principal.user_id is None or principal.kind != "user":
            raise InvalidInput("API keys belong to a user; sign in as one to create them")
        label = name.strip()
        if not label or len(label) > MAX_NAME:
            raise InvalidInput(
                f"a key name is 1 to {MAX_NAME} characters", details={"field": "name"}
            )
        checked = _check_scopes(principal, scopes)
        full, prefix, secret = new_api_key()
        async with unit_of_work(self._ctx) as uow:
            key = await store.add_api_key(
                uow.session,
                ApiKey(
                    user_id=principal.user_id,
                    name=label,
                    prefix=prefix,
                    secret_hash=token_hash(secret),
                    scopes=json.dumps(checked),
                    created_at=self._ctx.clock(),
                ),
            )
            await uow.audit(
                principal, "api_keys.create", label, {"key_id": key.id, "scopes": checked}
            )
            view = key_view(key)
        return CreatedApiKey(key=view, secret=full)

    async def list(self, principal: Principal, *, all_users: bool = False) -> list[ApiKeyView]:
        if all_users:
            principal.require(Permission.API_KEYS_ALL)
        else:
            principal.require(Permission.API_KEYS_OWN)
        async with self._ctx.db.reader() as session:
            keys = await store.api_keys(session, None if all_users else principal.user_id)
        return [key_view(key) for key in keys]

    async def revoke(self, principal: Principal, key_id: int) -> ApiKeyView:
        principal.require(Permission.API_KEYS_OWN)
        async with unit_of_work(self._ctx) as uow:
            key = await store.api_key_by_id(uow.session, key_id)
            mine = key is not None and key.user_id == principal.user_id
            if key is None or not (mine or principal.can(Permission.API_KEYS_ALL)):
                raise NotFound(f"there is no API key {key_id}", details={"key_id": key_id})
            if key.revoked_at is None:
                key.revoked_at = self._ctx.clock()
                await uow.session.flush()
                await uow.audit(principal, "api_keys.revoke", key.name, {"key_id": key.id})
            view = key_view(key)
        # After the commit: a check that read the key before it could otherwise keep it.
        principal_cache(self._ctx).forget_api_key(view.id)
        return view


async def principal_for_key(ctx: ServiceContext, full_key: str) -> Principal:
    """Authenticate an API key: its scopes, bounded by its owner's current role."""
    parts = split_api_key(full_key)
    if parts is None:
        raise Unauthenticated("the API key is not valid")
    prefix, secret = parts
    now = ctx.clock()
    async with ctx.db.reader() as session:
        key = await store.api_key_by_prefix(session, prefix)
        owner = await store.by_id(session, key.user_id) if key else None
    if key is None or owner is None or not same(key.secret_hash, token_hash(secret)):
        raise Unauthenticated("the API key is not valid")
    if key.revoked_at is not None:
        raise Unauthenticated("the API key was revoked")
    if owner.disabled:
        raise Unauthenticated("the API key's owner is disabled")
    if key.last_used_at is None or now - key.last_used_at > TOUCH_INTERVAL:
        async with ctx.db.transaction() as session:
            await store.touch_api_key(session, key.id, now)
    scopes = frozenset(Permission(scope) for scope in json.loads(key.scopes))
    return Principal(
        user_id=owner.id,
        name=f"{owner.username}/{key.name}",
        role=Role(owner.role),
        permissions=scopes & ROLE_PERMISSIONS[Role(owner.role)],
        kind="api_key",
        api_key_id=key.id,
    )
